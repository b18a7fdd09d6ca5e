"""SQLite ledger for one replica: one file, WAL, one aiosqlite connection.

Every transition is read -> :mod:`a2i_worker.ledger.transitions` -> one
``UPDATE ... WHERE request_id = ? AND version = ?`` in autocommit mode, so each call
is one small transaction and two tasks racing the same transition cannot both win:
the loser's update matches no row, it re-reads and the transition function refuses
(or applies on top of the winner). Only changed columns are written, so a 3 MiB
payload is written once, by ``mark_starting``.

Durability: WAL with ``synchronous=NORMAL`` (default) survives a killed process
(kill -9) with every committed transaction; a power loss or kernel crash may lose
the last transactions before the WAL is synced, never corrupts the file. Pass
``synchronous="FULL"`` to fsync every commit. See docs/ledger.md for measurements.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiosqlite
import structlog

from a2i_worker.errors import ConfigError, TransientError
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

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

log = structlog.get_logger(__name__)

#: Version of the schema this code writes; ``open()`` migrates older files up to it.
SCHEMA_VERSION = 3


_COLUMN_TYPES: dict[str, str] = {
    "request_id": "TEXT PRIMARY KEY NOT NULL",
    "fingerprint": "TEXT NOT NULL",
    "phase": "TEXT NOT NULL",
    "attempt": "INTEGER NOT NULL",
    "version": "INTEGER NOT NULL",
    "input_z": "BLOB",
    "loop_created_at": "INTEGER",
    "loop_finished_at": "INTEGER",
    "received_at": "INTEGER",
    "updated_at": "INTEGER",
    "next_check_at": "INTEGER",
    "phase_since": "INTEGER",
    "tries": "INTEGER",
    "cancel_requested_at": "INTEGER",
    "dlq_copied_at": "INTEGER",
    "due_at": "INTEGER",
    "done_at": "INTEGER",
    "open_sort": "INTEGER",
}

_SCHEMA_V1: tuple[str, ...] = (
    "CREATE TABLE records ("
    + ", ".join(
        f"{c} {_COLUMN_TYPES.get(c, 'TEXT')}"
        for c in codec.COLUMNS
        if c not in codec.V2_COLUMNS and c not in codec.V3_COLUMNS
    )
    + ")",
    "CREATE INDEX ix_records_loop_name ON records(loop_name) WHERE loop_name IS NOT NULL",
    "CREATE INDEX ix_records_due ON records(due_at) WHERE due_at IS NOT NULL",
    "CREATE INDEX ix_records_done ON records(done_at) WHERE done_at IS NOT NULL",
    "CREATE INDEX ix_records_open ON records(open_flow, open_sort) WHERE open_flow IS NOT NULL",
    "CREATE INDEX ix_records_phase ON records(phase)",
)

_SCHEMA_V2: tuple[str, ...] = tuple(
    f"ALTER TABLE records ADD COLUMN {c} {_COLUMN_TYPES.get(c, 'TEXT')}" for c in codec.V2_COLUMNS
)

_SCHEMA_V3: tuple[str, ...] = tuple(
    f"ALTER TABLE records ADD COLUMN {c} TEXT" for c in codec.V3_COLUMNS
)

#: MIGRATIONS[n] upgrades a file at version n to n + 1 (0 = empty file).
_MIGRATIONS: dict[int, tuple[str, ...]] = {0: _SCHEMA_V1, 1: _SCHEMA_V2, 2: _SCHEMA_V3}

_SELECT = "SELECT " + ", ".join(codec.COLUMNS) + " FROM records"  # noqa: S608 (constants)


_T = TypeVar("_T")

#: Optimistic-concurrency retries of one transition (as in the base class).
_MAX_RETRIES = 50


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


def _newer_schema(path: Path, found: int) -> ConfigError:
    return ConfigError(
        f"ledger {path}: schema version {found} was written by a newer a2i-worker "
        f"(this one knows up to {SCHEMA_VERSION})"
    )


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
        self._conn: aiosqlite.Connection | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating or migrating) the file; ConfigError says which path and why."""
        self._check_path()
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"ledger {self.path}: cannot open SQLite file: {exc}") from exc
        try:
            await self._configure(conn)
            await self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise ConfigError(
                f"ledger {self.path}: not a usable SQLite ledger (corrupted, not a "
                f"database, or not writable): {exc}"
            ) from exc
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        log.info("ledger.sqlite.opened", path=str(self.path), synchronous=self._synchronous)

    def _check_path(self) -> None:
        path = self.path
        if path.is_dir():
            raise ConfigError(f"ledger {path}: is a directory, expected an SQLite file path")
        parent = path.parent
        if not parent.exists():
            raise ConfigError(f"ledger {path}: parent directory {parent} does not exist")
        if not parent.is_dir():
            raise ConfigError(f"ledger {path}: parent {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"ledger {path}: directory {parent} is not writable")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"ledger {path}: file is not readable and writable")

    async def _configure(self, conn: aiosqlite.Connection) -> None:
        await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        async with conn.execute("PRAGMA journal_mode = WAL") as cur:
            row = await cur.fetchone()
        mode = None if row is None else row[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"ledger {self.path}: cannot switch to WAL mode (got {mode!r})")
        await conn.execute(f"PRAGMA synchronous = {self._synchronous}")

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            has_row, current = await self._stored_version(conn)
            for version in range(current, SCHEMA_VERSION):
                for statement in _MIGRATIONS[version]:
                    await conn.execute(statement)
            if not has_row:
                await conn.execute(
                    "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                )
            elif current != SCHEMA_VERSION:
                await conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            await conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise
        if current != SCHEMA_VERSION:
            log.info("ledger.sqlite.migrated", path=str(self.path), to_version=SCHEMA_VERSION)

    async def _stored_version(self, conn: aiosqlite.Connection) -> tuple[bool, int]:
        """(whether a version row exists, the stored version); 0 for a new file."""
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with conn.execute("SELECT version FROM schema_version") as cur:
            rows = list(await cur.fetchall())
        current = int(rows[0][0]) if rows else 0
        if current > SCHEMA_VERSION:
            raise _newer_schema(self.path, current)
        return bool(rows), current

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def ping(self) -> None:
        await self._fetch_all("SELECT 1 AS ok")

    # -- plumbing -------------------------------------------------------------------

    @property
    def _db(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("SqliteLedger is not open; call open() first")
        return self._conn

    async def _fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._db.execute(sql, params) as cur:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]

    async def _records(self, sql: str, params: Sequence[Any] = ()) -> list[LedgerRecord]:
        return [await codec.from_row_async(r) for r in await self._fetch_all(sql, params)]

    async def _on_db_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(sqlite3_connection, *args)`` on the connection's own thread: one hop.

        Every aiosqlite call is a round trip to that thread (~25 µs of CPU each on the
        benchmark machine); ``async with execute()`` + ``fetchall`` is three. aiosqlite
        has no public "run this on your thread" call, so this uses its ``_execute`` and
        ``_conn`` (aiosqlite is pinned in requirements/constraints.txt).
        """
        db = self._db
        return await db._execute(fn, db._conn, *args)  # type: ignore[no-untyped-call,no-any-return]

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
        async with self._db.execute(sql, params) as cur:
            return cur.rowcount == 1

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
