"""The SQLite ledger's file: path checks, connection settings, schema and migrations.

Everything here is synchronous and runs on the ledger's own database thread (see
:mod:`a2i_worker.ledger.sqlite`). A file is opened in autocommit mode, switched to WAL,
and migrated inside one ``BEGIN IMMEDIATE`` transaction from the version it stores up
to :data:`SCHEMA_VERSION`; a file written by a newer version is refused, not touched.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal

import structlog

from a2i_worker.errors import ConfigError
from a2i_worker.ledger import codec

__all__ = ["SCHEMA_VERSION", "SELECT", "check_path", "connect"]

log = structlog.get_logger("a2i_worker.ledger.sqlite")

#: Version of the schema this code writes; :func:`connect` migrates older files up to it.
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

#: Every column of a record, in :data:`codec.COLUMNS` order.
SELECT = "SELECT " + ", ".join(codec.COLUMNS) + " FROM records"  # noqa: S608 (constants)


def check_path(path: Path) -> None:
    """ConfigError (which path, why) unless ``path`` can hold a writable SQLite file."""
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


def connect(
    path: Path, *, busy_timeout_ms: int, synchronous: Literal["NORMAL", "FULL"]
) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode, migrated to :data:`SCHEMA_VERSION`.

    Call it on the thread that will use the connection (sqlite3 checks the thread).
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise ConfigError(f"ledger {path}: cannot open SQLite file: {exc}") from exc
    try:
        _configure(conn, path, busy_timeout_ms, synchronous)
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigError(
            f"ledger {path}: not a usable SQLite ledger (corrupted, not a "
            f"database, or not writable): {exc}"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(
    conn: sqlite3.Connection, path: Path, busy_timeout_ms: int, synchronous: str
) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    mode = None if row is None else row[0]
    if str(mode).lower() != "wal":
        raise ConfigError(f"ledger {path}: cannot switch to WAL mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_row, current = _stored_version(conn, path)
        for version in range(current, SCHEMA_VERSION):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
        if not has_row:
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif current != SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if current != SCHEMA_VERSION:
        log.info("ledger.sqlite.migrated", path=str(path), to_version=SCHEMA_VERSION)


def _stored_version(conn: sqlite3.Connection, path: Path) -> tuple[bool, int]:
    """(whether a version row exists, the stored version); 0 for a new file."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    current = int(rows[0][0]) if rows else 0
    if current > SCHEMA_VERSION:
        raise ConfigError(
            f"ledger {path}: schema version {current} was written by a newer a2i-worker "
            f"(this one knows up to {SCHEMA_VERSION})"
        )
    return bool(rows), current
