"""A loop's terminal status → the request's one result (or its resubmission).

Completed → output.json → ``completed``; Expired → the next attempt (unless a cancel
was noted or ``max_attempts`` is reached) or ``expired``; Stopped → ``stopped``; other
failures → ``failed``. Reading output.json is bounded: a missing (NoSuchKey), forbidden
(AccessDenied) or unreadable (not JSON) output is tried ``output_tries`` times, with a
growing pause counted in the record's ``tries``, then the request ends ``failed`` with
``failure_code`` ``output_missing`` / ``output_access_denied`` / ``output_unreadable``;
network trouble gets three times as many tries (``output_unavailable``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from a2i_worker.a2i import A2IGateway
from a2i_worker.classify import ErrorKind, classify
from a2i_worker.errors import TransientError
from a2i_worker.ledger.protocol import TERMINAL_LOOP_STATUSES, Ledger, LedgerRecord, Phase
from a2i_worker.messages import Outcome
from a2i_worker.naming import loop_name
from a2i_worker.results import agreement, make_result

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

    from a2i_worker.metrics import Metrics
    from a2i_worker.request.starter import Starter
    from a2i_worker.results import Publisher
    from a2i_worker.routes import Routes

__all__ = ["Finisher", "FinisherConfig", "OutputProblem", "read_output"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FinisherConfig:
    max_attempts: int = 3
    delete_finished_loops: bool = False
    #: Tries to read a missing or unreadable output.json before the request fails.
    output_tries: int = 5
    #: First pause after a failed read; doubles with every try (capped at 15 minutes).
    retry_after: timedelta = timedelta(seconds=30)


class OutputProblem(Exception):  # noqa: N818 (a finding, not a crash)
    """output.json could not be used (yet): ``code`` says why."""

    def __init__(self, code: str, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.transient = transient


async def read_output(s3: S3Client, uri: str) -> dict[str, Any]:
    """Read and parse an A2I output.json; :class:`OutputProblem` says what is wrong."""
    if not uri.startswith("s3://"):
        raise OutputProblem("output_unreadable", f"the loop's output URI is not s3://: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        obj = await s3.get_object(Bucket=bucket, Key=key)
        async with obj["Body"] as stream:
            raw = await stream.read()
    except Exception as exc:
        c = classify(exc)
        if c.kind is ErrorKind.NOT_FOUND:
            raise OutputProblem("output_missing", f"no output.json at {uri} ({c.code})") from exc
        if c.kind is ErrorKind.ACCESS:
            raise OutputProblem(
                "output_access_denied", f"the worker may not read {uri} ({c.code})"
            ) from exc
        if c.kind is ErrorKind.BUG:
            raise
        raise OutputProblem(
            "output_unavailable", f"reading {uri} failed ({c.code})", transient=True
        ) from exc
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise OutputProblem("output_unreadable", "output.json is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise OutputProblem("output_unreadable", "output.json is not a JSON object")
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
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._ledger = ledger
        self._a2i = gateway
        self._s3 = s3
        self._publisher = publisher
        self._routes = routes
        self._cfg = config
        self._metrics = metrics
        self._clock = clock
        self._starter: Starter | None = None

    def due(self, record: LedgerRecord) -> bool:
        """Whether finishing ``record`` again now is in order: no read of its output has
        failed in this stage yet, or the pause after the last failed one is over."""
        due_at = record.next_check_at
        return record.tries == 0 or due_at is None or due_at <= self._clock()

    def use_starter(self, starter: Starter) -> None:
        """Resubmissions go through the one start-and-record path."""
        self._starter = starter

    async def finish(self, record: LedgerRecord) -> None:
        """Produce the outcome for a record whose current loop is terminal.

        Safe to call more than once: the ledger refuses a second result.
        """
        bound = log.bind(request_id=record.request_id, loop_name=record.loop_name)
        status = record.loop_status
        if record.phase is not Phase.OPEN or status not in TERMINAL_LOOP_STATUSES:
            return
        now = self._clock()
        cancelled = record.cancel_requested_at is not None
        shown = record
        if status == "Completed":
            try:
                try:
                    res_id, result = await self._completed(record, now)
                except TransientError as err:  # Describe for the output URI failed
                    raise OutputProblem("output_unavailable", str(err), transient=True) from err
            except OutputProblem as exc:
                if not await self._output_gives_up(record, exc, bound):
                    return
                shown = replace(record, failure_code=exc.code, failure_reason=exc.reason)
                res_id, result = make_result(shown, Outcome.FAILED, now=now, reason=exc.reason)
        elif status == "Stopped" or (cancelled and record.failure_code == "Expired"):
            reason = record.failure_reason or "the loop was stopped"
            if cancelled:
                reason = f"cancelled: {reason}"
            res_id, result = make_result(record, Outcome.STOPPED, now=now, reason=reason)
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
        stored = await self._ledger.store_result(
            record.request_id, expected=[Phase.OPEN], result=result, result_id=res_id
        )
        if stored:
            self._publisher.notify(
                replace(shown, phase=Phase.DONE, result=result, result_id=res_id)
            )
            bound.info("loop finished", outcome=result["outcome"], attempt=record.attempt)
            if self._cfg.delete_finished_loops and record.loop_name:
                await self._delete_loop(record.loop_name, bound)

    async def _output_gives_up(self, record: LedgerRecord, exc: OutputProblem, bound: Any) -> bool:
        """Count a failed read; True when the tries are used up (the request fails)."""
        limit = self._cfg.output_tries * (3 if exc.transient else 1)
        tries = record.tries + 1
        if tries >= limit:
            bound.warning("output.json unusable; request failed", code=exc.code, tries=tries)
            return True
        pause = min(self._cfg.retry_after * 2 ** min(record.tries, 10), timedelta(minutes=15))
        await self._ledger.note_try(record.request_id, self._clock() + pause)
        bound.warning(
            "output.json not usable yet; will try again", code=exc.code, tries=tries, limit=limit
        )
        return False

    async def _completed(self, record: LedgerRecord, now: datetime) -> tuple[str, dict[str, Any]]:
        uri = record.output_uri
        if not uri:
            assert record.loop_name is not None
            info = await self._a2i.describe(record.loop_name)
            uri = info.output_uri if info else None
            if not uri:
                raise OutputProblem("output_missing", "the completed loop has no output URI")
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
        assert self._starter is not None, "Finisher.use_starter() was not called"
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
            next_check_at=self._starter.first_check(self._clock()),
        )
        if not ok:
            return
        current = await self._ledger.get(record.request_id)
        if current is None or current.phase is not Phase.STARTING:
            return
        bound = bound.bind(loop_name=name)
        bound.info("loop expired; resubmitting", attempt=attempt)
        await self._starter.start(current, bound)

    async def _delete_loop(self, name: str, bound: Any) -> None:
        try:
            await self._a2i.delete(name)
        except Exception as exc:
            bound.warning("deleting the finished loop failed", error=classify(exc).code)
