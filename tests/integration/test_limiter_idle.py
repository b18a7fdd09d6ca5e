"""Issue 15: the first start after a long quiet spell is recorded on the first try.

Before the fix, slow start computed ``exp(growth x idle seconds)``: after ~4 minutes
without a start it raised OverflowError *after* A2I had accepted the loop, so the handler
crashed before the ledger recorded it, and the retry crashed again in Describe (the
sweep limiter had been idle too). Judged by the emulator's counters: one StartHumanLoop
per request, no Describe.
"""

from __future__ import annotations

import time
import types
from pathlib import Path
from typing import Any

import pytest
from harness import running_worker

from a2i_emulator.control import EmulatorControl
from a2i_worker.a2i import A2IGateway
from a2i_worker.aws import AwsClients
from a2i_worker.ledger.protocol import StartPayload
from a2i_worker.limiting import AdaptiveLimiter, GateParams, QuotaGate, RateParams
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name

TWO_HOURS = 2 * 3600.0


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


async def test_gateway_start_and_describe_after_two_idle_hours(
    env: StackEndpoints, emulator: EmulatorControl, aws: AwsClients
) -> None:
    clock = _Clock()
    limiter = AdaptiveLimiter(start=RateParams(), sweep=RateParams(), clock=clock)
    gateway = A2IGateway(aws.a2i, limiter, QuotaGate(GateParams()))
    payload = StartPayload(env.flow_definition_arn, '{"x": 1}')
    await gateway.start("idle-first", payload)
    assert await gateway.describe("idle-first") is not None
    clock.t += TWO_HOURS
    info = await gateway.start("idle-second", payload)  # raised OverflowError here
    assert info.status == "InProgress"
    clock.t += TWO_HOURS
    assert await gateway.describe("no-such-loop") is None
    ops = (await emulator.counters())["operations"]
    assert ops["StartHumanLoop"]["calls"] == 2
    assert ops["DescribeHumanLoop"]["calls"] == 2
    snap = limiter.snapshot()
    assert snap.start.successes == 2
    # "not found" is an answered call: it feeds the sweep class like a success (after a
    # restart every half-started request is asked about first; the rate must grow)
    assert snap.sweep.successes == 2


async def test_worker_records_the_first_start_after_two_idle_hours(
    env: StackEndpoints,
    emulator: EmulatorControl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real worker; only the limiter's clock (``MonotonicClock``) is moved on 2 h."""
    offset = [0.0]
    shim = types.SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0])
    monkeypatch.setattr("a2i_worker.limiting.clock.time", shim)
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": 0.2},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )

    def req(rid: str) -> dict[str, Any]:
        return {"request_id": rid, "route": "main", "input": {"confidence": 0.1, "label": "c"}}

    async with running_worker(env, tmp_path) as h:
        await h.send([req("before-idle")])
        await h.results.wait_for(1, within=30)
        offset[0] += TWO_HOURS
        await h.send([req("after-idle")])
        await h.results.wait_for(2, within=30)
    # both starts came back to the worker as answered, accepted calls; before the fix the
    # second one raised between A2I's answer and this count (its loop's event then
    # rescued the request, so the results alone do not show the crash)
    assert h.worker is not None
    ok = {"op": "StartHumanLoop", "result": "ok"}
    assert h.worker.metrics.registry.get_sample_value("a2i_worker_a2i_calls_total", ok) == 2
    assert h.worker.limiter.snapshot().start.successes == 2
    by_req = h.results.by_request
    assert [r["outcome"] for r in by_req["after-idle"]] == ["completed"]
    assert by_req["after-idle"][0]["loop_name"] == loop_name(
        env.flow_definition_arn, "after-idle", 1
    )
    counters = await emulator.counters()
    ops = counters["operations"]
    assert ops["StartHumanLoop"]["calls"] == 2  # recorded on the first try
    assert counters["max_starts_per_name"] == 1
    # no Describe found a loop (the readiness check's Describe of a made-up name is 404)
    assert ops["DescribeHumanLoop"]["accepted"] == 0
