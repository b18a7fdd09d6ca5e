"""Following loops to their end: status events in, results (or resubmissions) out.

``EventHandler`` applies EventBridge status events to the ledger idempotently;
``Finisher`` turns a loop's terminal status into the request's one result: Completed →
output.json → ``completed``; Failed/Expired → resubmit as the next attempt or
``expired``; other failures → ``failed``; Stopped → ``stopped``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.a2i import A2IGateway, GateLike
from a2i_worker.classify import ErrorKind, classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.events import (
    EventParseError,
    GroundTruthEvent,
    LoopStatusEvent,
    parse_event,
)
from a2i_worker.intake import SqsMessage, Verdict
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
)
from a2i_worker.messages import Outcome
from a2i_worker.naming import loop_name
from a2i_worker.results import agreement, make_result

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics
    from a2i_worker.results import Publisher
    from a2i_worker.routes import Routes

__all__ = ["EventHandler", "Finisher", "FinisherConfig", "read_output"]

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FinisherConfig:
    max_attempts: int = 3
    delete_finished_loops: bool = False
    overdue_after: timedelta = timedelta(minutes=15)
    starting_grace: timedelta = timedelta(minutes=5)
    #: How soon to look again when reading output.json failed transiently.
    retry_after: timedelta = timedelta(seconds=30)


async def read_output(s3: S3Client, uri: str) -> dict[str, Any]:
    """Read and parse an A2I output.json. TransientError if it may appear later."""
    if not uri.startswith("s3://"):
        raise PermanentError("bad_output_uri", "the loop's output URI is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        obj = await s3.get_object(Bucket=bucket, Key=key)
        async with obj["Body"] as stream:
            raw = await stream.read()
    except Exception as exc:
        c = classify(exc)
        raise TransientError(f"reading output.json failed: {c.code}") from exc
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise PermanentError("bad_output", "output.json is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise PermanentError("bad_output", "output.json is not a JSON object")
    return doc


class Finisher:
    def __init__(
        self,
        *,
        ledger: Ledger,
        gateway: A2IGateway,
        s3: S3Client,
        publisher: Publisher,
        routes: Routes,
        config: FinisherConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._ledger = ledger
        self._a2i = gateway
        self._s3 = s3
        self._publisher = publisher
        self._routes = routes
        self._cfg = config
        self._metrics = metrics
        self._clock = clock

    async def finish(self, record: LedgerRecord) -> None:
        """Produce the outcome for a record whose current loop is terminal.

        Safe to call more than once: the ledger refuses a second result.
        """
        bound = log.bind(request_id=record.request_id, loop_name=record.loop_name)
        status = record.loop_status
        if record.phase is not Phase.OPEN or status not in TERMINAL_LOOP_STATUSES:
            return
        now = self._clock()
        try:
            if status == "Completed":
                res_id, result = await self._completed(record, now)
            elif status == "Stopped":
                res_id, result = make_result(
                    record,
                    Outcome.STOPPED,
                    now=now,
                    reason=record.failure_reason or "the loop was stopped",
                )
            elif record.failure_code == "Expired":
                if record.attempt < self._cfg.max_attempts and record.payload is not None:
                    await self._resubmit(record, bound)
                    return
                res_id, result = make_result(
                    record,
                    Outcome.EXPIRED,
                    now=now,
                    reason=f"no reviewer finished the task in time ({record.attempt} attempt(s))",
                )
            else:
                res_id, result = make_result(
                    record,
                    Outcome.FAILED,
                    now=now,
                    reason=record.failure_reason or f"the loop failed ({record.failure_code})",
                )
        except TransientError as exc:
            bound.warning("finishing deferred", error=str(exc))
            await self._ledger.reschedule(record.request_id, now + self._cfg.retry_after)
            return
        except PermanentError as exc:
            res_id, result = make_result(record, Outcome.FAILED, now=now, reason=exc.reason)
        stored = await self._ledger.store_result(
            record.request_id, expected=[Phase.OPEN], result=result, result_id=res_id
        )
        if stored:
            self._publisher.notify(
                replace(record, phase=Phase.DONE, result=result, result_id=res_id)
            )
            bound.info("loop finished", outcome=result["outcome"], attempt=record.attempt)
            if self._cfg.delete_finished_loops and record.loop_name:
                await self._delete_loop(record.loop_name, bound)

    async def _completed(self, record: LedgerRecord, now: datetime) -> tuple[str, dict[str, Any]]:
        uri = record.output_uri
        if not uri:
            assert record.loop_name is not None
            info = await self._a2i.describe(record.loop_name)
            uri = info.output_uri if info else None
            if not uri:
                raise TransientError("the completed loop has no output URI yet")
        doc = await read_output(self._s3, uri)
        answers_raw = doc.get("humanAnswers")
        answers = (
            [a for a in answers_raw if isinstance(a, dict)] if isinstance(answers_raw, list) else []
        )
        prediction = (record.context or {}).get("prediction")
        spec = None
        if record.route is not None:
            route = self._routes.get(record.route)
            spec = route.agreement if route is not None else None
        return make_result(
            record,
            Outcome.COMPLETED,
            now=now,
            human_answers=answers,
            agreement_value=agreement(spec, prediction, answers),
        )

    async def _resubmit(self, record: LedgerRecord, bound: Any) -> None:
        assert record.payload is not None
        attempt = record.attempt + 1
        name = loop_name(record.payload.flow_definition_arn, record.request_id, attempt)
        ok = await self._ledger.mark_starting(
            record.request_id,
            expected=[Phase.OPEN],
            attempt=attempt,
            loop_name=name,
            decision=record.decision,
            context=record.context,
            payload=record.payload,
            next_check_at=self._clock() + self._cfg.starting_grace,
        )
        if not ok:
            return
        bound = bound.bind(loop_name=name)
        bound.info("loop expired; resubmitting", attempt=attempt)
        await start_recorded(
            self._a2i,
            self._ledger,
            record.request_id,
            name,
            record,
            self._cfg,
            self._clock,
            bound,
            self._metrics,
        )

    async def _delete_loop(self, name: str, bound: Any) -> None:
        try:
            await self._a2i.delete(name)
        except Exception as exc:
            bound.warning("deleting the finished loop failed", error=classify(exc).code)


async def start_recorded(
    a2i: A2IGateway,
    ledger: Ledger,
    request_id: str,
    name: str,
    record: LedgerRecord,
    cfg: FinisherConfig,
    clock: Callable[[], datetime],
    bound: Any,
    metrics: Metrics | None,
) -> None:
    """Start the loop of a STARTING record that has no SQS message behind it."""
    assert record.payload is not None
    try:
        info = await a2i.start(name, record.payload)
    except TransientError as exc:
        bound.warning("start deferred to the sweeper", error=str(exc))
        return
    except PermanentError as exc:
        current = await ledger.get(request_id)
        if current is None:
            return
        res_id, result = make_result(current, Outcome.FAILED, now=clock(), reason=exc.reason)
        await ledger.store_result(
            request_id, expected=[Phase.STARTING], result=result, result_id=res_id
        )
        bound.warning("resubmission refused by A2I", code=exc.code)
        return
    created = info.created_at or clock()
    await ledger.mark_open(
        request_id,
        loop_name=name,
        loop_arn=info.arn,
        loop_created_at=created,
        next_check_at=created + cfg.overdue_after,
    )
    if metrics:
        metrics.loops_started.inc()


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
            log.warning("ledger update failed; event kept", error=classify(exc).code)
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
            elif known.phase is Phase.OPEN and known.loop_status in TERMINAL_LOOP_STATUSES:
                # A duplicate of a terminal event whose finishing failed earlier: try again.
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
