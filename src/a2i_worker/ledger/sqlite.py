"""SQLite ledger for one replica: one file, WAL, one stdlib ``sqlite3`` connection.

Why not aiosqlite: its public API costs a thread round trip per ``execute`` and per
``fetch``, and has no "run this function on your thread" call; so the ledger owns the
thread (one ``sqlite3`` connection, used only by a single-thread executor).

Every transition is read -> :mod:`a2i_worker.ledger.transitions` -> one
``UPDATE ... WHERE request_id = ? AND version = ?`` in autocommit mode, so each call
is one small transaction and two tasks racing the same transition cannot both win:
the loser's update matches no row, it re-reads and the transition function refuses
(or applies on top of the winner). Only changed columns are written, so a 3 MiB
payload is written once, by ``mark_starting``. The read, the pure step and the write
run in one hop to the database thread, which also serialises every statement of the
one connection (a multi-statement transaction cannot interleave with another task's).

Durability: WAL with ``synchronous=NORMAL`` (default) survives a killed process
(kill -9) with every committed transaction; a power loss or kernel crash may lose
the last transactions before the WAL is synced, never corrupts the file. Pass
``synchronous="FULL"`` to fsync every commit. See docs/ledger.md for measurements.
The file's schema and migrations are in :mod:`a2i_worker.ledger.sqlite_schema`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from a2i_worker.errors import TransientError
from a2i_worker.ledger import codec, transitions
from a2i_worker.ledger.base import TransitionLedger
from a2i_worker.ledger.protocol import (
    Claim,
    ClaimOutcome,
    LedgerRecord,
    LiveCounts,
    LoopUpdate,
    Phase,
)
from a2i_worker.ledger.sqlite_schema import SELECT as _SELECT
from a2i_worker.ledger.sqlite_schema import check_path, connect

__all__ = ["SqliteLedger"]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")

#: Optimistic-concurrency retries of one transition (as in the base class).
_MAX_RETRIES = 50


def _fetch_all_sync(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any]
) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _write_sync(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> bool:
    return conn.execute(sql, params).rowcount == 1


def _get_sync(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> LedgerRecord | None:
    row = conn.execute(_SELECT + where, params).fetchone()
    return None if row is None else codec.from_row(dict(zip(codec.COLUMNS, row, strict=True)))


def _insert_or_get_sync(
    conn: sqlite3.Connection, sql: str, params: Sequence[Any], request_id: str
) -> tuple[bool, LedgerRecord | None]:
    if conn.execute(sql, params).rowcount == 1:
        return True, None
    return False, _get_sync(conn, " WHERE request_id = ?", (request_id,))


def _transition_sync(
    conn: sqlite3.Connection,
    request_id: str,
    step: Callable[[LedgerRecord], LedgerRecord | None],
) -> tuple[LedgerRecord | None, LedgerRecord | None]:
    for _ in range(_MAX_RETRIES):
        old = _get_sync(conn, " WHERE request_id = ?", (request_id,))
        if old is None:
            return None, None
        new = step(old)
        if new is None:
            return old, None
        changes = codec.changed_columns(old, new)
        assignments = ", ".join(f"{c} = ?" for c in changes)
        sql = f"UPDATE records SET {assignments} WHERE request_id = ? AND version = ?"  # noqa: S608
        if conn.execute(sql, [*changes.values(), old.request_id, old.version]).rowcount == 1:
            return old, new
    raise TransientError(f"ledger: too much contention on one record ({_MAX_RETRIES} tries)")


def _update_by_loop_sync(
    conn: sqlite3.Connection,
    loop_name: str,
    step: Callable[[LedgerRecord], LedgerRecord | None],
) -> LedgerRecord | None:
    current = _get_sync(conn, " WHERE loop_name = ? LIMIT 1", (loop_name,))
    if current is None:
        return None
    return _transition_sync(conn, current.request_id, step)[1]


def _publish_many_sync(
    conn: sqlite3.Connection,
    steps: Sequence[tuple[str, Callable[[LedgerRecord], LedgerRecord | None]]],
) -> int:
    """Every step in one transaction (one commit instead of one per record)."""
    published = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for request_id, step in steps:
            published += _transition_sync(conn, request_id, step)[1] is not None
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return published


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SqliteLedger(TransitionLedger):
    """The :class:`~a2i_worker.ledger.protocol.Ledger` on one SQLite file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout_ms: int = 5_000,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating or migrating) the file; ConfigError says which path and why."""
        check_path(self.path)
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        opening = functools.partial(
            connect, self.path, busy_timeout_ms=self._busy_timeout_ms, synchronous=self._synchronous
        )
        try:
            conn = await asyncio.get_running_loop().run_in_executor(thread, opening)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        self._conn, self._thread = conn, thread
        log.info("ledger.sqlite.opened", path=str(self.path), synchronous=self._synchronous)

    async def close(self) -> None:
        conn, thread = self._conn, self._thread
        self._conn = self._thread = None
        if conn is None or thread is None:
            return
        try:  # after every call already queued: the thread runs them in order
            await asyncio.get_running_loop().run_in_executor(thread, conn.close)
        finally:
            thread.shutdown(wait=False)

    async def ping(self) -> None:
        await self._fetch_all("SELECT 1 AS ok")

    # -- plumbing -------------------------------------------------------------------

    async def _on_db_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` on the connection's own thread: one hop."""
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            raise RuntimeError("SqliteLedger is not open; call open() first")
        return await asyncio.get_running_loop().run_in_executor(thread, fn, conn, *args)

    async def _fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return await self._on_db_thread(_fetch_all_sync, sql, params)

    async def _records(self, sql: str, params: Sequence[Any] = ()) -> list[LedgerRecord]:
        return [await codec.from_row_async(r) for r in await self._fetch_all(sql, params)]

    async def _transition(
        self, request_id: str, step: Callable[[LedgerRecord], LedgerRecord | None]
    ) -> tuple[LedgerRecord | None, LedgerRecord | None]:
        """Read, pure step, conditional write: all in one hop to the connection's thread.

        The same optimistic loop as the base class (the conditional UPDATE still guards
        against another process on the same file); the step functions are pure, so
        running them on that thread changes nothing but the number of round trips.
        Large inputs are compressed there too, off the event loop.
        """
        return await self._on_db_thread(_transition_sync, request_id, step)

    async def _write(self, old: LedgerRecord, new: LedgerRecord) -> bool:
        if old.payload != new.payload and codec.off_loop(new):
            changes = await asyncio.to_thread(codec.changed_columns, old, new)
        else:
            changes = codec.changed_columns(old, new)
        assignments = ", ".join(f"{c} = ?" for c in changes)
        sql = f"UPDATE records SET {assignments} WHERE request_id = ? AND version = ?"  # noqa: S608
        params = [*changes.values(), old.request_id, old.version]
        return await self._on_db_thread(_write_sync, sql, params)

    # -- reads ----------------------------------------------------------------------

    async def get(self, request_id: str) -> LedgerRecord | None:
        return await self._on_db_thread(_get_sync, " WHERE request_id = ?", (request_id,))

    async def get_by_loop(self, loop_name: str) -> LedgerRecord | None:
        return await self._on_db_thread(_get_sync, " WHERE loop_name = ? LIMIT 1", (loop_name,))

    async def apply_loop_update(self, update: LoopUpdate) -> LedgerRecord | None:
        """Find the loop's record and apply the update in one hop to the db thread."""
        now = self._clock()
        return await self._on_db_thread(
            _update_by_loop_sync,
            update.loop_name,
            lambda r: transitions.apply_update(r, update, now=now),
        )

    async def mark_published_many(self, items: Sequence[tuple[str, str]]) -> int:
        if not items:
            return 0
        now = self._clock()
        steps = [
            (rid, functools.partial(transitions.publish, result_id=res_id, now=now))
            for rid, res_id in items
        ]
        return await self._on_db_thread(_publish_many_sync, steps)

    async def due_for_check(self, now: datetime, limit: int) -> list[LedgerRecord]:
        return await self._records(
            _SELECT + " WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at LIMIT ?",
            (codec.to_micros(now), limit),
        )

    async def unpublished(self, limit: int) -> list[LedgerRecord]:
        return await self._records(
            _SELECT + " WHERE done_at IS NOT NULL ORDER BY done_at LIMIT ?", (limit,)
        )

    async def open_loops_by_flow(self) -> dict[str, tuple[int, datetime | None]]:
        rows = await self._fetch_all(
            "SELECT open_flow, COUNT(*) AS n, MIN(loop_created_at) AS oldest FROM records"
            " WHERE open_flow IS NOT NULL GROUP BY open_flow"
        )
        return {
            str(r["open_flow"]): (
                int(r["n"]),
                None if r["oldest"] is None else codec.from_micros(int(r["oldest"])),
            )
            for r in rows
        }

    async def open_records_for_flow(
        self, flow_definition_arn: str, limit: int
    ) -> list[LedgerRecord]:
        return await self._records(
            _SELECT + " WHERE open_flow = ? ORDER BY open_sort LIMIT ?",
            (flow_definition_arn, limit),
        )

    async def count_by_phase(self) -> dict[Phase, int]:
        counts = dict.fromkeys(Phase, 0)
        for r in await self._fetch_all("SELECT phase, COUNT(*) AS n FROM records GROUP BY phase"):
            counts[Phase(r["phase"])] = int(r["n"])
        return counts

    async def live_counts(self, flows: Collection[str]) -> LiveCounts:
        """COUNTs over the partial indexes (due, done, open) only: O(active records)."""
        rows = await self._fetch_all(
            "SELECT '#due' AS k, COUNT(*) AS n, NULL AS oldest FROM records WHERE due_at"
            " IS NOT NULL UNION ALL SELECT '#done', COUNT(*), NULL FROM records WHERE done_at"
            " IS NOT NULL UNION ALL SELECT open_flow, COUNT(*), MIN(open_sort) FROM records"
            " WHERE open_flow IS NOT NULL GROUP BY open_flow"
        )
        got = {str(r["k"]): (int(r["n"]), r["oldest"]) for r in rows}
        by_flow: dict[str, tuple[int, datetime | None]] = dict.fromkeys(flows, (0, None))
        for k, (n, oldest) in got.items():
            if not k.startswith("#"):
                by_flow[k] = (n, None if oldest is None else codec.from_micros(int(oldest)))
        return LiveCounts(got["#due"][0], got["#done"][0], by_flow)

    # -- transitions ----------------------------------------------------------------

    async def claim(
        self,
        request_id: str,
        fingerprint: str,
        *,
        route: str | None,
        received_at: datetime,
        then: Callable[[LedgerRecord], LedgerRecord | None] | None = None,
    ) -> Claim:
        record = transitions.new_record(
            request_id, fingerprint, route=route, received_at=received_at
        )
        if then is not None:
            record = then(record) or record
        if codec.off_loop(record):
            row = await asyncio.to_thread(codec.to_row, record)
        else:
            row = codec.to_row(record)
        sql = (
            f"INSERT INTO records ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"  # noqa: S608
            " ON CONFLICT(request_id) DO NOTHING"
        )
        inserted, existing = await self._on_db_thread(
            _insert_or_get_sync, sql, list(row.values()), request_id
        )
        if inserted:
            return Claim(ClaimOutcome.NEW, record)
        if existing is None:  # pragma: no cover - records are never deleted
            raise TransientError("ledger: claimed record vanished")
        return Claim(transitions.claim_outcome(existing, fingerprint), existing)
