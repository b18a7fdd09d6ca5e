"""The quota gate: reservations, learned cap, probes, recounts.

Real event loop, tiny intervals; every wait is bounded by a timeout on a condition.
(Several gates sharing one quota: tests/unit/test_gate_replicas.py.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from a2i_worker.limiting import GateParams, QuotaGate


async def eventually(cond: Callable[[], bool], within: float = 2.0) -> None:
    """Poll ``cond`` until it holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 -- polling a condition with a deadline, on purpose
            await asyncio.sleep(0.001)


async def test_gate_is_open_until_the_first_quota_error() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    for _ in range(100):
        async with asyncio.timeout(0.5):
            await gate.wait_open()
        gate.on_start_succeeded()
    snap = gate.snapshot()
    assert (snap.cap, snap.is_open, snap.in_flight, snap.reserved) == (None, True, 100, 0)


async def test_gate_closes_at_the_learned_level_and_reopens_on_finishes() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    for _ in range(5):
        await gate.wait_open()
        gate.on_start_succeeded()
    await gate.wait_open()
    gate.on_quota_exceeded()  # the 6th start: quota is 5 loops
    snap = gate.snapshot()
    assert (snap.cap, snap.is_open, snap.quota_rejections) == (5, False, 1)

    admitted = 0

    async def starter() -> None:
        nonlocal admitted
        await gate.wait_open()
        admitted += 1
        gate.on_start_succeeded()

    tasks = [asyncio.create_task(starter()) for _ in range(3)]
    await eventually(lambda: gate.snapshot().waiting == 3)
    assert admitted == 0  # held, not rejected
    gate.on_loop_finished()
    await eventually(lambda: admitted == 1)
    gate.on_loop_finished(2)
    await eventually(lambda: admitted == 3)
    await asyncio.gather(*tasks)
    snap = gate.snapshot()
    assert (snap.in_flight, snap.is_open) == (5, False)


async def test_concurrent_starts_cannot_overshoot_the_cap() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    gate.set_in_flight(3)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 3
    gate.on_loop_finished(2)  # room for 2

    granted = 0

    async def starter() -> None:
        nonlocal granted
        await gate.wait_open()
        granted += 1  # reservation held: no on_start_* yet

    tasks = [asyncio.create_task(starter()) for _ in range(10)]
    await eventually(lambda: granted == 2 and gate.snapshot().waiting == 8)
    assert gate.snapshot().reserved == 2
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_failed_start_returns_its_reservation() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    gate.set_in_flight(1)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 1, in flight 1
    gate.on_loop_finished()
    await gate.wait_open()
    assert not gate.snapshot().is_open
    gate.on_start_failed()  # throttled: slot back
    assert gate.snapshot().is_open


async def test_probe_lets_one_start_through_after_a_jittered_delay() -> None:
    params = GateParams(probe_after=0.05, probe_jitter=0.5, probe_step_max=8)
    gate = QuotaGate(params, rng=random.Random(7))
    gate.set_in_flight(4)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 4, closed; nothing will finish
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    admitted: list[float] = []

    async def starter() -> None:
        await gate.wait_open()
        admitted.append(loop.time())

    tasks = [asyncio.create_task(starter()) for _ in range(3)]
    await eventually(lambda: len(admitted) == 1)
    assert 0.025 <= admitted[0] - t0 < 1.0
    assert gate.snapshot().probes == 1
    assert gate.snapshot().waiting == 2  # exactly one probe, the others still held

    gate.on_start_succeeded()  # the quota moved: cap goes up, the next one gets in
    await eventually(lambda: len(admitted) == 2)
    snap = gate.snapshot()
    assert snap.probe_successes == 1
    assert snap.cap == 6  # the probe's own loop + a step of 1 (no finish came: stuck)
    gate.on_start_succeeded()
    await eventually(lambda: len(admitted) == 3)  # the next probe, twice as soon
    gate.on_start_succeeded()
    assert gate.snapshot().cap == 9  # + a step of 2
    await asyncio.gather(*tasks)


async def test_a_probe_among_finishes_keeps_only_its_own_loop() -> None:
    """Finishes keep reaching this gate while it waits: a probe that succeeds most likely
    took a slot whose finish event is on its way (with several replicas, to another one,
    which will then be refused). No extra room, no faster probing."""
    gate = QuotaGate(GateParams(probe_after=0.05, probe_jitter=0.1), rng=random.Random(7))
    gate.set_in_flight(4)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 4
    admitted = 0

    async def starter() -> None:
        nonlocal admitted
        await gate.wait_open()
        admitted += 1
        gate.on_start_succeeded()

    for rounds in range(1, 4):
        tasks = [asyncio.create_task(starter()) for _ in range(2)]
        await eventually(lambda: gate.snapshot().waiting == 2)  # the probe timer is armed
        gate.on_loop_finished()  # a slot for this replica, taken at once
        first, probe = 2 * rounds - 1, 2 * rounds
        await eventually(lambda: admitted == first)  # noqa: B023 -- awaited right here
        await eventually(lambda: admitted == probe)  # noqa: B023 -- then the probe
        await asyncio.gather(*tasks)
        snap = gate.snapshot()
        assert snap.cap == snap.in_flight  # the probe's own loop, no step on top
        assert not snap.is_open
    snap = gate.snapshot()
    assert (snap.cap, snap.probes, snap.probe_successes) == (7, 3, 3)


