"""A2I misbehaving: 5xx and latency spikes, throttling storms, a quota cap that flaps
while the worker runs. Nothing lost, no loop twice, retries bounded, worker ready."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from reliability_support import (
    Expected,
    QueueProbe,
    ResultsCollector,
    assert_exactly_once,
    make_requests,
)

from a2i_emulator.control import EmulatorControl
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until

sys.path.append(str(Path(__file__).parents[1] / "integration"))
from harness import Harness, running_worker

OPS = ("StartHumanLoop", "DescribeHumanLoop", "ListHumanLoops", "StopHumanLoop")


def _merge(a: Expected, b: Expected) -> Expected:
    return Expected(a.request_ids | b.request_ids, a.activated | b.activated)


async def _start_op(emulator: EmulatorControl) -> dict[str, Any]:
    ops: dict[str, Any] = (await emulator.counters())["operations"]
    return dict(ops.get("StartHumanLoop", {}))


async def _phase(
    h: Harness, results: ResultsCollector, prefix: str, n: int, seed: int, within: float
) -> Expected:
    bodies, expected = make_requests(n, prefix=prefix, seed=seed)
    await h.send(bodies)
    await results.wait_for(expected.request_ids, within)
    return expected


async def _ready(h: Harness) -> bool:
    assert h.worker is not None
    port = h.worker.health.bound_port
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/readyz") as r:
        return r.status == 200


async def test_5xx_latency_throttling_and_flapping_quota_lose_nothing(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.2, "high": 1.0},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )
    async with running_worker(
        env,
        tmp_path,
        overdue_after_seconds=3,
        sweep_interval_seconds=1,
        start_rate_initial=50.0,
        start_rate_max=200.0,
        visibility_timeout_seconds=4,
        heartbeat_interval_seconds=1,
    ) as h:
        results = ResultsCollector(h.aws, env.results_queue_url)

        # 1. 10 % 5xx (and 5 % bare 503) with latency spikes, on every operation.
        await emulator.put_faults(
            {
                "operations": {
                    op: {"error_rate": 0.1, "unavailable_rate": 0.05, "latency_ms": [0, 400]}
                    for op in OPS
                }
            }
        )
        expected = await _phase(h, results, "5xx", 50, 1, 60)
        injected = (await _start_op(emulator))["injected_errors"]
        assert injected > 0, "the fault really happened"
        await emulator.put_faults(
            {
                "operations": {
                    op: {"error_rate": 0.0, "unavailable_rate": 0.0, "latency_ms": [0, 0]}
                    for op in OPS
                }
            }
        )

        # 2. A throttling storm: StartHumanLoop limited to 4/s, burst 2.
        before = await _start_op(emulator)
        await emulator.put_quotas({"rates": {"StartHumanLoop": {"rate": 4.0, "burst": 2}}})
        storm = await _phase(h, results, "storm", 30, 2, 60)
        after = await _start_op(emulator)
        throttled = after["throttled"] - before["throttled"]
        accepted = after["accepted"] - before["accepted"]
        assert throttled > 0, "the storm really throttled"
        assert accepted >= len(storm.activated)
        # Bounded retries: the adaptive rate backs off instead of hammering.
        assert throttled <= 3 * accepted, (throttled, accepted)
        expected = _merge(expected, storm)
        await emulator.put_quotas({"rates": {"StartHumanLoop": None}})

        # 3. The cap on loops in progress flaps between 3 and 40 while requests flow.
        # Reviews take long enough here that more than 3 loops are open at once even
        # at the (backed-off) start rate the storm left behind: the cap must bite.
        await emulator.put_reviewers(
            {"delay": {"distribution": "uniform", "low": 1.0, "high": 2.0}}
        )
        before = await _start_op(emulator)
        done = anyio.Event()

        async def flap() -> None:
            caps = [3, 40, 5, 30]
            i = 0
            with anyio.move_on_after(60):
                while not done.is_set():
                    await emulator.put_quotas({"max_in_progress": caps[i % len(caps)]})
                    i += 1
                    with anyio.move_on_after(0.4):
                        await done.wait()
            await emulator.put_quotas({"max_in_progress": None})

        async with anyio.create_task_group() as tg:
            tg.start_soon(flap)
            try:
                flapping = await _phase(h, results, "quota", 24, 3, 90)
            finally:
                done.set()
        after = await _start_op(emulator)
        assert after["quota_rejected"] > before["quota_rejected"], "the cap really bit"
        expected = _merge(expected, flapping)

        await wait_until(lambda: _ready(h), 20, message="worker ready after the faults")
        probe = QueueProbe(h.aws)
        counts = await assert_exactly_once(expected, results, emulator, probe, env)
    assert counts["loops"] == len(expected.activated)
