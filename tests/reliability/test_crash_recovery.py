"""kill -9 a real worker process at bad moments; restart it; prove nothing was lost.

Kill points: mid-batch (messages received, loops being started), while StartHumanLoop
calls are in flight (injected latency: the loop exists in A2I, the ledger does not know
it yet), and while results are being published. After the last restart the judge is
the emulator (one loop per activated request, none started twice) and SQS (one
distinct result per request, nothing left invisible on the requests queue).
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    Expected,
    QueueProbe,
    ResultsCollector,
    assert_exactly_once,
    make_requests,
    new_process,
    send_all,
    worker_env,
)

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.processes import WorkerProcess
from helpers import wait_until

_OUTCOME_FIELDS = (
    "accepted",
    "throttled",
    "quota_rejected",
    "conflicts",
    "validation_errors",
    "not_found",
    "injected_errors",
)


async def _starts_in_flight(emulator: EmulatorControl) -> int:
    """StartHumanLoop calls the emulator received but has not answered yet."""
    op = (await emulator.counters())["operations"].get("StartHumanLoop", {})
    return int(op.get("calls", 0)) - sum(int(op.get(k, 0)) for k in _OUTCOME_FIELDS)


async def _loops(emulator: EmulatorControl) -> int:
    return int((await emulator.counters())["loops_total"])


class CrashRun:
    """One scenario: a ledger directory, a sequence of worker processes, the evidence."""

    def __init__(
        self,
        env: StackEndpoints,
        emulator: EmulatorControl,
        aws: AwsClients,
        tmp_path: Path,
        seed: int,
    ) -> None:
        self.env = env
        self.emulator = emulator
        self.aws = aws
        self.tmp_path = tmp_path
        self.rng = random.Random(seed)
        self.environ = worker_env(env, tmp_path)
        self.results = ResultsCollector(aws, env.results_queue_url)
        self.probe = QueueProbe(aws)
        self.kills: list[str] = []
        self.generation = 0
        self.worker: WorkerProcess | None = None

    async def start(self) -> WorkerProcess:
        self.generation += 1
        w = new_process(
            self.environ, self.tmp_path / f"worker-{self.generation}.log", f"w{self.generation}"
        )
        self.worker = w
        w.start()
        await w.wait_ready(60)
        return w

    def kill(self, why: str) -> None:
        assert self.worker is not None
        self.worker.kill()
        assert self.worker.proc is not None
        assert self.worker.proc.returncode == -9, "really killed by SIGKILL"
        self.worker.close()
        self.kills.append(why)

    async def kill_mid_batch(self, target_loops: int) -> None:
        await wait_until(lambda: self._loops_at_least(target_loops), 30, interval=0.01)
        self.kill("mid-batch")

    async def kill_during_starts(self) -> None:
        """Kill while StartHumanLoop calls are in flight (the loop exists, the ledger lags)."""
        await self.emulator.put_faults(
            {"operations": {"StartHumanLoop": {"latency_ms": [300, 900]}}}
        )
        try:
            await wait_until(
                lambda: self._in_flight_at_least(3),
                30,
                interval=0.01,
                message="StartHumanLoop calls in flight",
            )
            self.kill("between StartHumanLoop and the ledger write")
        finally:
            await self.emulator.put_faults(
                {"operations": {"StartHumanLoop": {"latency_ms": [0, 0]}}}
            )

    async def kill_while_publishing(self) -> None:
        before = len(self.results.deliveries)

        async def flowing() -> bool:
            await self.results.poll()
            return len(self.results.deliveries) >= before + 5

        await wait_until(flowing, 30, interval=0.02, message="results flowing")
        self.kill("during result publishing")

    async def kill_at_random(self, low: float, high: float) -> None:
        deadline = time.monotonic() + self.rng.uniform(low, high)
        await wait_until(lambda: time.monotonic() >= deadline, high + 1, interval=0.05)
        self.kill("random moment")

    async def _loops_at_least(self, n: int) -> bool:
        return await _loops(self.emulator) >= n

    async def _in_flight_at_least(self, n: int) -> bool:
        return await _starts_in_flight(self.emulator) >= n


async def _fast_reviewers(emulator: EmulatorControl) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.2, "high": 1.5},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )


async def _finish_and_judge(run: CrashRun, expected: Expected, within: float) -> dict[str, Any]:
    final = await run.start()
    await run.results.wait_for(expected.request_ids, within)
    final.terminate()
    assert await final.wait_exit(15) == 0
    final.close()
    counts = await assert_exactly_once(expected, run.results, run.emulator, run.probe, run.env)
    counts["kills"] = len(run.kills)
    # The SQLite ledger went through every kill: still WAL, still intact.
    db = sqlite3.connect(run.tmp_path / "ledger.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    return counts


async def test_kill_9_at_bad_moments_loses_and_duplicates_nothing(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
) -> None:
    await _fast_reviewers(emulator)
    # 100 requests give every kill point its moment (15 loops, 3 starts in flight, 5
    # results flowing); the 3000-request chaos variant below repeats them at scale.
    bodies, expected = make_requests(100, prefix="crash", seed=11)
    run = CrashRun(env, emulator, aws, tmp_path, seed=11)
    await send_all(aws, env.requests_queue_url, bodies[:50])

    await run.start()
    await run.kill_mid_batch(target_loops=15)

    await send_all(aws, env.requests_queue_url, bodies[50:])
    await run.start()
    await run.kill_during_starts()

    await run.start()
    await run.kill_while_publishing()

    counts = await _finish_and_judge(run, expected, within=90)
    assert run.kills == [
        "mid-batch",
        "between StartHumanLoop and the ledger write",
        "during result publishing",
    ]
    assert counts["loops"] == len(expected.activated)


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_chaos_many_kills_over_thousands_of_requests(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
) -> None:
    await _fast_reviewers(emulator)
    bodies, expected = make_requests(3000, prefix="chaos", seed=23)
    run = CrashRun(env, emulator, aws, tmp_path, seed=23)
    chunks = [bodies[i : i + 300] for i in range(0, len(bodies), 300)]
    kinds = ["mid-batch", "starts", "publishing", "random"]
    for i, chunk in enumerate(chunks):
        await send_all(aws, env.requests_queue_url, chunk)
        await run.start()
        kind = kinds[i % len(kinds)]
        if kind == "mid-batch":
            await run.kill_mid_batch(await _loops(emulator) + 10)
        elif kind == "starts":
            await run.kill_during_starts()
        elif kind == "publishing":
            await run.kill_while_publishing()
        else:
            await run.kill_at_random(0.5, 4.0)
    counts = await _finish_and_judge(run, expected, within=600)
    assert counts["kills"] == len(chunks) >= 10
