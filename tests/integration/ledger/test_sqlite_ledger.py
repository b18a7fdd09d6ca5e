"""What only the SQLite backend has: a file, its schema, bad paths, kill -9."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from a2i_worker.errors import ConfigError
from a2i_worker.ledger.protocol import Phase
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.ledger.sqlite_schema import SCHEMA_VERSION

T0 = datetime(2026, 3, 2, tzinfo=UTC)


async def test_creates_schema_with_wal_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    first = SqliteLedger(path)
    await first.open()
    await first.claim("r1", "fp", route=None, received_at=T0)
    await first.close()
    second = SqliteLedger(path)
    await second.open()
    rec = await second.get("r1")
    await second.close()
    assert rec is not None
    assert rec.phase is Phase.RECEIVED
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {
        "ix_records_loop_name",
        "ix_records_due",
        "ix_records_done",
        "ix_records_open",
    } <= indexes


async def test_queries_use_the_indexes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    led = SqliteLedger(path)
    await led.open()
    await led.close()
    plans = {
        "due": "SELECT * FROM records WHERE due_at IS NOT NULL AND due_at <= 5 ORDER BY due_at",
        "done": "SELECT * FROM records WHERE done_at IS NOT NULL ORDER BY done_at",
        "open": "SELECT * FROM records WHERE open_flow = 'f' ORDER BY open_sort",
        "loop_name": "SELECT * FROM records WHERE loop_name = 'x'",
    }
    with sqlite3.connect(path) as conn:
        for name, sql in plans.items():
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            assert f"ix_records_{name}" in plan, (name, plan)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    led = SqliteLedger(path)
    await led.open()
    await led.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(ConfigError, match="newer a2i-worker"):
        await SqliteLedger(path).open()


async def test_corrupted_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not an sqlite database, just bytes\n" * 200)
    with pytest.raises(ConfigError, match=r"ledger\.db") as info:
        await SqliteLedger(path).open()
    assert "not a usable SQLite ledger" in str(info.value)


async def test_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        await SqliteLedger(tmp_path).open()
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("sub", "reason"),
    [("missing/ledger.db", "does not exist"), ("afile/ledger.db", "is not a directory")],
)
async def test_unwritable_path_is_a_config_error(tmp_path: Path, sub: str, reason: str) -> None:
    (tmp_path / "afile").write_text("x")
    path = tmp_path / sub
    with pytest.raises(ConfigError, match=reason) as info:
        await SqliteLedger(path).open()
    assert str(path) in str(info.value)


async def test_kill_9_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    """A writer killed mid-stream: every record it reported is there, in its last phase,
    the records form a prefix of its sequence, and the file passes integrity_check."""
    path = tmp_path / "ledger.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("crash_writer.py")),
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    reported = -1
    async with asyncio.timeout(30):
        while reported < 300:
            line = await child.stdout.readline()
            assert line, "writer exited early"
            if line.strip().isdigit():  # other lines are the writer's logs
                reported = int(line)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    led = SqliteLedger(path)
    await led.open()
    try:
        counts = await led.count_by_phase()
        total = sum(counts.values())
        assert total >= reported + 1
        for i in range(total):
            rec = await led.get(f"req-{i:06d}")
            assert rec is not None, i
            # each call is its own transaction: only the very last record may be mid-way
            if i < total - 1:
                assert rec.phase is Phase.OPEN, (i, rec.phase)
                assert rec.payload is not None
                assert rec.payload.input_content.startswith('{"x": "yyy')
        assert await led.get(f"req-{total:06d}") is None
        assert counts[Phase.OPEN] >= total - 1
    finally:
        await led.close()
