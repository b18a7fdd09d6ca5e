"""Fast variant of bench/worker_bench.py: a backlog through a real worker process.

150 requests by default; the 400-request variant is marked ``soak`` (``make soak``).

Asserts counts only, never times: every request exactly one result with the right
outcome, one loop per activated request (the emulator's count), no name started twice,
the requests queue emptied, and with events flowing at most 0.1 DescribeHumanLoop
calls per loop.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from a2i_emulator.control import EmulatorControl
from a2i_worker.local import LocalStack, StackEndpoints

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from benchlib import Workload
from worker_bench import run_worker_phase

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("n", [150, pytest.param(400, marks=pytest.mark.soak)])
async def test_backlog_every_request_one_result_one_loop(
    stack: LocalStack, env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path, n: int
) -> None:
    workload = Workload(n, tag=f"r{uuid.uuid4().hex[:6]}", seed=3)
    figures = await run_worker_phase(
        stack.a2i_url,
        env,
        workload,
        tmp_path,
        within=60.0,
        max_describes_per_loop=0.1,
        # The drain waits out the current long poll: 1 s, not the benchmark's 2 s.
        settings={"receive_wait_seconds": 1},
    )
    assert figures["problems"] == []
    assert figures["distinct_results"] == n
    assert figures["emulator_loops_total"] == figures["activated"] == len(workload.activated())
    assert 0.3 * n < figures["activated"] < 0.7 * n  # the rule activates about half
    assert figures["outcomes"] == {
        "completed": figures["activated"],
        "not_activated": n - figures["activated"],
    }
    assert figures["emulator_max_starts_per_name"] == 1
    assert figures["describes_per_loop"] <= 0.1
    assert figures["hist_receive_to_start_count"] == figures["activated"]
    # moto's own count of the worker's AWS calls: one output.json read per loop, and
    # about as many calls per request as the AWS-calls-only baseline makes (~1.3)
    calls = figures["aws_calls"]
    assert figures["activated"] <= calls["s3.GET"] <= figures["activated"] + 5
    assert 0.5 < figures["aws_calls_per_request"] < 2.0
