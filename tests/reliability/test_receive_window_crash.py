"""Issue 15: a kill -9 at a 25/s start quota with a deep backlog.

Before, the worker held up to ``max_in_flight`` = 1,000 messages whatever it could start
(40 s of work at 25/s): a kill -9 left them all invisible for a visibility timeout. And
after the restart the half-started requests (STARTING in the ledger) resumed at a flat
5/s: each is asked about with DescribeHumanLoop first, a "not found" answer was not fed
to the sweep limiter, so the sweep rate never grew.

Judged by SQS (messages in flight at the kill) and the emulator (the pace of the
resumes' "not found" answers), never by the worker's word.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from reliability_support import QueueProbe, make_requests, new_process, send_all, worker_env

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until

QUOTA = 25.0


async def _counters(emulator: EmulatorControl) -> tuple[int, int]:
    c = await emulator.counters()
    return int(c["loops_total"]), int(c["operations"]["DescribeHumanLoop"]["not_found"])


def _starting(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT count(*) FROM records WHERE phase = 'starting'").fetchone()[0]
        )
    finally:
        conn.close()


async def test_kill_9_leaves_little_invisible_and_resumes_at_the_start_rate(
    env: StackEndpoints, emulator: EmulatorControl, aws: AwsClients, tmp_path: Path
) -> None:
    await emulator.put_quotas({"rates": {"StartHumanLoop": {"rate": QUOTA, "burst": 25}}})
    await emulator.put_reviewers({"mode": "manual"})  # loops stay open; starts are the work
    bodies, _ = make_requests(1500, prefix="win", seed=5)
    await send_all(aws, env.requests_queue_url, bodies)
    # overdue loops are not swept meanwhile (production's 900 s): no other sweep-class call
    # feeds the sweep limiter, only the resumes' Describes do
    environ = worker_env(env, tmp_path, start_rate_initial="10", overdue_after_seconds="900")
    probe = QueueProbe(aws)

    first = new_process(environ, tmp_path / "w1.log", "w1")
    first.start()
    await first.wait_ready(60)
    # past slow start, at the quota, with ~1,000 requests still waiting
    await wait_until(lambda: _loops_at_least(emulator, 300), 60, interval=0.1)
    most = 0
    for _ in range(10):
        most = max(most, (await probe.depth(env.requests_queue_url))[1])
    first.kill()
    assert first.proc is not None
    assert first.proc.returncode == -9
    first.close()
    _, invisible = await probe.depth(env.requests_queue_url)
    # what waits for a visibility timeout now: at most 10 s of starts (was up to 1,000)
    assert invisible <= QUOTA * 10, invisible
    assert most <= QUOTA * 10, most

    half_started = _starting(tmp_path / "ledger.db")
    assert half_started >= 30  # enough of them to measure their pace

    _, not_found_before = await _counters(emulator)
    second = new_process(environ, tmp_path / "w2.log", "w2")
    second.start()
    await second.wait_ready(60)
    # the killed worker's messages come back after the visibility timeout (10 s); each
    # half-started one is asked about once ("not found": it never reached A2I), then started
    seen: list[tuple[float, int]] = []

    async def resumed() -> bool:
        _, not_found = await _counters(emulator)
        seen.append((time.monotonic(), not_found - not_found_before))
        return seen[-1][1] >= half_started

    await wait_until(resumed, 60, interval=0.05, message="half-started requests resumed")
    second.kill()
    second.close()
    first_at = next(t for t, n in seen if n >= 3)  # past the readiness checks' Describes
    pace = (half_started - 3) / max(1e-3, seen[-1][0] - first_at)
    # at the start rate's pace, not at the sweep class's initial 5/s
    assert pace >= 0.5 * QUOTA, (pace, half_started)


async def _loops_at_least(emulator: EmulatorControl, n: int) -> bool:
    return (await _counters(emulator))[0] >= n
