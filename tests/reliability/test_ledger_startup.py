"""A ledger that cannot be used stops ``a2i-worker run`` at once, with a message that
names the path: better no worker than one that loses track of its loops."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from reliability_support import worker_env

from a2i_worker.local.endpoints import StackEndpoints


async def _run(environ: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "a2i_worker.cli",
        "run",
        env={**os.environ, **environ, "A2I_WORKER_HEALTH_PORT": "0"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 64)
    return path


def _not_a_database(path: Path) -> Path:
    path.write_text("this is a text file, not a ledger\n" * 100)
    return path


def _parent_is_a_file(path: Path) -> Path:
    blocker = path.parent / "blocker"
    blocker.write_text("a file where a directory should be")
    return blocker / "ledger.db"


CASES: dict[str, Callable[[Path], Path]] = {
    "corrupted SQLite file": _corrupt,
    "not a database": _not_a_database,
    "unwritable path (parent is a file)": _parent_is_a_file,
}


async def test_unusable_ledger_fails_start_up_naming_the_path(
    env: StackEndpoints, tmp_path: Path
) -> None:
    runs = []
    for i, (case, make) in enumerate(CASES.items()):
        directory = tmp_path / f"case-{i}"
        directory.mkdir()
        ledger = make(directory / "ledger.db")
        environ = worker_env(env, directory) | {"A2I_WORKER_LEDGER_URL": f"sqlite:///{ledger}"}
        runs.append((case, ledger, _run(environ)))
    outcomes = await asyncio.gather(*(r for _, _, r in runs))
    for (case, ledger, _), (code, out) in zip(runs, outcomes, strict=True):
        assert code != 0, f"{case}: exited 0: {out[-2000:]}"
        assert str(ledger) in out, f"{case}: path not named: {out[-2000:]}"
        assert "Traceback" not in out, f"{case}: a clear message, not a stack trace: {out}"
