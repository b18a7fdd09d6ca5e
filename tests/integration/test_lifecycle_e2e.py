"""Cancel in every phase, end to end on the local stack (docs/lifecycle.md, messages.md
"Cancel"): before any loop (deferred by a review budget), while the loop is being started,
while it is open, after the result, and for a request never seen. Each ends in exactly
one result.

moto in server mode and the project's A2I emulator are the real parts; the worker runs
in-process (``harness.running_worker``) and nothing is patched. Judged by what leaves the
worker (``lifecycle_outside.Outside``: results queue, requests DLQ, emulator counters),
read after the worker has drained, so a late second result or DLQ copy would be seen.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Harness, running_worker
from lifecycle_outside import FAST, Outside, auto_reviewers, cancel, loop_exists, req

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until


@pytest.fixture
def outside(aws: AwsClients, env: StackEndpoints, emulator: EmulatorControl) -> Outside:
    return Outside.of(aws, env, emulator)


# -- cancel, in every phase ----------------------------------------------------------------


async def test_cancel_while_deferred_by_a_budget_ends_it_and_no_loop_ever_starts(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """Before any loop exists: the route's daily budget (1) is spent, the request waits
    in SQS; the cancel ends it, and its message coming back finds it finished."""
    await auto_reviewers(outside.emulator)
    budget = '\n[routes.main.budget]\nper_day = 1\npolicy = "defer"\n'
    async with running_worker(env, tmp_path, routes_extra=budget, **FAST) as h:
        await outside.send(req("bud-1"))
        assert (await outside.result_of("bud-1"))["outcome"] == "completed"
        await outside.send(req("bud-2"))
        await wait_until(lambda: _deferred(h) == 1, 15, message="bud-2 deferred")
        await outside.wait_depth((0, 1), "bud-2 held invisible until the day ends")
        await outside.send(cancel("bud-2"))
        stopped = await outside.result_of("bud-2")
        # The deferred copy coming back (here: the same request sent again) never starts.
        await outside.send(req("bud-2"))
        await outside.wait_depth((0, 1), "the copy acknowledged; only the deferred one held")
    results = await outside.final()
    assert {rid: [r["outcome"] for r in rs] for rid, rs in results.items()} == {
        "bud-1": ["completed"],
        "bud-2": ["stopped"],
    }
    assert stopped["loop_name"] is None
    assert "before a loop was started" in stopped["reason"]
    counters = await outside.counters()
    assert counters["loops_total"] == 1
    assert counters["operations"]["StartHumanLoop"]["calls"] == 1
    assert outside.dlq == []


def _deferred(h: Harness) -> float:
    assert h.worker is not None
    labels = {"route": "main", "action": "defer"}
    value = h.worker.metrics.registry.get_sample_value("a2i_worker_budget_spent_total", labels)
    return value or 0.0


async def test_cancel_while_the_loop_is_being_started_stops_it_once_it_exists(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """StartHumanLoop takes 2 s (emulator latency): the cancel arrives while it is in
    flight, is noted, and the loop is stopped the moment it exists."""
    await outside.emulator.put_reviewers({"mode": "manual", "stop_delay": 0.1})
    await outside.emulator.put_faults(
        {"operations": {"StartHumanLoop": {"latency_ms": [2000, 2000]}}}
    )
    rid = "start-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(req(rid))

        async def start_in_flight() -> bool:
            return (await outside.op("StartHumanLoop"))["calls"] == 1

        await wait_until(start_in_flight, 15, message="StartHumanLoop called")
        await outside.send(cancel(rid))
        # The cancel was handled (only the request's own message is still held) while
        # A2I had not answered the start yet: the cancel met the STARTING phase.
        await outside.wait_depth((0, 1), "cancel consumed")
        assert (await outside.op("StartHumanLoop"))["accepted"] == 0
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert res["loop_name"] == name
    counters = await outside.counters()
    assert counters["loops_total"] == 1
    assert counters["max_starts_per_name"] == 1
    assert counters["loops_by_status"]["Stopped"] == 1
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []


async def test_cancel_while_the_loop_is_open_stops_it(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    await outside.emulator.put_reviewers({"mode": "manual", "stop_delay": 0.1})
    rid = "open-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(req(rid))
        await wait_until(lambda: loop_exists(outside.emulator, name), 15, message="loop InProgress")
        await outside.send(cancel(rid))
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert res["loop_name"] == name
    counters = await outside.counters()
    assert counters["loops_by_status"]["Stopped"] == 1
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []


async def test_cancel_after_the_result_and_for_an_unknown_request(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """After the result: acknowledged, nothing stopped, no second result. For a request
    never seen: a ``stopped`` result now, and the request arriving later never starts."""
    await auto_reviewers(outside.emulator)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(req("done-1"))
        assert (await outside.result_of("done-1"))["outcome"] == "completed"
        await outside.send(cancel("done-1"))
        await outside.send(cancel("ghost-1"))
        ghost = await outside.result_of("ghost-1")
        await outside.wait_depth((0, 0), "both cancels consumed")
        await outside.send(req("ghost-1"))  # it arrives after its cancel
        await outside.wait_depth((0, 0), "the late request acknowledged")
    results = await outside.final()
    assert {rid: [r["outcome"] for r in rs] for rid, rs in results.items()} == {
        "done-1": ["completed"],
        "ghost-1": ["stopped"],
    }
    assert ghost["reason"] == "cancelled before the request arrived"
    assert ghost["loop_name"] is None
    counters = await outside.counters()
    assert counters["loops_total"] == 1, "the late request started no loop"
    assert counters["operations"]["StartHumanLoop"]["calls"] == 1
    assert counters["operations"]["StopHumanLoop"]["calls"] == 0, "nothing to stop"
    assert outside.dlq == []
