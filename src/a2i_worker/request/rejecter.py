"""Rejections: one result with a reason, and exactly one copy in the requests DLQ.

Whoever decides a rejection (a message that cannot be parsed, a route that does not
exist, A2I refusing the loop at intake, at resubmission or in a sweep), it goes
through here, always in the same order:

1. the ledger first: the result is stored (or found already stored) with the source
   message id — a redelivered message finds it there and is never rejected twice;
2. then one copy of the original in the requests DLQ (attributes: code, reason,
   source message id, result id), marked ``dlq_copied_at`` in the ledger;
3. only then is the message deleted: a crash between 1 and 3 redelivers it, and the
   copy is sent at most once more only if the crash fell between sending and marking.

Without a message in hand (A2I refused a resubmission or a sweeper start) the copy's
body is rebuilt from the record: a review request that can be redriven as it is. It is
sent *before* the result is stored: nothing would bring the record back if the send
failed after it (a crash in between sends it once more, as above).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.classify import classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.ledger.protocol import Ledger, LedgerRecord, Phase
from a2i_worker.ledger.transitions import FINAL_PHASES
from a2i_worker.messages import Outcome
from a2i_worker.results import make_result
from a2i_worker.sqs_types import SqsMessage, Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics
    from a2i_worker.results import Publisher

__all__ = ["Rejecter", "rebuilt_body", "rejection_key"]

log = structlog.get_logger(__name__)


def rejection_key(kind: str, *parts: str) -> str:
    """Ledger key of a rejection that must not occupy the request's own record: the same
    message (redelivered) always maps to the same key, so it is rejected once."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"rejected-{kind}-{digest[:40]}"


def rebuilt_body(record: LedgerRecord) -> str:
    """A review request equivalent to the one that made ``record`` (for a DLQ copy)."""
    ctx = record.context or {}
    body: dict[str, Any] = {"version": 1, "type": "review", "request_id": record.request_id}
    if record.route:
        body["route"] = record.route
    elif record.payload is not None:
        body["flow_definition_arn"] = record.payload.flow_definition_arn
    if record.payload is not None:
        body["input"] = json.loads(record.payload.input_content)
    if ctx.get("metadata"):
        body["metadata"] = ctx["metadata"]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _is_rejection(record: LedgerRecord) -> bool:
    return (
        record.phase in FINAL_PHASES
        and (record.result or {}).get("outcome") == Outcome.REJECTED.value
    )


