"""The events queue: EventBridge status events applied to the ledger, idempotently.

A status event for a record's current loop updates its status; a terminal one hands the
record to the :class:`~a2i_worker.finisher.Finisher`. Duplicates, stale and unknown
loops are counted and acknowledged; an unusable event goes to the events DLQ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from a2i_worker.a2i import GateLike
from a2i_worker.classify import ErrorKind, classify
from a2i_worker.events import (
    EventParseError,
    GroundTruthEvent,
    LoopStatusEvent,
    parse_event,
)
from a2i_worker.failures import report_failure
from a2i_worker.finisher import Finisher
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Ledger,
    LoopUpdate,
    Phase,
)
from a2i_worker.sqs_types import SqsMessage, Verdict

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics

__all__ = ["EventHandler"]

log = structlog.get_logger(__name__)


class EventHandler:
    """Handles one message of the events queue."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        finisher: Finisher,
        gate: GateLike,
        sqs: SQSClient,
        events_dlq_url: str | None,
        metrics: Metrics | None = None,
        on_loop_finished: Callable[[], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._finisher = finisher
        self._gate = gate
        self._sqs = sqs
        self._dlq = events_dlq_url
        self._metrics = metrics
        self._on_loop_finished = on_loop_finished
        self.counts: dict[str, int] = {}

    @property
    def finisher(self) -> Finisher:
        return self._finisher

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._metrics:
            self._metrics.events.labels(kind=kind).inc()

    async def handle(self, msg: SqsMessage) -> str:
        try:
            event = parse_event(msg.body)
        except EventParseError as exc:
            return await self._dead_letter(msg, exc.reason)
        if isinstance(event, GroundTruthEvent):
            self._count("ground_truth")
            log.info("Ground Truth event ignored", detail_type=event.detail_type)
            return Verdict.DELETE
        if not isinstance(event, LoopStatusEvent):
            self._count("other")
            log.info("other SageMaker event ignored", detail_type=event.detail_type)
            return Verdict.DELETE
        return await self.apply(event.update, kind="status")

    async def apply(self, update: LoopUpdate, *, kind: str) -> str:
        """Apply one loop status observation; finish the request if the loop is done."""
        try:
            record = await self._ledger.apply_loop_update(update)
        except Exception as exc:
            report_failure(
                log, exc, "applying a status event", role="events", metrics=self._metrics
            )
            return Verdict.RETRY
        if record is None:
            known = await self._ledger.get_by_loop(update.loop_name)
            self._count(f"{kind}_duplicate" if known is not None else f"{kind}_unknown_loop")
            if known is None:
                log.info(
                    "event for a loop the ledger doesn't know",
                    loop_name=update.loop_name,
                    status=update.status,
                )
            elif (
                known.phase is Phase.OPEN
                and known.loop_status in TERMINAL_LOOP_STATUSES
                and self._finisher.due(known)
            ):
                # A duplicate of a terminal event whose finishing did not happen (a crash
                # after the status was stored): finish now. After a failed output read the
                # finisher's own pause applies: a stale event does not use up a try.
                await self._finisher.finish(known)
            return Verdict.DELETE
        self._count(kind)
        if record.loop_status in TERMINAL_LOOP_STATUSES:
            self._gate_finished()
            await self._finisher.finish(record)
        return Verdict.DELETE

    def _gate_finished(self) -> None:
        on_finished = getattr(self._gate, "on_loop_finished", None)
        if on_finished is not None:
            on_finished()
        if self._on_loop_finished:
            self._on_loop_finished()

    async def _dead_letter(self, msg: SqsMessage, reason: str) -> str:
        self._count("invalid")
        log.warning(
            "unusable event sent to the events DLQ", reason=reason, message_id=msg.message_id
        )
        if not self._dlq:
            return Verdict.DELETE
        try:
            await self._sqs.send_message(
                QueueUrl=self._dlq,
                MessageBody=msg.body or "(empty body)",
                MessageAttributes={
                    "a2i_worker_rejection_reason": {
                        "DataType": "String",
                        "StringValue": reason[:1000],
                    },
                },
            )
        except Exception as exc:
            c = classify(exc)
            log.warning("events DLQ unreachable; event kept", error=c.code)
            return Verdict.RETRY if c.kind is not ErrorKind.INVALID else Verdict.DELETE
        return Verdict.DELETE
