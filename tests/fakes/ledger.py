"""A ledger in memory, on the real transition rules, stored as SQLite stores it.

:class:`MemoryLedger` is a :class:`~a2i_worker.ledger.base.TransitionLedger` (so every
write goes through :mod:`a2i_worker.ledger.transitions` and the same optimistic
version check), and keeps each record as the row :func:`a2i_worker.ledger.codec.to_row`
makes of it: what a role reads back is a fresh copy, decoded as the SQLite ledger
decodes it, and the queries use the same derived index columns (``due_at``,
``done_at``, ``open_flow``, ``open_sort``) with the same orderings. The contract test
(tests/contract) runs the same scenarios against it and :class:`SqliteLedger`.

Its review-budget counters live with it too (:class:`MemoryBudgetStore`), as the SQLite
ones live in the ledger's file.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from a2i_worker.budget_store import BudgetCounter
from a2i_worker.ledger import codec, transitions
from a2i_worker.ledger.base import TransitionLedger
from a2i_worker.ledger.protocol import Claim, ClaimOutcome, LedgerRecord, LiveCounts, Phase

__all__ = ["MemoryBudgetStore", "MemoryLedger"]

_C = TypeVar("_C", bound=BudgetCounter)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryBudgetStore:
    """The budget counters' contract (:class:`a2i_worker.budget_store.BudgetStore`)."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}
        self.takes: set[tuple[str, str]] = set()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def take(
        self, counters: Sequence[_C], *, force: bool = False, token: str | None = None
    ) -> _C | None:
        if not counters:
            return None
        if token is not None and all((c.key, token) in self.takes for c in counters):
            return None
        full = [c for c in counters if self.used.get(c.key, 0) >= c.limit]
        if full and not force:
            return full[0]
        for c in counters:
            self.used[c.key] = self.used.get(c.key, 0) + 1
            if token is not None:
                self.takes.add((c.key, token))
        return None

    async def usage(self, keys: Sequence[str]) -> dict[str, int]:
        return {k: self.used.get(k, 0) for k in keys}


class MemoryLedger(TransitionLedger):
    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._rows: dict[str, dict[str, Any]] = {}
        self.budgets = MemoryBudgetStore()
        self.writes = 0
        #: Called before every read and write (tests make it raise to crash mid-call).
        self.before_call: Callable[[str], None] | None = None

    def budget_store(self) -> MemoryBudgetStore:
        return self.budgets

    # -- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        self._hook("ping")

    # -- reads ------------------------------------------------------------------------

    def _hook(self, what: str) -> None:
        if self.before_call is not None:
            self.before_call(what)

    def records(self) -> list[LedgerRecord]:
        """Every record (test side: no hook)."""
        return [codec.from_row(r) for r in self._rows.values()]

    async def get(self, request_id: str) -> LedgerRecord | None:
        self._hook("get")
        row = self._rows.get(request_id)
        return None if row is None else codec.from_row(row)

    async def get_by_loop(self, loop_name: str) -> LedgerRecord | None:
        self._hook("get_by_loop")
        for row in self._rows.values():
            if row["loop_name"] == loop_name:
                return codec.from_row(row)
        return None

    async def due_for_check(self, now: datetime, limit: int) -> list[LedgerRecord]:
        self._hook("due_for_check")
        at = codec.to_micros(now)
        rows = [r for r in self._rows.values() if r["due_at"] is not None and r["due_at"] <= at]
        rows.sort(key=lambda r: int(r["due_at"]))
        return [codec.from_row(r) for r in rows[:limit]]

    async def unpublished(self, limit: int) -> list[LedgerRecord]:
        self._hook("unpublished")
        rows = sorted(
            (r for r in self._rows.values() if r["done_at"] is not None),
            key=lambda r: int(r["done_at"]),
        )
        return [codec.from_row(r) for r in rows[:limit]]

    async def open_loops_by_flow(self) -> dict[str, tuple[int, datetime | None]]:
        self._hook("open_loops_by_flow")
        out: dict[str, tuple[int, datetime | None]] = {}
        for r in self._rows.values():
            flow = r["open_flow"]
            if flow is None:
                continue
            n, oldest = out.get(flow, (0, None))
            created = (
                None if r["loop_created_at"] is None else codec.from_micros(r["loop_created_at"])
            )
            if created is not None and (oldest is None or created < oldest):
                oldest = created
            out[flow] = (n + 1, oldest)
        return out

    async def live_counts(self, flows: Collection[str]) -> LiveCounts:
        """The SQLite ledger's COUNTs over its partial indexes, over the stored rows."""
        self._hook("live_counts")
        rows = self._rows.values()
        by_flow: dict[str, tuple[int, datetime | None]] = dict.fromkeys(flows, (0, None))
        for r in rows:
            flow = r["open_flow"]
            if flow is None:
                continue
            n, oldest = by_flow.get(flow, (0, None))
            sort = codec.from_micros(int(r["open_sort"]))
            by_flow[flow] = (n + 1, sort if oldest is None or sort < oldest else oldest)
        due = sum(1 for r in rows if r["due_at"] is not None)
        done = sum(1 for r in rows if r["done_at"] is not None)
        return LiveCounts(due, done, by_flow)

    async def open_records_for_flow(
        self, flow_definition_arn: str, limit: int
    ) -> list[LedgerRecord]:
        self._hook("open_records_for_flow")
        rows = sorted(
            (r for r in self._rows.values() if r["open_flow"] == flow_definition_arn),
            key=lambda r: int(r["open_sort"]),
        )
        return [codec.from_row(r) for r in rows[:limit]]

    async def count_by_phase(self) -> dict[Phase, int]:
        self._hook("count_by_phase")
        counts = dict.fromkeys(Phase, 0)
        for r in self._rows.values():
            counts[Phase(r["phase"])] += 1
        return counts

    # -- writes -----------------------------------------------------------------------

    async def _write(self, old: LedgerRecord, new: LedgerRecord) -> bool:
        self._hook("write")
        row = self._rows.get(old.request_id)
        if row is None or row["version"] != old.version:
            return False
        self._rows[old.request_id] = codec.to_row(new)
        self.writes += 1
        return True

    async def claim(
        self,
        request_id: str,
        fingerprint: str,
        *,
        route: str | None,
        received_at: datetime,
        then: Callable[[LedgerRecord], LedgerRecord | None] | None = None,
    ) -> Claim:
        self._hook("claim")
        record = transitions.new_record(
            request_id, fingerprint, route=route, received_at=received_at
        )
        if then is not None:
            record = then(record) or record
        existing = self._rows.get(request_id)
        if existing is not None:
            stored = codec.from_row(existing)
            return Claim(transitions.claim_outcome(stored, fingerprint), stored)
        self._rows[request_id] = codec.to_row(record)
        self.writes += 1
        return Claim(ClaimOutcome.NEW, record)