class Rejecter:
    def __init__(
        self,
        *,
        ledger: Ledger,
        sqs: SQSClient,
        publisher: Publisher,
        dlq_url: str | None,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._ledger = ledger
        self._sqs = sqs
        self._publisher = publisher
        self._dlq = dlq_url
        self._clock = clock
        self._metrics = metrics

    async def reject_message(
        self, msg: SqsMessage, key: str, request_id: str | None, exc: PermanentError, bound: Any
    ) -> str:
        """A rejection stored under its own ``key`` (the message cannot be, or must not
        become, the request's own record: unparsable, duplicate id, unknown route)."""
        claim = await self._ledger.claim(key, key, route=None, received_at=self._clock())
        record = claim.record
        if record.phase is Phase.RECEIVED:
            shown = replace(record, context={"request_id": request_id, "rejection_code": exc.code})
            res_id, result = make_result(
                shown,
                Outcome.REJECTED,
                now=self._clock(),
                request_id=request_id,
                reason=exc.reason,
                result_key=key,
                rejection_code=exc.code,
            )
            if await self._ledger.store_result(
                key,
                expected=[Phase.RECEIVED],
                result=result,
                result_id=res_id,
                source_message_id=msg.message_id,
            ):
                self._stored(shown, res_id, result, exc, bound, "message rejected")
                record = replace(shown, phase=Phase.DONE, result=result, result_id=res_id)
            else:
                record = await self._ledger.get(key) or record
        await self.ensure_copy(record, msg)
        return Verdict.DELETE

    async def reject_record(
        self,
        record: LedgerRecord,
        exc: PermanentError,
        bound: Any,
        *,
        expected: Sequence[Phase],
        msg: SqsMessage | None = None,
    ) -> None:
        """Reject the request whose own record this is (RECEIVED, or STARTING when A2I
        refused the loop), then keep its one DLQ copy."""
        ctx = dict(record.context or {})
        ctx.setdefault("request_id", record.request_id)
        shown = replace(record, context={**ctx, "rejection_code": exc.code})
        res_id, result = make_result(
            shown, Outcome.REJECTED, now=self._clock(), reason=exc.reason, rejection_code=exc.code
        )
        done = replace(shown, phase=Phase.DONE, result=result, result_id=res_id)
        copied_first = msg is None and bool(self._dlq)
        if copied_first:
            latest = await self._ledger.get(record.request_id)
            if latest is None or latest.phase in FINAL_PHASES:  # decided meanwhile
                if latest is not None:
                    await self.ensure_copy(latest, None)
                return

            # No message in hand to redeliver this: the copy goes first, so a failed send
            # leaves the record as it was (the sweeper tries again), never a stored
            # rejection whose copy nobody will send.
            await self._send_copy(done, None)
        stored = await self._ledger.store_result(
            record.request_id,
            expected=expected,
            result=result,
            result_id=res_id,
            source_message_id=msg.message_id if msg is not None else None,
        )
        if stored:
            self._stored(shown, res_id, result, exc, bound, "request rejected")
            current: LedgerRecord | None = done
            if copied_first:
                await self._ledger.mark_dlq_copied(record.request_id)
                return
        else:
            current = await self._ledger.get(record.request_id)
        if current is not None:
            await self.ensure_copy(current, msg)

    async def ensure_copy(self, record: LedgerRecord, msg: SqsMessage | None) -> None:
        """Send the DLQ copy of a stored rejection unless the ledger says it was sent."""
        if not _is_rejection(record) or record.dlq_copied_at is not None or not self._dlq:
            return
        await self._send_copy(record, msg)
        await self._ledger.mark_dlq_copied(record.request_id)

    async def _send_copy(self, record: LedgerRecord, msg: SqsMessage | None) -> None:
        """One copy of the original (or of a request rebuilt from ``record``) in the DLQ;
        :class:`TransientError` when SQS does not take it."""
        assert self._dlq is not None
        result = record.result or {}
        body = msg.body if msg is not None else rebuilt_body(record)
        source = msg.message_id if msg is not None else (record.source_message_id or "")
        code = str(result.get("rejection_code") or "rejected")
        reason = str(result.get("reason") or code)
        attrs: dict[str, Any] = {
            "a2i_worker_rejection_code": {"DataType": "String", "StringValue": code},
            "a2i_worker_rejection_reason": {"DataType": "String", "StringValue": reason[:1000]},
            "a2i_worker_source_message_id": {
                "DataType": "String",
                "StringValue": source or "none (rebuilt from the ledger)",
            },
            "a2i_worker_result_id": {
                "DataType": "String",
                "StringValue": str(record.result_id or "unknown"),
            },
        }
        try:
            await self._sqs.send_message(
                QueueUrl=self._dlq, MessageBody=body or "(empty body)", MessageAttributes=attrs
            )
        except Exception as exc:
            raise TransientError(
                f"could not keep the original in the DLQ: {classify(exc).code}"
            ) from exc

    def _stored(
        self,
        record: LedgerRecord,
        res_id: str,
        result: dict[str, Any],
        exc: PermanentError,
        bound: Any,
        what: str,
    ) -> None:
        if exc.quotes_service:  # AWS's own words may echo the input: the result has them
            bound.warning(what, code=exc.code)
        else:
            bound.warning(what, code=exc.code, reason=exc.reason)
        if self._metrics:
            self._metrics.rejections.labels(code=exc.code).inc()
        self._publisher.notify(replace(record, phase=Phase.DONE, result=result, result_id=res_id))
