"""Nothing retries forever: a message that keeps failing is handed back with a growing
delay, and at its last receive it is rejected with a reason (its own record when it has
one in RECEIVED; a STARTING/OPEN record belongs to the sweeper; final is final)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from a2i_worker.errors import PermanentError
from a2i_worker.ledger.protocol import Ledger, Phase
from a2i_worker.messages import parse_message
from a2i_worker.request.rejecter import Rejecter, rejection_key
from a2i_worker.sqs_types import SqsMessage, Verdict, backoff_visibility

__all__ = ["HandlerConfig", "retry_or_give_up"]

log = structlog.get_logger(__name__)


@dataclass
class HandlerConfig:
    #: The receive at which a message that keeps failing is rejected instead of retried
    #: (the worker sets it to the queue's redrive maxReceiveCount when there is one).
    max_receives: int = 10
    #: Visibility after a first failure; doubles with every receive (capped at 15 min).
    retry_visibility: int = 5


async def retry_or_give_up(
    ledger: Ledger, rejecter: Rejecter, config: HandlerConfig, msg: SqsMessage, code: str, why: str
) -> str:
    """Hand the message back with a growing delay; at its last receive, reject it."""
    if msg.receive_count < config.max_receives:
        msg.retry_after = backoff_visibility(msg.receive_count, config.retry_visibility)
        return Verdict.RETRY
    err = PermanentError(
        code, f"gave up after {msg.receive_count} receives; last error: {why}"[:900]
    )
    try:
        parsed = parse_message(msg.body)
        record = await ledger.get(parsed.request_id)
        bound = log.bind(request_id=parsed.request_id)
        if record is not None and record.phase is Phase.RECEIVED:
            await rejecter.reject_record(record, err, bound, expected=[Phase.RECEIVED], msg=msg)
            return Verdict.DELETE
        if record is not None:  # STARTING/OPEN: the sweeper owns it; final: done
            return Verdict.DELETE
        key = rejection_key("gave-up", msg.body)
        return await rejecter.reject_message(msg, key, parsed.request_id, err, bound)
    except Exception:
        log.exception("could not reject a message that keeps failing; handing it back")
        msg.retry_after = backoff_visibility(msg.receive_count, config.retry_visibility)
        return Verdict.RETRY
