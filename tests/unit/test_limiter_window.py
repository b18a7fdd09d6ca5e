"""The receive window: held messages follow the start rate, max_in_flight is the ceiling."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import anyio
import pytest

from a2i_worker.limiting import AdaptiveLimiter, RateParams, ReceiveWindow


async def eventually(cond: Callable[[], bool], within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        while not cond():  # noqa: ASYNC110 -- polling a condition with a deadline, on purpose
            await asyncio.sleep(0.001)


class Rate:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("rate", "limit"),
    [
        (25.0, 25 * 5 + 10),  # what the 25/s quota starts in 5 s, plus a batch
        (0.5, 3 + 10),
        (0.0, 10),
        (float("nan"), 10),
        (400.0, 1000),  # capped at max_in_flight
        (float("inf"), 10),
    ],
)
def test_limit_is_rate_times_seconds_plus_a_batch_under_the_ceiling(
    rate: float, limit: int
) -> None:
    window = ReceiveWindow(Rate(rate), seconds=5.0, ceiling=1000)
    assert window.limit() == limit


def test_a_small_ceiling_wins_even_over_the_batch() -> None:
    assert ReceiveWindow(Rate(100.0), seconds=5.0, ceiling=4).limit() == 4


async def test_acquire_waits_while_full_and_a_release_lets_one_in() -> None:
    window = ReceiveWindow(Rate(0.0), seconds=5.0, ceiling=100, batch=3)
    for _ in range(3):
        window.acquire_nowait()
    with pytest.raises(anyio.WouldBlock):
        window.acquire_nowait()
    got = asyncio.Event()

    async def taker() -> None:
        await window.acquire()
        got.set()

    task = asyncio.create_task(taker())
    await asyncio.sleep(0)  # let it queue behind the full window
    assert not got.is_set()
    window.release()
    async with asyncio.timeout(1.0):
        await got.wait()
    await task
    assert window.held == 3


async def test_a_higher_rate_wakes_waiting_receivers_and_a_lower_one_holds_them() -> None:
    rate = Rate(1.0)
    window = ReceiveWindow(rate, seconds=2.0, ceiling=1000, batch=1)  # limit 3
    taken = 0

    async def taker() -> None:
        nonlocal taken
        await window.acquire()
        taken += 1

    tasks = [asyncio.create_task(taker()) for _ in range(10)]
    await eventually(lambda: taken == 3)
    rate.value = 3.0  # limit 7
    window.notify()
    await eventually(lambda: taken == 7)
    rate.value = 0.0  # limit 1: nothing new until six are done
    assert window.value == 0
    for _ in range(6):
        window.release()
    assert taken == 7
    window.release()  # held 0 < 1
    await eventually(lambda: taken == 8)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


async def test_the_window_follows_the_limiters_start_rate() -> None:
    clock = _Clock()
    limiter = AdaptiveLimiter(
        start=RateParams(initial=2.0), sweep=RateParams(), clock=clock, rng=random.Random(1)
    )
    window = ReceiveWindow(lambda: limiter.rate("start"), seconds=5.0, ceiling=1000)
    limiter.watch("start", window.notify)
    assert window.limit() == 20
    for _ in range(10):
        window.acquire_nowait()
    for _ in range(10):
        window.acquire_nowait()
    taken = asyncio.Event()

    async def taker() -> None:
        await window.acquire()
        taken.set()

    task = asyncio.create_task(taker())
    await asyncio.sleep(0)
    assert not taken.is_set()
    for _ in range(40):  # starts answered at the current rate: slow start grows it
        clock.t += 1.0 / limiter.rate("start")
        limiter.on_success("start")
    async with asyncio.timeout(1.0):
        await taken.wait()  # woken by the rate change, no release
    await task
    assert window.limit() > 21
