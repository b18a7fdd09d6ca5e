"""Deciding whether a request needs a human (pure: no I/O, the input is given)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import LedgerRecord, Phase, StartPayload
from a2i_worker.messages import Outcome, ReviewRequest
from a2i_worker.naming import loop_name
from a2i_worker.results import make_result
from a2i_worker.rules import evaluate

if TYPE_CHECKING:
    from a2i_worker.routes import Route

__all__ = ["Decision", "decide", "first_write", "log_without_loop", "not_activated"]

_NO_RULES = {
    "activated": True,
    "fired": [
        {
            "path": "",
            "condition_type": "NoRules",
            "explanation": "route has no rules: every request is reviewed",
        }
    ],
}


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one request, before anything is stored."""

    decision: dict[str, Any]
    context: dict[str, Any]
    review: bool  # start a loop: activated and the route is not in shadow mode
    loop_name: str
    payload: StartPayload


def decide(req: ReviewRequest, route: Route, input_content: str, *, now: datetime) -> Decision:
    """Run ``route``'s rules on the request's prediction (its input when it has none)."""
    prediction = req.prediction if req.has_prediction else json.loads(input_content)
    result = evaluate(route.rules, prediction, request_id=req.request_id) if route.rules else None
    activated = result.activated if result is not None else True
    context = {
        "request_id": req.request_id,
        "prediction": prediction,
        "metadata": req.metadata,
        "decided_at": now.isoformat(),
        "flow_definition_arn": route.flow_definition_arn,
        "shadow": route.shadow,
    }
    return Decision(
        decision=result.to_json() if result is not None else dict(_NO_RULES),
        context=context,
        review=activated and not route.shadow,
        loop_name=loop_name(route.flow_definition_arn, req.request_id, 1),
        payload=StartPayload(
            flow_definition_arn=route.flow_definition_arn,
            input_content=input_content,
            content_classifiers=tuple(route.content_classifiers),
        ),
    )


def not_activated(
    record: LedgerRecord, decided: Decision, now: datetime, reason: str | None = None
) -> LedgerRecord | None:
    """RECEIVED -> DONE with a ``not_activated`` result (None from any other phase)."""
    shown = replace(record, decision=decided.decision, context=decided.context)
    res_id, result = make_result(shown, Outcome.NOT_ACTIVATED, now=now, reason=reason)
    return transitions.store_result(
        record,
        expected=[Phase.RECEIVED],
        result=result,
        result_id=res_id,
        decision=decided.decision,
        now=now,
    )


def first_write(decided: Decision, *, now: datetime, starting_check: datetime) -> Any:
    """The pure transition a new record goes through before it is first stored."""
    if not decided.review:
        return lambda r: not_activated(r, decided, now)
    return lambda r: transitions.start(
        r,
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name=decided.loop_name,
        decision=decided.decision,
        context=decided.context,
        payload=decided.payload,
        next_check_at=starting_check,
        now=now,
    )


def log_without_loop(bound: Any, record: LedgerRecord) -> None:
    decision = record.decision or {}
    bound.info(
        "finished without a loop",
        outcome=(record.result or {}).get("outcome"),
        activated=decision.get("activated"),
        conditions=[f.get("condition_type") for f in decision.get("fired", [])],
    )
