"""Sweeps: find out what became of loops whose events are overdue.

Events can be lost, so every STARTING/OPEN record carries a ``next_check_at``. Each
sweep takes the records that are due and:

- STARTING (crash window, or a start that did not happen yet): the starter's
  ``resume`` — Describe; found → OPEN; not found → start it (same deterministic name,
  never a second loop), or end it (cancel noted: ``stopped``; in STARTING longer than
  the start timeout: ``failed``). The first sweep after a restart Describes every
  STARTING record at once, whenever it was scheduled: a loop A2I accepted before a crash
  is recorded within seconds, whatever the visibility timeout. One A2I does not have is
  started only when its record falls due: until then it may be another replica's start
  in flight (a new replica must not start, past its owner's rate limiter and quota gate,
  what a running one is starting);
- OPEN, few per flow definition: DescribeHumanLoop each;
- OPEN, many per flow definition: one paged ListHumanLoops from the oldest due loop's
  creation time; only loops that List shows finished get a Describe (for the output
  URI and failure code); loops missing from the pages listed are Described (the pages
  may end before them), and if A2I no longer knows them they are resolved as ``failed``;
- OPEN with a terminal status but no result yet (output.json not readable earlier):
  finish again;
- Stopping for longer than ``stopping_timeout``, counted from when the loop entered
  Stopping (``phase_since``): resolved as ``stopped`` with a reason.

While the events queue has a backlog (a receive came back full, or every slot was taken,
within the last interval), a running loop's status event is most likely on its way:
such loops are not Described but looked at again one interval later, for at most
``backlog_hold`` from when their phase began (:func:`held_back`). Without a backlog
(events lost, not late) nothing is held back.

All calls go through the limiter's ``sweep`` class, so a sweep never starves starts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import structlog

from a2i_worker.a2i import A2IGateway, LoopInfo, LoopSummary
from a2i_worker.classify import classify
from a2i_worker.event_handler import EventHandler
from a2i_worker.failures import report_failure
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
)
from a2i_worker.request.starter import Starter, StartResult

if TYPE_CHECKING:
    from a2i_worker.metrics import Metrics

__all__ = ["SweepConfig", "SweepReport", "Sweeper", "held_back", "next_check_delay"]

log = structlog.get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SweepConfig:
    interval: timedelta = timedelta(seconds=60)
    #: Use ListHumanLoops for a flow definition when at least this many of its loops are due.
    list_threshold: int = 20
    batch: int = 2000
    max_recheck: timedelta = timedelta(hours=1)
    stopping_timeout: timedelta = timedelta(minutes=30)
    #: Shortest pause between two sweeps (records due sooner wait this long).
    min_pause: timedelta = timedelta(seconds=1)
    #: Longest a running loop is left to its (queued) status event while the events
    #: queue has a backlog, from when its phase began; None: 5 x ``interval``.
    backlog_hold: timedelta | None = None


@dataclass
class SweepReport:
    due: int = 0
    describes: int = 0
    lists: int = 0
    resolved: int = 0
    started: int = 0
    vanished: int = 0
    held_back: int = 0


def next_check_delay(age: timedelta, interval: timedelta, cap: timedelta) -> timedelta:
    """When to look at a still-running loop again.

    Every sweep while the loop is young (age under ten intervals), so a loop whose events
    were lost is found within about two intervals of finishing; after that a quarter of
    its age, capped, so loops that run for days cost a few calls a day, not one a minute.
    """
    if age < interval * 10:
        return interval
    return max(interval, min(cap, age / 4))


def _split(
    recs: list[LedgerRecord], pred: Callable[[LedgerRecord], bool]
) -> tuple[list[LedgerRecord], list[LedgerRecord]]:
    yes: list[LedgerRecord] = []
    no: list[LedgerRecord] = []
    for rec in recs:
        (yes if pred(rec) else no).append(rec)
    return yes, no


def held_back(rec: LedgerRecord, now: datetime, *, backlogged: bool, hold: timedelta) -> bool:
    """Leave a due, running loop to its status event (queued behind a backlog) this sweep:
    only while there is a backlog, and only within ``hold`` of when its phase began."""
    if not backlogged or rec.loop_status in TERMINAL_LOOP_STATUSES:
        return False
    since = rec.phase_since or rec.loop_created_at
    return since is not None and now - since < hold


class Sweeper:
    def __init__(
        self,
        *,
        ledger: Ledger,
        gateway: A2IGateway,
        events: EventHandler,
        starter: Starter,
        config: SweepConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._ledger = ledger
        self._events_backlogged: Callable[[float], bool] = lambda within: False
        self._a2i = gateway
        self._events = events
        self._starter = starter
        self._restarted = True  # the first sweep resumes every STARTING record at once
        self._cfg = config
        self._metrics = metrics
        self._clock = clock
        self.sweeps = 0
        self.last_report = SweepReport()

    def use_events_backlog(self, backlogged: Callable[[float], bool]) -> None:
        """``backlogged(within)``: whether the events queue had a backlog in the last
        ``within`` seconds (the events consumer's answer; the sweeper asks about the
        last interval)."""
        self._events_backlogged = backlogged

    async def run(self) -> None:
        while True:
            try:
                self.last_report = await self.sweep_once()
            except Exception as exc:
                log.warning("sweep failed; will try again", error=classify(exc).code)
            await anyio.sleep(await self.seconds_until_next_sweep())

    async def seconds_until_next_sweep(self) -> float:
        """Sleep until the earliest record falls due, at most one interval, at least
        ``min_pause`` (a record becoming due is looked at then, not at the next tick)."""
        interval = self._cfg.interval.total_seconds()
        now = self._clock()
        try:
            soonest = await self._ledger.due_for_check(now + self._cfg.interval, 1)
        except Exception as exc:
            log.warning("could not read the next due time", error=classify(exc).code)
            return interval
        if not soonest or soonest[0].next_check_at is None:
            return interval
        wait = (soonest[0].next_check_at - now).total_seconds()
        return max(self._cfg.min_pause.total_seconds(), min(interval, wait))

    async def sweep_once(self) -> SweepReport:
        now = self._clock()
        report = SweepReport()
        early_ids: set[str] = set()
        if self._restarted:
            self._restarted = False
            ahead = self._starter.first_check(now) + self._cfg.interval
            early = await self._ledger.due_for_check(ahead, self._cfg.batch)
            due = [
                r
                for r in early
                if r.phase is Phase.STARTING
                or (r.next_check_at is not None and r.next_check_at <= now)
            ]
            early_ids = {
                r.request_id for r in due if r.next_check_at is not None and r.next_check_at > now
            }
        else:
            due = await self._ledger.due_for_check(now, self._cfg.batch)
        report.due = len(due)
        self.sweeps += 1
        if not due:
            return report
        starting = [r for r in due if r.phase is Phase.STARTING]
        open_recs = [r for r in due if r.phase is Phase.OPEN]
        finished = [r for r in open_recs if r.loop_status in TERMINAL_LOOP_STATUSES]
        running = [r for r in open_recs if r.loop_status not in TERMINAL_LOOP_STATUSES]
        if running and self._events_backlogged(self._cfg.interval.total_seconds()):
            hold = self._cfg.backlog_hold or self._cfg.interval * 5
            waiting, running = _split(
                running, lambda r: held_back(r, now, backlogged=True, hold=hold)
            )
            report.held_back = len(waiting)
            for rec in waiting:
                await self._ledger.reschedule(rec.request_id, now + self._cfg.interval)
        async with anyio.create_task_group() as tg:
            for rec in starting:
                tg.start_soon(self._resolve_starting, rec, report, rec.request_id in early_ids)
            for rec in finished:
                tg.start_soon(self._refinish, rec, report)
            by_flow: dict[str, list[LedgerRecord]] = defaultdict(list)
            for rec in running:
                flow = rec.payload.flow_definition_arn if rec.payload else ""
                by_flow[flow].append(rec)
            for flow, recs in by_flow.items():
                if flow and len(recs) >= self._cfg.list_threshold:
                    tg.start_soon(self._sweep_by_list, flow, recs, report)
                else:
                    for rec in recs:
                        tg.start_soon(self._describe_one, rec, report)
        log.info(
            "sweep",
            due=report.due,
            describes=report.describes,
            lists=report.lists,
            resolved=report.resolved,
            started=report.started,
            vanished=report.vanished,
            held_back=report.held_back,
        )
        return report

    async def _refinish(self, rec: LedgerRecord, report: SweepReport) -> None:
        await self._events.finisher.finish(rec)
        report.resolved += 1

    async def _resolve_starting(
        self, rec: LedgerRecord, report: SweepReport, early: bool = False
    ) -> None:
        """``early``: taken by the first sweep after a restart before it fell due: a loop
        A2I has is recorded now, a missing one is started at the record's own time."""
        assert rec.loop_name is not None
        bound = log.bind(request_id=rec.request_id, loop_name=rec.loop_name)
        try:
            outcome = await self._starter.resume(rec, bound, found_only=early)
            report.describes += 1
            if outcome is StartResult.OPENED:
                report.started += 1
        except Exception as exc:
            what = "resolving a STARTING record"
            report_failure(bound, exc, what, role="sweeper", metrics=self._metrics)
            await self._ledger.note_try(rec.request_id, self._clock() + self._cfg.interval)

    async def _describe_one(self, rec: LedgerRecord, report: SweepReport) -> None:
        assert rec.loop_name is not None
        try:
            info = await self._a2i.describe(rec.loop_name)
            report.describes += 1
        except Exception as exc:
            log.warning("describe failed", loop_name=rec.loop_name, error=classify(exc).code)
            await self._ledger.reschedule(rec.request_id, self._clock() + self._cfg.interval)
            return
        if info is None:
            await self._vanished(rec, report)
            return
        await self._apply(info, report, rec)

    async def _sweep_by_list(
        self, flow: str, recs: list[LedgerRecord], report: SweepReport
    ) -> None:
        wanted = {r.loop_name: r for r in recs if r.loop_name}
        created = [r.loop_created_at for r in recs if r.loop_created_at is not None]
        start = min(created) - timedelta(seconds=1) if created else None
        max_pages = math.ceil(len(wanted) / 100) + 1
        seen: dict[str, LoopSummary] = {}
        try:
            async for page in self._a2i.list_loops(flow, created_after=start, max_pages=max_pages):
                report.lists += 1
                for s in page:
                    if s.name in wanted:
                        seen[s.name] = s
                if len(seen) == len(wanted):
                    break
        except Exception as exc:
            log.warning("list failed; falling back next sweep", error=classify(exc).code)
            for r in recs:
                await self._ledger.reschedule(r.request_id, self._clock() + self._cfg.interval)
            return
        for name, rec in wanted.items():
            summary = seen.get(name)
            if summary is None:
                # Missing from the pages: deleted in A2I, or beyond the pages listed (many
                # other loops in between, or A2I's creation time before the ledger's).
                # Rescheduling would list the same pages again forever: Describe decides.
                await self._describe_one(rec, report)
            elif summary.status in TERMINAL_LOOP_STATUSES:
                await self._describe_one(rec, report)
            elif summary.status == "Stopping" and rec.loop_status == "Stopping":
                await self._check_stopping(rec, report)
            elif summary.status != rec.loop_status:
                await self._describe_one(rec, report)
            else:
                await self._reschedule(rec)

    async def _apply(
        self, info: LoopInfo, report: SweepReport, rec: LedgerRecord | None = None
    ) -> None:
        if info.status == "Stopping" and rec is not None and rec.loop_status == "Stopping":
            await self._check_stopping(rec, report)
            return
        update = LoopUpdate(
            loop_name=info.name,
            status=info.status,
            observed_at=self._clock(),
            failure_code=info.failure_code,
            failure_reason=info.failure_reason,
            output_uri=info.output_uri,
            loop_arn=info.arn or None,
            loop_created_at=info.created_at,
        )
        await self._events.apply(update, kind="sweep")
        if info.status in TERMINAL_LOOP_STATUSES:
            report.resolved += 1
        elif rec is not None:
            await self._reschedule(rec)

    async def _check_stopping(self, rec: LedgerRecord, report: SweepReport) -> None:
        # From when the loop entered Stopping: reschedules refresh updated_at, not this.
        since = rec.phase_since or rec.loop_created_at or self._clock()
        if self._clock() - since < self._cfg.stopping_timeout:
            await self._reschedule(rec, soon=True)
            return
        assert rec.loop_name is not None
        log.warning(
            "loop stuck in Stopping; resolving as stopped",
            request_id=rec.request_id,
            loop_name=rec.loop_name,
        )
        await self._events.apply(
            LoopUpdate(
                loop_name=rec.loop_name,
                status="Stopped",
                observed_at=self._clock(),
                failure_reason=f"stuck in Stopping for over {self._cfg.stopping_timeout}; "
                "treated as stopped",
            ),
            kind="sweep",
        )
        report.resolved += 1

    async def _vanished(self, rec: LedgerRecord, report: SweepReport) -> None:
        assert rec.loop_name is not None
        log.warning(
            "loop no longer exists in A2I; resolving as failed",
            request_id=rec.request_id,
            loop_name=rec.loop_name,
        )
        report.vanished += 1
        await self._events.apply(
            LoopUpdate(
                loop_name=rec.loop_name,
                status="Failed",
                observed_at=self._clock(),
                failure_code="Vanished",
                failure_reason="the loop no longer exists in A2I (deleted outside the worker?)",
            ),
            kind="sweep",
        )
        report.resolved += 1

    async def _reschedule(self, rec: LedgerRecord, *, soon: bool = False) -> None:
        now = self._clock()
        if soon:
            delay = self._cfg.interval
        else:
            age = now - (rec.loop_created_at or now)
            delay = next_check_delay(age, self._cfg.interval, self._cfg.max_recheck)
        await self._ledger.reschedule(rec.request_id, now + delay)
