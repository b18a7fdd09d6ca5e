"""Start-and-record: the one path from a STARTING record to an OPEN one.

Used by the request handler, by the finisher's resubmissions and by the sweeper, so
every A2I answer has one outcome wherever the start happens:

- accepted → OPEN (``mark_open``); if a cancel arrived meanwhile, the loop is stopped
  at once; if the request ended meanwhile (the record is final), the new loop is an
  orphan and is stopped;
- refused (validation, access) → ``rejected`` with one DLQ copy (:mod:`.rejecter`);
- throttled, over quota or unavailable for longer than ``start_wait`` → the record
  stays STARTING, one more try is counted and the sweeper retries soon; after
  ``start_timeout`` in STARTING the request ends ``failed`` (code ``start_timed_out``);
- a cancel noted before the start → no loop at all, a ``stopped`` result.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
)
from a2i_worker.ledger.transitions import FINAL_PHASES
from a2i_worker.messages import Outcome
from a2i_worker.results import make_result
from a2i_worker.sqs_types import SqsMessage

if TYPE_CHECKING:
    from a2i_worker.a2i import A2IGateway, LoopInfo
    from a2i_worker.metrics import Metrics
    from a2i_worker.request.rejecter import Rejecter
    from a2i_worker.results import Publisher

__all__ = ["StartConfig", "StartResult", "Starter"]

log = structlog.get_logger(__name__)


class StartResult(enum.StrEnum):
    OPENED = "opened"  # the loop exists and the record is OPEN
    REJECTED = "rejected"  # A2I refused it: rejected result stored
    ENDED = "ended"  # no loop (cancelled / timed out): a result is stored
    PENDING = "pending"  # not started yet: the record stays STARTING, the sweeper retries


@dataclass(frozen=True)
class StartConfig:
    #: First sweeper check of an OPEN loop when no event came.
    overdue_after: timedelta = timedelta(minutes=15)
    #: Longest one start waits for the rate limiter and the quota gate.
    start_wait: timedelta = timedelta(seconds=60)
    #: When the sweeper looks at a STARTING record again after a start that did not happen.
    retry_after: timedelta = timedelta(seconds=30)
    #: Longest a request may stay STARTING (counted from when it entered STARTING).
    start_timeout: timedelta = timedelta(hours=6)


class Starter:
    def __init__(
        self,
        *,
        ledger: Ledger,
        gateway: A2IGateway,
        rejecter: Rejecter,
        publisher: Publisher,
        config: StartConfig,
        clock: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._ledger = ledger
        self._a2i = gateway
        self._rejecter = rejecter
        self._publisher = publisher
        self._cfg = config
        self._clock = clock
        self._metrics = metrics

    @property
    def config(self) -> StartConfig:
        return self._cfg

    def first_check(self, now: datetime) -> datetime:
        """When the sweeper first looks at a record that just entered STARTING."""
        return now + self._cfg.start_wait + self._cfg.retry_after

    async def start(
        self,
        record: LedgerRecord,
        bound: Any,
        *,
        msg: SqsMessage | None = None,
        received_at: datetime | None = None,
    ) -> StartResult:
        """StartHumanLoop for a STARTING record, then record what A2I answered."""
        assert record.loop_name is not None
        if record.cancel_requested_at is not None:
            return await self.end(
                record, Outcome.STOPPED, "cancelled before a loop was started", bound
            )
        if record.payload is None:
            return await self.end(record, Outcome.FAILED, "no start payload stored", bound)
        try:
            with anyio.fail_after(self._cfg.start_wait.total_seconds()):
                info = await self._a2i.start(record.loop_name, record.payload)
        except TimeoutError:
            return await self._pending(record, bound, "held back by the rate limiter or quota")
        except TransientError as exc:
            return await self._pending(record, bound, str(exc))
        except PermanentError as exc:
            await self._rejecter.reject_record(
                record, exc, bound, expected=[Phase.STARTING], msg=msg
            )
            return StartResult.REJECTED
        return await self.record_open(record, info, bound, received_at=received_at, fresh=True)

    async def resume(
        self,
        record: LedgerRecord,
        bound: Any,
        *,
        msg: SqsMessage | None = None,
        received_at: datetime | None = None,
        found_only: bool = False,
    ) -> StartResult:
        """A STARTING record whose start may have happened (crash, redelivery, sweep):
        Describe decides, and the loop's deterministic name means never a second one.
        ``found_only``: record a loop A2I has, but start none (the record is not the
        sweeper's yet: another replica may be starting it right now)."""
        assert record.loop_name is not None
        info = await self._a2i.describe(record.loop_name)
        if info is not None:
            bound.info("resumed: the loop existed already")
            return await self.record_open(record, info, bound)
        if found_only:
            return StartResult.PENDING
        if record.cancel_requested_at is None and self._timed_out(record):
            return await self.end(
                record,
                Outcome.FAILED,
                f"no loop could be started within {self._cfg.start_timeout}",
                bound,
                code="start_timed_out",
            )
        return await self.start(record, bound, msg=msg, received_at=received_at)

    async def record_open(
        self,
        record: LedgerRecord,
        info: LoopInfo,
        bound: Any,
        *,
        received_at: datetime | None = None,
        fresh: bool = False,
    ) -> StartResult:
        created = info.created_at or self._clock()
        current = await self._ledger.mark_open(
            record.request_id,
            loop_name=info.name,
            loop_arn=info.arn,
            loop_created_at=created,
            next_check_at=created + self._cfg.overdue_after,
        )
        if current is None:
            current = await self._ledger.get(record.request_id)
            if current is None or current.phase in FINAL_PHASES:
                # The request ended while its loop was being started: nobody waits for
                # this loop any more; stop it rather than leave reviewers working on it.
                if info.status not in TERMINAL_LOOP_STATUSES:
                    await self._a2i.stop(info.name)
                bound.warning("loop started for a request that had ended; stopped it")
                return StartResult.ENDED
            bound.warning("mark_open refused", phase=current.phase, loop=current.loop_name)
            return StartResult.PENDING
        if fresh and self._metrics:
            self._metrics.loops_started.inc()
            if received_at is not None:
                seconds = (self._clock() - received_at).total_seconds()
                self._metrics.receive_to_start.observe(seconds)
        if info.status in TERMINAL_LOOP_STATUSES:
            # Found an already finished loop (crash window): the sweeper finishes it now.
            await self._ledger.apply_loop_update(_update(info, self._clock()))
            await self._ledger.reschedule(record.request_id, self._clock())
        elif current.cancel_requested_at is not None:
            await self.stop_open(current, bound)
            return StartResult.OPENED
        bound.info("human loop started" if fresh else "loop recorded as open")
        return StartResult.OPENED

    async def stop_open(self, record: LedgerRecord, bound: Any) -> None:
        """StopHumanLoop for an OPEN record; the Stopping stage starts now."""
        assert record.loop_name is not None
        found = await self._a2i.stop(record.loop_name)
        now = self._clock()
        if found:
            await self._ledger.apply_loop_update(
                LoopUpdate(loop_name=record.loop_name, status="Stopping", observed_at=now)
            )
        await self._ledger.reschedule(record.request_id, now + self._cfg.retry_after)
        bound.info("stop requested", found=found)

    async def end(
        self,
        record: LedgerRecord,
        outcome: Outcome,
        reason: str,
        bound: Any,
        *,
        code: str | None = None,
    ) -> StartResult:
        """End a STARTING request without a loop (cancelled, timed out)."""
        shown = replace(record, failure_code=code) if code else record
        res_id, result = make_result(shown, outcome, now=self._clock(), reason=reason)
        if await self._ledger.store_result(
            record.request_id, expected=[Phase.STARTING], result=result, result_id=res_id
        ):
            self._publisher.notify(
                replace(shown, phase=Phase.DONE, result=result, result_id=res_id)
            )
            bound.info("request ended without a loop", outcome=outcome.value, reason=reason)
        return StartResult.ENDED

    def _timed_out(self, record: LedgerRecord) -> bool:
        since = record.phase_since or record.updated_at or self._clock()
        return self._clock() - since >= self._cfg.start_timeout

    async def _pending(self, record: LedgerRecord, bound: Any, why: str) -> StartResult:
        await self._ledger.note_try(record.request_id, self._clock() + self._cfg.retry_after)
        bound.warning("start not done yet; the sweeper retries", why=why, tries=record.tries + 1)
        return StartResult.PENDING


def _update(info: LoopInfo, now: datetime) -> LoopUpdate:
    return LoopUpdate(
        loop_name=info.name,
        status=info.status,
        observed_at=now,
        failure_code=info.failure_code,
        failure_reason=info.failure_reason,
        output_uri=info.output_uri,
        loop_arn=info.arn,
        loop_created_at=info.created_at,
    )
