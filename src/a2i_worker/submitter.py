"""The request path: message → decision → loop → ledger, and when to delete the message.

``RequestProcessor.handle`` returns a :class:`~a2i_worker.intake.Verdict` for each SQS
message. The message is deleted only when the ledger holds its outcome (record OPEN,
DONE or PUBLISHED, or a rejection stored); transient trouble leaves it in SQS.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.a2i import A2IGateway, LoopInfo
from a2i_worker.budget import (
    MAX_DEFER_SECONDS,
    BudgetAction,
    budget_action,
    defer_seconds,
    windows,
)
from a2i_worker.budget_store import BudgetStore, budget_store_for
from a2i_worker.classify import ErrorKind, classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.intake import SqsMessage, Verdict
from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Claim,
    ClaimOutcome,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
    StartPayload,
)
from a2i_worker.messages import (
    CancelRequest,
    MessageRejected,
    Outcome,
    ReviewRequest,
    parse_message,
    request_fingerprint,
)
from a2i_worker.naming import loop_name
from a2i_worker.results import make_result
from a2i_worker.review_metrics import review_metrics
from a2i_worker.rules import evaluate

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_sqs.client import SQSClient

    from a2i_worker.metrics import Metrics
    from a2i_worker.results import Publisher
    from a2i_worker.routes import Route, Routes

__all__ = ["INPUT_CONTENT_LIMIT", "RequestProcessor", "SubmitConfig"]

log = structlog.get_logger(__name__)

#: A deferred message received this often is re-queued as a fresh copy (see _requeue_deferred).
_REQUEUE_AFTER_RECEIVES = 3
_SQS_MAX_DELAY_SECONDS = 900

#: A2I's InputContent limit (characters), from the botocore model.
INPUT_CONTENT_LIMIT = 3_145_728


@dataclass(frozen=True)
class SubmitConfig:
    requests_dlq_url: str | None
    results_queue_url: str
    #: How long after a start a loop is first checked by the sweeper if no event came.
    overdue_after: timedelta = timedelta(minutes=15)
    #: How long a STARTING record may sit before the sweeper resolves it itself.
    starting_grace: timedelta = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


class RequestProcessor:
    def __init__(
        self,
        *,
        ledger: Ledger,
        routes: Routes,
        gateway: A2IGateway,
        s3: S3Client,
        sqs: SQSClient,
        publisher: Publisher,
        config: SubmitConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _now,
        budget_store: BudgetStore | None = None,
    ) -> None:
        self._ledger = ledger
        self._routes = routes
        self._a2i = gateway
        self._s3 = s3
        self._sqs = sqs
        self._publisher = publisher
        self._cfg = config
        self._metrics = metrics
        self._clock = clock
        self._budget_store = budget_store

    # -- entry point ----------------------------------------------------------------

    async def handle(self, msg: SqsMessage) -> str:
        received_at = self._clock()
        if self._metrics and msg.sent_timestamp_ms:
            self._metrics.queue_lag.set(
                max(0.0, received_at.timestamp() - msg.sent_timestamp_ms / 1000)
            )
        try:
            parsed = parse_message(msg.body)
        except MessageRejected as exc:
            return await self._reject_unparsed(msg, exc)
        if isinstance(parsed, CancelRequest):
            return await self._cancel(msg, parsed)
        bound = log.bind(request_id=parsed.request_id)
        try:
            return await self._review(msg, parsed, received_at, bound)
        except TransientError as exc:
            bound.warning("transient failure; message stays in SQS", error=str(exc))
            return Verdict.RETRY

    # -- review requests ------------------------------------------------------------

    async def _review(
        self,
        msg: SqsMessage,
        req: ReviewRequest,
        received_at: datetime,
        bound: Any,
    ) -> str:
        try:
            route = self._routes.resolve(req)
        except PermanentError as exc:
            return await self._reject_valid(msg, req, exc, bound)
        fingerprint = request_fingerprint(req)
        # Decide first, so that a new request is stored with its decision in one ledger
        # write (STARTING or DONE). Not on budgeted routes: their counters are taken only
        # for a claimed request. A redelivered message is decided again for nothing (its
        # stored record wins); a decision that fails becomes a rejection after the claim.
        decided: _Decision | PermanentError | None = None
        first_write: Callable[[LedgerRecord], LedgerRecord | None] | None = None
        if route.budget is None:
            decided = await self._decide_or_error(req, route)
            if isinstance(decided, _Decision):
                first_write = self._first_write(decided)
        try:
            claim = await self._claim(req, fingerprint, route, received_at, then=first_write)
        except PermanentError as exc:  # the decided record cannot be stored (item size)
            decided = exc
            claim = await self._claim(req, fingerprint, route, received_at)
        record = claim.record
        if claim.outcome is ClaimOutcome.MISMATCH:
            err = PermanentError(
                "duplicate_request_id",
                "request_id was already used for a request with different content; "
                "use a new request_id for a new request",
            )
            return await self._reject_duplicate(msg, req, err, fingerprint, bound)
        if claim.outcome is ClaimOutcome.NEW and record.phase is Phase.DONE:
            assert isinstance(decided, _Decision)
            self._publisher.notify(record)
            _log_finished_without_loop(bound, decided)
            return Verdict.DELETE
        if claim.outcome is ClaimOutcome.NEW and record.phase is Phase.STARTING:
            assert record.loop_name is not None
            assert record.payload is not None
            bound = bound.bind(loop_name=record.loop_name)
            return await self._start_and_record(
                req.request_id, record.loop_name, record.payload, bound, received_at
            )
        if claim.outcome is ClaimOutcome.EXISTING and record.phase in (
            Phase.OPEN,
            Phase.DONE,
            Phase.PUBLISHED,
        ):
            bound.info("request already handled; deleting redelivered message", phase=record.phase)
            return Verdict.DELETE
        if claim.outcome is ClaimOutcome.EXISTING and record.phase is Phase.STARTING:
            return await self._resume_starting(record, bound, received_at)

        # Phase RECEIVED: new on a budgeted route, a decision that failed, or a crash
        # before a decision was recorded.
        if decided is None:
            decided = await self._decide_or_error(req, route)
        if isinstance(decided, PermanentError):
            return await self._reject_claimed(msg, record, req, decided, bound)
        if not decided.review:
            return await self._finish_without_loop(record, decided, bound)
        if route.budget is not None and route.name is not None:
            spent = await self._take_budget(msg, req, route, record, decided, bound)
            if spent is not None:
                return spent
        name = decided.loop_name
        try:
            ok = await self._ledger.mark_starting(
                req.request_id,
                expected=[Phase.RECEIVED],
                attempt=1,
                loop_name=name,
                decision=decided.decision,
                context=decided.context,
                payload=decided.payload,
                next_check_at=self._clock() + self._cfg.starting_grace,
            )
        except PermanentError as exc:  # e.g. the input cannot be stored (ledger item size)
            return await self._reject_claimed(msg, record, req, exc, bound)
        if not ok:
            # Another worker moved it on (redelivery raced us): look again next time.
            bound.info("record moved on concurrently; will re-check on redelivery")
            return Verdict.RETRY
        bound = bound.bind(loop_name=name)
        return await self._start_and_record(
            req.request_id, name, decided.payload, bound, received_at
        )

    async def _claim(
        self,
        req: ReviewRequest,
        fingerprint: str,
        route: Route,
        received_at: datetime,
        *,
        then: Callable[[LedgerRecord], LedgerRecord | None] | None = None,
    ) -> Claim:
        """The ledger's claim; any failure but a PermanentError is transient."""
        try:
            return await self._ledger.claim(
                req.request_id, fingerprint, route=route.name, received_at=received_at, then=then
            )
        except PermanentError:
            raise
        except Exception as exc:
            raise TransientError(f"ledger claim failed: {classify(exc).code}") from exc

    async def _decide_or_error(
        self, req: ReviewRequest, route: Route
    ) -> _Decision | PermanentError:
        """Load the input and run the route's rules (pure but for an S3 read)."""
        try:
            input_content = await self._load_input(req)
        except PermanentError as exc:
            return exc
        prediction = req.prediction if req.has_prediction else json.loads(input_content)
        rules = route.rules
        decision = evaluate(rules, prediction, request_id=req.request_id) if rules else None
        activated = decision.activated if decision is not None else True
        decision_json: dict[str, Any] = (
            decision.to_json()
            if decision is not None
            else {
                "activated": True,
                "fired": [
                    {
                        "path": "",
                        "condition_type": "NoRules",
                        "explanation": "route has no rules: every request is reviewed",
                    }
                ],
            }
        )
        context = {
            "request_id": req.request_id,
            "prediction": prediction,
            "metadata": req.metadata,
            "decided_at": self._clock().isoformat(),
            "flow_definition_arn": route.flow_definition_arn,
            "shadow": route.shadow,
        }
        return _Decision(
            decision=decision_json,
            context=context,
            review=activated and not route.shadow,
            loop_name=loop_name(route.flow_definition_arn, req.request_id, 1),
            payload=StartPayload(
                flow_definition_arn=route.flow_definition_arn,
                input_content=input_content,
                content_classifiers=tuple(route.content_classifiers),
            ),
        )

    def _first_write(self, decided: _Decision) -> Callable[[LedgerRecord], LedgerRecord | None]:
        """The pure transition a new record goes through before it is first stored."""
        now = self._clock()
        if not decided.review:
            return lambda r: self._not_activated(r, decided, now)
        return lambda r: transitions.start(
            r,
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name=decided.loop_name,
            decision=decided.decision,
            context=decided.context,
            payload=decided.payload,
            next_check_at=now + self._cfg.starting_grace,
            now=now,
        )

    @staticmethod
    def _not_activated(
        record: LedgerRecord, decided: _Decision, now: datetime, reason: str | None = None
    ) -> LedgerRecord | None:
        """RECEIVED -> DONE with a not_activated result (None from any other phase)."""
        shown = replace(record, decision=decided.decision, context=decided.context)
        res_id, result = make_result(shown, Outcome.NOT_ACTIVATED, now=now, reason=reason)
        done = transitions.store_result(
            record,
            expected=[Phase.RECEIVED],
            result=result,
            result_id=res_id,
            decision=decided.decision,
            now=now,
        )
        return done  # the context went into the result; the record does not keep it

    async def _take_budget(
        self,
        msg: SqsMessage,
        req: ReviewRequest,
        route: Route,
        record: LedgerRecord,
        decided: _Decision,
        bound: Any,
    ) -> str | None:
        """Take one loop from the route's budget; ``None`` = go on and start the loop,
        otherwise the verdict for a spent budget (see :mod:`a2i_worker.budget`)."""
        budget, name = route.budget, route.name
        assert budget is not None
        assert name is not None
        if self._budget_store is None:
            self._budget_store = budget_store_for(self._ledger)
        now = self._clock()
        wins = windows(name, budget, now)
        try:
            full = await self._budget_store.take(wins)
            fired = [str(f.get("path", "")) for f in decided.decision.get("fired", [])]
            action = budget_action(budget, spent=full is not None, fired_paths=fired)
            if action is BudgetAction.START and full is not None:
                await self._budget_store.take(wins, force=True)  # an 'always' condition fired
            used = await self._budget_store.usage([w.key for w in wins])
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
            return None
        what = f"the route's per-{full.kind} review budget ({full.limit} loops) is spent"
        if action is BudgetAction.DEFER:
            seconds = defer_seconds(full, now)
            if msg.receive_count >= _REQUEUE_AFTER_RECEIVES:
                # Every deferral is a receive; with a redrive policy enough of them would
                # move the message to the DLQ. A fresh copy (delayed) starts at zero.
                return await self._requeue_deferred(msg, seconds, bound)
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
            return Verdict.KEEP
        if action is BudgetAction.REJECT:
            err = PermanentError("budget_exhausted", f"{what}; the request was not reviewed")
            return await self._reject_claimed(msg, record, req, err, bound)
        return await self._finish_without_loop(
            record,
            replace(decided, decision={**decided.decision, "activated": False}),
            bound,
            reason=f"budget: {what}; only 'always' conditions start loops",
        )

    async def _requeue_deferred(self, msg: SqsMessage, seconds: int, bound: Any) -> str:
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

    async def _start_and_record(
        self,
        request_id: str,
        name: str,
        payload: StartPayload,
        bound: Any,
        received_at: datetime,
    ) -> str:
        try:
            info = await self._a2i.start(name, payload)
        except PermanentError as exc:
            record = await self._ledger.get(request_id)
            if record is None:
                raise TransientError("ledger record vanished") from exc
            res_id, result = make_result(
                record,
                Outcome.REJECTED,
                now=self._clock(),
                reason=exc.reason,
                rejection_code=exc.code,
            )
            stored = await self._ledger.store_result(
                request_id, expected=[Phase.STARTING], result=result, result_id=res_id
            )
            bound.warning("A2I refused the loop; request rejected", code=exc.code)
            self._count_rejection(exc.code)
            if stored:
                self._notify(record, res_id, result)
            return Verdict.DELETE
        await self._record_open(request_id, info, bound)
        if self._metrics:
            self._metrics.loops_started.inc()
            self._metrics.receive_to_start.observe((self._clock() - received_at).total_seconds())
        bound.info("human loop started")
        return Verdict.DELETE

    async def _record_open(self, request_id: str, info: LoopInfo, bound: Any) -> None:
        created = info.created_at or self._clock()
        ok = await self._ledger.mark_open(
            request_id,
            loop_name=info.name,
            loop_arn=info.arn,
            loop_created_at=created,
            next_check_at=created + self._cfg.overdue_after,
        )
        if not ok:
            bound.debug("mark_open refused (already open or moved on)")
        if info.status in TERMINAL_LOOP_STATUSES:
            # Found an already finished loop (crash window): let the reconciler finish it.
            await self._ledger.apply_loop_update(
                LoopUpdate(
                    loop_name=info.name,
                    status=info.status,
                    observed_at=self._clock(),
                    failure_code=info.failure_code,
                    failure_reason=info.failure_reason,
                    output_uri=info.output_uri,
                    loop_arn=info.arn,
                    loop_created_at=info.created_at,
                )
            )
            await self._ledger.reschedule(request_id, self._clock())

    async def _resume_starting(
        self, record: LedgerRecord, bound: Any, received_at: datetime
    ) -> str:
        """A crash left the record STARTING: Describe decides, never a second loop."""
        assert record.loop_name is not None
        bound = bound.bind(loop_name=record.loop_name)
        info = await self._a2i.describe(record.loop_name)
        if info is not None:
            bound.info("resumed: loop existed already")
            await self._record_open(record.request_id, info, bound)
            return Verdict.DELETE
        if record.payload is None:
            raise TransientError("STARTING record without payload")
        bound.info("resumed: loop was never started; starting it")
        return await self._start_and_record(
            record.request_id, record.loop_name, record.payload, bound, received_at
        )

    async def _finish_without_loop(
        self,
        record: LedgerRecord,
        decided: _Decision,
        bound: Any,
        *,
        reason: str | None = None,
    ) -> str:
        done = self._not_activated(record, decided, self._clock(), reason)
        if done is not None and await self._ledger.store_result(
            record.request_id,
            expected=[Phase.RECEIVED],
            result=done.result or {},
            result_id=str(done.result_id),
            decision=decided.decision,
        ):
            self._publisher.notify(done)
        _log_finished_without_loop(bound, decided)
        return Verdict.DELETE

    async def _load_input(self, req: ReviewRequest) -> str:
        if req.input is not None:
            content = json.dumps(req.input, separators=(",", ":"), ensure_ascii=False)
        else:
            assert req.input_s3_uri is not None
            content = await self._read_s3_input(req.input_s3_uri)
        if len(content) > INPUT_CONTENT_LIMIT:
            raise PermanentError(
                "input_too_large",
                f"input is {len(content):,} characters serialized; A2I accepts at most "
                f"{INPUT_CONTENT_LIMIT:,}",
            )
        return content

    async def _read_s3_input(self, uri: str) -> str:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            head = await self._s3.head_object(Bucket=bucket, Key=key)
            if int(head.get("ContentLength", 0)) > INPUT_CONTENT_LIMIT * 4:
                raise PermanentError(
                    "input_too_large", f"object at input_s3_uri is {head['ContentLength']:,} bytes"
                )
            obj = await self._s3.get_object(Bucket=bucket, Key=key)
            async with obj["Body"] as stream:
                raw = await stream.read()
        except PermanentError:
            raise
        except Exception as exc:
            c = classify(exc)
            if c.kind is ErrorKind.NOT_FOUND:
                raise PermanentError(
                    "input_not_found", f"no object at input_s3_uri (bucket {bucket!r}): {c.code}"
                ) from exc
            if c.kind is ErrorKind.ACCESS:
                raise PermanentError(
                    "input_access_denied", f"the worker may not read input_s3_uri: {c.code}"
                ) from exc
            raise TransientError(f"reading input_s3_uri failed: {c.code}") from exc
        try:
            text = raw.decode("utf-8")
            value = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise PermanentError(
                "input_not_json", "the object at input_s3_uri is not UTF-8 JSON"
            ) from exc
        if not isinstance(value, dict):
            raise PermanentError(
                "input_not_object", "the object at input_s3_uri must be a JSON object"
            )
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    # -- cancel ---------------------------------------------------------------------

    async def _cancel(self, msg: SqsMessage, req: CancelRequest) -> str:
        bound = log.bind(request_id=req.request_id)
        record = await self._ledger.get(req.request_id)
        if record is None:
            err = PermanentError(
                "cancel_unknown_request", "cancel names a request_id the worker has never seen"
            )
            return await self._reject_duplicate(
                msg, None, err, "cancel", bound, request_id=req.request_id
            )
        if record.phase in (Phase.DONE, Phase.PUBLISHED):
            bound.info("cancel after the request finished; nothing to stop", phase=record.phase)
            return Verdict.DELETE
        if record.phase is not Phase.OPEN or record.loop_name is None:
            bound.info(
                "cancel while the loop is being started; retrying shortly", phase=record.phase
            )
            return Verdict.RETRY
        bound = bound.bind(loop_name=record.loop_name)
        if record.loop_status in TERMINAL_LOOP_STATUSES:
            return Verdict.DELETE
        found = await self._a2i.stop(record.loop_name)
        if found:
            await self._ledger.apply_loop_update(
                LoopUpdate(loop_name=record.loop_name, status="Stopping", observed_at=self._clock())
            )
            await self._ledger.reschedule(record.request_id, self._clock() + timedelta(seconds=30))
        bound.info("stop requested", found=found)
        return Verdict.DELETE

    # -- rejections -----------------------------------------------------------------

    async def _send_original_to_dlq(self, msg: SqsMessage, code: str, reason: str) -> None:
        if not self._cfg.requests_dlq_url:
            return
        try:
            await self._sqs.send_message(
                QueueUrl=self._cfg.requests_dlq_url,
                MessageBody=msg.body if msg.body else "(empty body)",
                MessageAttributes={
                    "a2i_worker_rejection_code": {"DataType": "String", "StringValue": code},
                    "a2i_worker_rejection_reason": {
                        "DataType": "String",
                        "StringValue": reason[:1000] or code,
                    },
                    "a2i_worker_source_message_id": {
                        "DataType": "String",
                        "StringValue": msg.message_id or "unknown",
                    },
                },
            )
        except Exception as exc:
            raise TransientError(
                f"could not keep the original in the DLQ: {classify(exc).code}"
            ) from exc

    async def _reject_unparsed(self, msg: SqsMessage, exc: MessageRejected) -> str:
        key = _rejection_key("msg", msg.body)
        bound = log.bind(request_id=exc.request_id, message_id=msg.message_id)
        return await self._store_rejection(msg, key, exc.request_id, exc, bound, fingerprint=key)

    async def _reject_valid(
        self, msg: SqsMessage, req: ReviewRequest, exc: PermanentError, bound: Any
    ) -> str:
        key = _rejection_key("req", req.request_id, msg.body)
        return await self._store_rejection(msg, key, req.request_id, exc, bound, fingerprint=key)

    async def _reject_duplicate(
        self,
        msg: SqsMessage,
        req: ReviewRequest | None,
        exc: PermanentError,
        fingerprint: str,
        bound: Any,
        *,
        request_id: str | None = None,
    ) -> str:
        rid = req.request_id if req is not None else request_id
        key = _rejection_key("dup", str(rid), exc.code, msg.body)
        return await self._store_rejection(msg, key, rid, exc, bound, fingerprint=key)

    async def _store_rejection(
        self,
        msg: SqsMessage,
        key: str,
        request_id: str | None,
        exc: PermanentError,
        bound: Any,
        *,
        fingerprint: str,
    ) -> str:
        """A rejection that must not occupy the request's own ledger record."""
        await self._send_original_to_dlq(msg, exc.code, exc.reason)
        claim = await self._ledger.claim(key, fingerprint, route=None, received_at=self._clock())
        if claim.record.phase in (Phase.DONE, Phase.PUBLISHED):
            return Verdict.DELETE
        record = replace(
            claim.record,
            context={"request_id": request_id, "rejection_code": exc.code},
        )
        res_id, result = make_result(
            record,
            Outcome.REJECTED,
            now=self._clock(),
            request_id=request_id,
            reason=exc.reason,
            result_key=key,
            rejection_code=exc.code,
        )
        if await self._ledger.store_result(
            key, expected=[Phase.RECEIVED], result=result, result_id=res_id
        ):
            self._notify(record, res_id, result)
        bound.warning("message rejected", code=exc.code, reason=exc.reason)
        self._count_rejection(exc.code)
        return Verdict.DELETE

    async def _reject_claimed(
        self,
        msg: SqsMessage,
        record: LedgerRecord,
        req: ReviewRequest,
        exc: PermanentError,
        bound: Any,
    ) -> str:
        """Reject a request whose own record we hold (phase RECEIVED)."""
        await self._send_original_to_dlq(msg, exc.code, exc.reason)
        rec = replace(
            record,
            context={
                "request_id": req.request_id,
                "metadata": req.metadata,
                "rejection_code": exc.code,
            },
        )
        res_id, result = make_result(
            rec, Outcome.REJECTED, now=self._clock(), reason=exc.reason, rejection_code=exc.code
        )
        if await self._ledger.store_result(
            req.request_id, expected=[Phase.RECEIVED], result=result, result_id=res_id
        ):
            self._notify(rec, res_id, result)
        bound.warning("request rejected", code=exc.code, reason=exc.reason)
        self._count_rejection(exc.code)
        return Verdict.DELETE

    def _count_rejection(self, code: str) -> None:
        if self._metrics:
            self._metrics.rejections.labels(code=code).inc()

    def _notify(self, record: LedgerRecord, res_id: str, result: dict[str, Any]) -> None:
        """Hand a freshly stored result to the publisher (no second ledger read)."""
        self._publisher.notify(replace(record, phase=Phase.DONE, result=result, result_id=res_id))


@dataclass(frozen=True)
class _Decision:
    """What the rules decided for one request, before anything is stored."""

    decision: dict[str, Any]
    context: dict[str, Any]
    review: bool  # start a loop: activated and the route is not in shadow mode
    loop_name: str
    payload: StartPayload


def _log_finished_without_loop(bound: Any, decided: _Decision) -> None:
    bound.info(
        "shadow decision" if decided.context.get("shadow") else "not activated",
        activated=decided.decision.get("activated"),
        conditions=[f.get("condition_type") for f in decided.decision.get("fired", [])],
    )


def _rejection_key(kind: str, *parts: str) -> str:
    """Ledger key of a rejection that must not occupy the request's own record: the same
    message (redelivered) always maps to the same key, so it is rejected once."""
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"rejected-{kind}-{digest[:40]}"
