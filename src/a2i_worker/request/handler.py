"""One message of the requests queue → one verdict (the request path's front door).

Deleted only when the ledger holds what became of it: a result, a rejection (with its
DLQ copy) or a STARTING/OPEN record the sweeper owns. Transient trouble and bugs hand it
back (:mod:`.give_up`); docs/lifecycle.md has every phase and event."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.ledger.protocol import ClaimOutcome, Ledger, LedgerRecord, Phase
from a2i_worker.ledger.transitions import FINAL_PHASES
from a2i_worker.messages import (
    CancelRequest,
    MessageRejected,
    ReviewRequest,
    parse_message,
    request_fingerprint,
)
from a2i_worker.request import decide as d
from a2i_worker.request.budget_step import BudgetStep
from a2i_worker.request.canceller import Canceller
from a2i_worker.request.give_up import HandlerConfig, retry_or_give_up
from a2i_worker.request.inputs import load_input
from a2i_worker.request.rejecter import Rejecter, rejection_key
from a2i_worker.request.starter import Starter
from a2i_worker.sqs_types import SqsMessage, Verdict

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

    from a2i_worker.metrics import Metrics
    from a2i_worker.results import Publisher
    from a2i_worker.routes import Route, Routes

__all__ = ["HandlerConfig", "RequestHandler"]

log = structlog.get_logger(__name__)


class RequestHandler:
    def __init__(
        self,
        *,
        ledger: Ledger,
        routes: Routes,
        s3: S3Client,
        starter: Starter,
        rejecter: Rejecter,
        canceller: Canceller,
        budget: BudgetStep,
        publisher: Publisher,
        clock: Callable[[], datetime],
        config: HandlerConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._ledger = ledger
        self._routes = routes
        self._s3 = s3
        self._starter = starter
        self._rejecter = rejecter
        self._canceller = canceller
        self._budget = budget
        self._publisher = publisher
        self._clock = clock
        self.config = config or HandlerConfig()
        self._metrics = metrics

    async def handle(self, msg: SqsMessage) -> str:
        received_at = self._clock()
        if self._metrics and msg.sent_timestamp_ms:
            lag = received_at.timestamp() - msg.sent_timestamp_ms / 1000
            self._metrics.queue_lag.set(max(0.0, lag))
        try:
            return await self._handle(msg, received_at)
        except TransientError as exc:
            log.warning("transient failure; message stays in SQS", error=str(exc))
            return await retry_or_give_up(
                self._ledger, self._rejecter, self.config, msg, "retries_exhausted", str(exc)
            )
        except Exception as exc:
            log.exception("unexpected error handling a request (a bug)", error=type(exc).__name__)
            if self._metrics:
                self._metrics.unexpected_errors.labels(role="requests").inc()
            return await retry_or_give_up(
                self._ledger, self._rejecter, self.config, msg, "internal_error", type(exc).__name__
            )

    async def _handle(self, msg: SqsMessage, received_at: datetime) -> str:
        try:
            parsed = parse_message(msg.body)
        except MessageRejected as exc:
            bound = log.bind(request_id=exc.request_id, message_id=msg.message_id)
            key = rejection_key("msg", msg.body)
            return await self._rejecter.reject_message(msg, key, exc.request_id, exc, bound)
        if isinstance(parsed, CancelRequest):
            return await self._canceller.cancel(msg, parsed)
        bound = log.bind(request_id=parsed.request_id)
        try:
            route = self._routes.resolve(parsed)
        except PermanentError as exc:
            key = rejection_key("req", parsed.request_id, msg.body)
            return await self._rejecter.reject_message(msg, key, parsed.request_id, exc, bound)
        return await self._review(msg, parsed, route, received_at, bound)

    async def _review(
        self, msg: SqsMessage, req: ReviewRequest, route: Route, received_at: datetime, bound: Any
    ) -> str:
        # Decide first, so a new request is stored with its decision in one write
        # (STARTING or DONE); not on budgeted routes: counters are taken only once claimed.
        decided: d.Decision | PermanentError | None = None
        then = None
        now = self._clock()
        if route.budget is None:
            decided = await self._decide(req, route)
            if isinstance(decided, d.Decision):
                then = d.first_write(
                    decided, now=now, starting_check=self._starter.first_check(now)
                )
        fingerprint = request_fingerprint(req)
        try:
            claim = await self._ledger.claim(
                req.request_id, fingerprint, route=route.name, received_at=received_at, then=then
            )
        except PermanentError as exc:  # the decided record cannot be stored (item size)
            decided = exc
            claim = await self._ledger.claim(
                req.request_id, fingerprint, route=route.name, received_at=received_at
            )
        record = claim.record
        if claim.outcome is ClaimOutcome.MISMATCH:
            if Canceller.is_tombstone(record):
                bound.info("request arrived after its cancel; not started")
                return Verdict.DELETE
            err = PermanentError(
                "duplicate_request_id",
                "request_id was already used for a request with different content; "
                "use a new request_id for a new request",
            )
            key = rejection_key("dup", req.request_id, err.code, msg.body)
            return await self._rejecter.reject_message(msg, key, req.request_id, err, bound)
        if record.phase in FINAL_PHASES:
            if claim.outcome is ClaimOutcome.NEW:
                self._publisher.notify(record)
                d.log_without_loop(bound, record)
            else:
                bound.info("request already finished; deleting redelivered message")
                await self._rejecter.ensure_copy(record, msg)
            return Verdict.DELETE
        if record.loop_name is not None:
            bound = bound.bind(loop_name=record.loop_name)
        if record.phase is Phase.OPEN:
            bound.info("request already has its loop; deleting redelivered message")
            return Verdict.DELETE
        if record.phase is Phase.STARTING:
            if claim.outcome is ClaimOutcome.NEW:
                await self._starter.start(record, bound, msg=msg, received_at=received_at)
            else:
                await self._starter.resume(record, bound, msg=msg, received_at=received_at)
            return Verdict.DELETE
        return await self._received(msg, req, route, record, decided, received_at, bound)

    async def _received(
        self,
        msg: SqsMessage,
        req: ReviewRequest,
        route: Route,
        record: LedgerRecord,
        decided: d.Decision | PermanentError | None,
        received_at: datetime,
        bound: Any,
    ) -> str:
        """Phase RECEIVED: new on a budgeted route, a failed decision, or a crash before
        the decision was recorded."""
        if decided is None:
            decided = await self._decide(req, route)
        if isinstance(decided, PermanentError):
            return await self._reject_own(record, decided, bound, msg)
        skip: str | None = None
        if decided.review and route.budget is not None and route.name is not None:
            answer = await self._budget.take(msg, route, decided, bound)
            if answer.verdict is not None:
                return answer.verdict
            if answer.reject is not None:
                return await self._reject_own(record, answer.reject, bound, msg)
            skip = answer.skip_reason
        if not decided.review or skip is not None:
            if skip is not None:
                decided = replace(decided, decision={**decided.decision, "activated": False})
            done = d.not_activated(record, decided, self._clock(), skip)
            if done is not None and await self._ledger.store_result(
                record.request_id,
                expected=[Phase.RECEIVED],
                result=done.result or {},
                result_id=str(done.result_id),
                decision=decided.decision,
            ):
                self._publisher.notify(done)
                d.log_without_loop(bound, done)
            return Verdict.DELETE
        now = self._clock()
        try:
            ok = await self._ledger.mark_starting(
                req.request_id,
                expected=[Phase.RECEIVED],
                attempt=1,
                loop_name=decided.loop_name,
                decision=decided.decision,
                context=decided.context,
                payload=decided.payload,
                next_check_at=self._starter.first_check(now),
            )
        except PermanentError as exc:  # e.g. the input cannot be stored (ledger item size)
            return await self._reject_own(record, exc, bound, msg)
        if not ok:
            bound.info("record moved on concurrently; will re-check on redelivery")
            return Verdict.RETRY
        starting = replace(
            record,
            phase=Phase.STARTING,
            loop_name=decided.loop_name,
            decision=decided.decision,
            context=decided.context,
            payload=decided.payload,
        )
        bound = bound.bind(loop_name=decided.loop_name)
        await self._starter.start(starting, bound, msg=msg, received_at=received_at)
        return Verdict.DELETE

    async def _reject_own(
        self, record: LedgerRecord, exc: PermanentError, bound: Any, msg: SqsMessage
    ) -> str:
        await self._rejecter.reject_record(record, exc, bound, expected=[Phase.RECEIVED], msg=msg)
        return Verdict.DELETE

    async def _decide(self, req: ReviewRequest, route: Route) -> d.Decision | PermanentError:
        try:
            content = await load_input(self._s3, req)
        except PermanentError as exc:
            return exc
        return d.decide(req, route, content, now=self._clock())
