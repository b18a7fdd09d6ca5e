"""A route's review budget, taken for one claimed request (see :mod:`a2i_worker.budget`).

The answer is one of: start the loop; defer the message (its visibility, or a fresh
delayed copy after a few deferrals so a redrive policy never sends it to the DLQ);
reject it (``budget_exhausted``); or finish it without a loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.budget import (
    MAX_DEFER_SECONDS,
    BudgetAction,
    budget_action,
    defer_seconds,
    windows,
)
from a2i_worker.budget_store import BudgetStore, budget_store_for
from a2i_worker.classify import classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.ledger.protocol import Ledger
from a2i_worker.review_metrics import review_metrics
from a2i_worker.sqs_types import SqsMessage, Verdict

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics
    from a2i_worker.request.decide import Decision
    from a2i_worker.routes import Route

__all__ = ["BudgetAnswer", "BudgetStep"]

log = structlog.get_logger(__name__)

#: A deferred message received this often is re-queued as a fresh copy.
_REQUEUE_AFTER_RECEIVES = 3
_SQS_MAX_DELAY_SECONDS = 900


@dataclass(frozen=True)
class BudgetAnswer:
    """Exactly one field is set, or none (= start the loop)."""

    verdict: str | None = None  # the message was deferred: this is its verdict
    reject: PermanentError | None = None
    skip_reason: str | None = None  # finish as not activated, with this reason


class BudgetStep:
    def __init__(
        self,
        *,
        ledger: Ledger,
        sqs: SQSClient,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
        store: BudgetStore | None = None,
    ) -> None:
        self._ledger = ledger
        self._sqs = sqs
        self._clock = clock
        self._metrics = metrics
        self._store = store

    async def take(
        self, msg: SqsMessage, route: Route, decided: Decision, bound: Any
    ) -> BudgetAnswer:
        budget, name = route.budget, route.name
        assert budget is not None
        assert name is not None
        if self._store is None:
            self._store = budget_store_for(self._ledger)
        now = self._clock()
        wins = windows(name, budget, now)
        try:
            # the loop it is for: a redelivered message finds its own take, not a spent budget
            token = decided.loop_name
            full = await self._store.take(wins, token=token)
            fired = [str(f.get("path", "")) for f in decided.decision.get("fired", [])]
            action = budget_action(budget, spent=full is not None, fired_paths=fired)
            if action is BudgetAction.START and full is not None:
                await self._store.take(wins, force=True, token=token)  # 'always' fired
            used = await self._store.usage([w.key for w in wins])
        except TransientError:
            raise
        except Exception as exc:
            raise TransientError(f"budget counters: {classify(exc).code}") from exc
        if self._metrics:
            rm = review_metrics(self._metrics)
            for w in wins:
                rm.budget_used.labels(route=name, window=w.kind).set(used[w.key])
                rm.budget_limit.labels(route=name, window=w.kind).set(w.limit)
            if full is not None:
                rm.budget_spent.labels(route=name, action=action.value).inc()
        if full is None or action is BudgetAction.START:
            return BudgetAnswer()
        what = f"the route's per-{full.kind} review budget ({full.limit} loops) is spent"
        if action is BudgetAction.DEFER:
            seconds = defer_seconds(full, now)
            if msg.receive_count >= _REQUEUE_AFTER_RECEIVES:
                return BudgetAnswer(verdict=await self._requeue(msg, seconds, bound))
            # SQS counts the 12 h limit from the receive, not from this call.
            held = int(time.monotonic() - msg.received_monotonic) + 1
            seconds = max(1, min(seconds, MAX_DEFER_SECONDS - held))
            msg.done = True  # no more heartbeats: the deferral below is the last word
            try:
                await self._sqs.change_message_visibility(
                    QueueUrl=msg.queue_url,
                    ReceiptHandle=msg.receipt_handle,
                    VisibilityTimeout=seconds,
                )
            except Exception as exc:  # it comes back after the normal visibility timeout
                bound.warning("could not defer the message", error=classify(exc).code)
            bound.info("budget spent; request deferred", seconds=seconds, window=full.kind)
            return BudgetAnswer(verdict=Verdict.KEEP)
        if action is BudgetAction.REJECT:
            return BudgetAnswer(
                reject=PermanentError("budget_exhausted", f"{what}; the request was not reviewed")
            )
        return BudgetAnswer(skip_reason=f"budget: {what}; only 'always' conditions start loops")

    async def _requeue(self, msg: SqsMessage, seconds: int, bound: Any) -> str:
        """Send a delayed copy of ``msg`` and delete the original (receive count reset).

        A crash between the two leaves both; the ledger makes the copy a no-op duplicate.
        """
        try:
            await self._sqs.send_message(
                QueueUrl=msg.queue_url,
                MessageBody=msg.body,
                DelaySeconds=min(seconds, _SQS_MAX_DELAY_SECONDS),
            )
        except Exception as exc:
            raise TransientError(f"re-queueing a deferred request: {classify(exc).code}") from exc
        bound.info("budget spent; request re-queued with a delay", seconds=seconds)
        return Verdict.DELETE
