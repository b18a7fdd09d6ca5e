"""The asyncio side: the re-tunable bucket and per-class independence (the gate:
test_limiter_gate.py).

Real event loop, tiny intervals; every wait is bounded by a timeout on a condition.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from a2i_worker.limiting import (
    AdaptiveLimiter,
    RateParams,
    TunableLimiter,
)


async def eventually(cond: Callable[[], bool], within: float = 2.0) -> None:
    """Poll ``cond`` until it holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 -- polling a condition with a deadline, on purpose
            await asyncio.sleep(0.001)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t


async def test_set_rate_applies_to_tasks_already_waiting() -> None:
    bucket = TunableLimiter(rate=0.5)  # one token per 2 s
    await bucket.acquire()
    done = asyncio.Event()

    async def waiter() -> None:
        async with bucket:
            done.set()

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # let it queue behind the empty bucket
    assert not done.is_set()
    bucket.set_rate(200.0)  # next token in 5 ms, not in 2 s
    async with asyncio.timeout(0.5):
        await done.wait()
    await task
    assert bucket.rate == 200.0


async def test_deep_cut_does_not_stall_the_bucket() -> None:
    """A level built at 1000/s (burst 50) must not take 50/20 s to drain at 20/s: at
    most one burst of debt is kept, so the next call goes about one interval later."""
    bucket = TunableLimiter(rate=1000.0, burst=50.0)
    for _ in range(50):
        await bucket.acquire()  # the bucket is full
    bucket.set_rate(20.0, 1.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with asyncio.timeout(1.0):
        await bucket.acquire()
    assert loop.time() - t0 < 0.5  # ~0.05 s (1/20); 2.5 s without the cap


async def test_waiters_go_in_order_and_a_cancelled_one_does_not_stall_the_rest() -> None:
    bucket = TunableLimiter(rate=200.0)  # one token per 5 ms
    await bucket.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0)  # all four queue behind the empty bucket
    tasks[0].cancel()  # the first in line, asleep on its timer
    tasks[2].cancel()  # one further back, waiting for its turn
    async with asyncio.timeout(1.0):
        await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [1, 3]


async def test_bucket_paces_at_the_set_rate() -> None:
    bucket = TunableLimiter(rate=100.0, burst=1.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(21):
        await bucket.acquire()
    elapsed = loop.time() - t0
    assert 0.15 <= elapsed < 1.0  # 20 intervals of 10 ms


async def test_unknown_class_is_rejected() -> None:
    lim = AdaptiveLimiter(start=RateParams(), sweep=RateParams())
    with pytest.raises(ValueError, match="unknown operation class"):
        lim.acquire("delete")


async def test_throttles_cut_only_their_own_class_and_snapshot_shows_it() -> None:
    clock = FakeClock()
    lim = AdaptiveLimiter(
        start=RateParams(initial=100.0),
        sweep=RateParams(initial=10.0),
        clock=clock,
        rng=random.Random(1),
    )
    lim.on_throttle("start")
    clock.t += 0.01
    lim.on_throttle("start")  # same congestion event
    snap = lim.snapshot()
    assert snap.start.rate < 100.0
    assert snap.start.throttles == 2
    assert snap.start.congestion_events == 1
    assert snap.sweep.rate == 10.0
    assert snap.sweep.throttles == 0
    assert lim.rate("start") == snap.start.rate


async def test_sweeps_get_through_while_starts_saturate() -> None:
    lim = AdaptiveLimiter(
        start=RateParams(initial=1.0, min_rate=1.0), sweep=RateParams(initial=200.0)
    )
    starts = sweeps = 0

    async def start_worker() -> None:
        nonlocal starts
        while True:
            async with lim.acquire("start"):
                starts += 1
            lim.on_throttle("start")

    async def sweep_worker() -> None:
        nonlocal sweeps
        while True:
            async with lim.acquire("sweep"):
                sweeps += 1
            lim.on_success("sweep")

    tasks = [asyncio.create_task(start_worker()) for _ in range(50)]
    tasks.append(asyncio.create_task(sweep_worker()))
    try:
        await eventually(lambda: sweeps >= 20)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert starts <= 3  # 50 start tasks queued at ~1/s, none of them in the sweeps' way