async def test_a_stuck_gate_opens_up_geometrically() -> None:
    """No finish reaches this gate (another replica, with no work left, is told of them):
    successful probes add 1, 2, 4 ... and come twice as soon."""
    params = GateParams(probe_after=0.04, probe_jitter=0.1)
    gate = QuotaGate(params, rng=random.Random(3))
    gate.set_in_flight(8)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 8
    gate.set_in_flight(0)  # the account drained; the count moves the cap too: room 0
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def starter() -> None:
        await gate.wait_open()
        started.append(loop.time())
        gate.on_start_succeeded()

    t0 = loop.time()
    tasks = [asyncio.create_task(starter()) for _ in range(8)]
    await eventually(lambda: len(started) == 8)
    await asyncio.gather(*tasks)
    snap = gate.snapshot()
    assert snap.probes <= 4  # 1 + 1 (+1 step) + 1 (+2) + 1 (+4) >= 8 starts
    assert started[-1] - t0 < 4 * 0.044  # not four full delays


async def test_a_recount_moves_the_cap_with_the_count() -> None:
    """A recount corrects the count, not this replica's share of the free room."""
    gate = QuotaGate(GateParams(probe_after=60.0))
    gate.set_in_flight(10)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 10, room 0
    gate.on_loop_finished()  # room 1
    gate.set_in_flight(30)  # other replicas' loops: the account has 30 open
    snap = gate.snapshot()
    assert (snap.in_flight, snap.cap, snap.is_open) == (30, 31, True)
    await gate.wait_open()  # the one slot this replica heard of
    assert not gate.snapshot().is_open


async def test_rejected_probe_relearns_the_cap_and_probes_again() -> None:
    gate = QuotaGate(GateParams(probe_after=0.03, probe_jitter=0.2), rng=random.Random(1))
    gate.set_in_flight(2)
    await gate.wait_open()
    gate.on_quota_exceeded()
    admitted = 0

    async def starter() -> None:
        nonlocal admitted
        await gate.wait_open()
        admitted += 1
        gate.on_quota_exceeded()  # still full

    tasks = [asyncio.create_task(starter()) for _ in range(2)]
    await eventually(lambda: admitted == 2)  # a second probe followed the rejected one
    snap = gate.snapshot()
    assert (snap.probes, snap.probe_successes, snap.cap) == (2, 0, 2)
    assert snap.quota_rejections == 3
    await asyncio.gather(*tasks)


def test_probe_delay_is_jittered_within_bounds() -> None:
    gate = QuotaGate(GateParams(probe_after=10.0, probe_jitter=0.5), rng=random.Random(3))
    delays = [gate.probe_delay() for _ in range(200)]
    assert all(5.0 <= d <= 15.0 for d in delays)
    assert max(delays) - min(delays) > 5.0  # actually spread, replicas won't probe together


async def test_cancelled_waiter_leaves_no_reservation_behind() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    gate.set_in_flight(1)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 1, full
    task = asyncio.create_task(gate.wait_open())
    await eventually(lambda: gate.snapshot().waiting == 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gate.on_loop_finished()
    snap = gate.snapshot()
    assert (snap.waiting, snap.reserved, snap.is_open) == (0, 0, True)


async def test_confirm_hands_back_reservations_that_a_learned_cap_made_stale() -> None:
    gate = QuotaGate(GateParams(probe_after=60.0))
    gate.set_in_flight(3)
    for _ in range(4):  # cap unknown: four reservations, e.g. all waiting for rate tokens
        await gate.wait_open()
    assert gate.confirm()  # nothing learned yet: the first one goes out
    gate.on_quota_exceeded()  # ... and finds the quota is 3 loops
    # the three still queued must not go out only to be rejected too
    assert [gate.confirm() for _ in range(3)] == [False, False, False]
    snap = gate.snapshot()
    assert (snap.reserved, snap.quota_rejections, snap.is_open) == (0, 1, False)
    gate.on_loop_finished()
    await gate.wait_open()
    assert gate.confirm()  # a reservation that fits is confirmed and kept
    assert gate.snapshot().reserved == 1


async def test_confirm_lets_the_probe_through() -> None:
    gate = QuotaGate(GateParams(probe_after=0.02, probe_jitter=0.1), rng=random.Random(2))
    gate.set_in_flight(2)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 2, full
    async with asyncio.timeout(1.0):
        await gate.wait_open()  # granted by the probe
    assert gate.snapshot().probes == 1
    assert gate.confirm()


async def _fill(gate: QuotaGate) -> None:
    """Start until the gate is full (the next start will be a probe)."""
    while gate.snapshot().is_open:
        await gate.wait_open()
        assert gate.confirm()
        gate.on_start_succeeded()


async def test_probe_steps_start_at_one_and_double_while_probes_succeed() -> None:
    params = GateParams(probe_after=0.02, probe_jitter=0.1, probe_step_max=4)
    gate = QuotaGate(params, rng=random.Random(5))
    gate.set_in_flight(10)
    await gate.wait_open()
    gate.on_quota_exceeded()  # cap 10
    caps = []
    for _ in range(4):
        async with asyncio.timeout(1.0):
            await gate.wait_open()  # a probe (the gate is full)
        assert gate.confirm()
        gate.on_start_succeeded()
        cap = gate.snapshot().cap
        assert cap is not None
        caps.append(cap)
        await _fill(gate)
    # the probe's loop plus steps of 1, 2, 4, 4 (probe_step_max) on top
    assert caps == [12, 15, 20, 25]
    await gate.wait_open()
    gate.on_quota_exceeded()  # the quota is 25 after all
    async with asyncio.timeout(1.0):
        await gate.wait_open()
    gate.on_start_succeeded()
    assert gate.snapshot().cap == 27  # its own loop + 1: the step was reset by the rejection
