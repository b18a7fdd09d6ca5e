"""Three quota gates sharing one account's open-loop quota: a simulation on virtual time.

Each replica runs the gateway's start protocol (``wait_open`` -> ``confirm`` -> send ->
``on_start_succeeded`` / ``on_quota_exceeded``) for a backlog; the server admits a start
while fewer than ``QUOTA`` loops are open; every finish reaches the one replica whose
events consumer received it (chosen at random, as SQS spreads one queue's messages), and
every ``RECOUNT`` seconds each replica's sweeper hands its gate the ledger's count of open
loops (the same table for all). The model the gate implements (docs/limiter.md, "Replicas"):
in flight = loops open in A2I as the ledger records them; a replica adds its own starts
and subtracts the finishes it sees; a recount resets that estimate and the quota is never
below what was open.

The event loop runs on virtual time: the selector advances the clock to the next timer
instead of waiting, so ten simulated minutes take well under a second.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from a2i_worker.limiting import GateParams, QuotaGate

QUOTA = 60
RATE = 20.0
RECOUNT = 30.0
DURATION = 600.0


class _Selector(selectors.DefaultSelector):
    """Never waits: advances the loop's virtual clock by the timeout instead."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self._clock[0] += timeout
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = [0.0]
        super().__init__(_Selector(self._now))

    def time(self) -> float:
        return self._now[0]


def run_virtual(coro: Coroutine[Any, Any, Any]) -> Any:
    loop = VirtualTimeLoop()
    try:
        # the gates' state-change lines (thousands of simulated seconds of them)
        with capture_logs():
            return loop.run_until_complete(coro)
    finally:
        loop.close()


@dataclass
class Account:
    """The server side: the quota, what is open, and the judge's tallies."""

    rng: random.Random
    gates: list[QuotaGate]
    quota: int = QUOTA
    open: int = 0
    starts: list[int] = field(default_factory=list)
    rejections: int = 0
    most_open: int = 0
    open_seconds: float = 0.0
    last_change: float = 0.0
    timeline: list[tuple[float, int]] = field(default_factory=list)
    rejected_at: list[float] = field(default_factory=list)

    def open_on_average(self, lo: float, hi: float) -> float:
        """Time-averaged open loops over ``[lo, hi)``."""
        total, prev_t, prev_n = 0.0, lo, 0
        for t, n in self.timeline:
            if t >= hi:
                break
            if t > lo:
                total += prev_n * (t - prev_t)
                prev_t = t
            prev_n = n
        return (total + prev_n * (hi - prev_t)) / (hi - lo)

    def _tick(self, now: float) -> None:
        self.open_seconds += self.open * (now - self.last_change)
        self.last_change = now
        self.timeline.append((now, self.open))

    def start(self, replica: int) -> bool:
        loop = asyncio.get_running_loop()
        self._tick(loop.time())
        if self.open >= self.quota:
            self.rejections += 1
            self.rejected_at.append(loop.time())
            return False
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self.starts[replica] += 1
        loop.call_later(self.rng.expovariate(1 / 8.0), self._finish)  # review ~8 s
        return True

    def _finish(self) -> None:
        loop = asyncio.get_running_loop()
        self._tick(loop.time())
        self.open -= 1
        # the status-change event reaches one replica, a little later
        gate = self.rng.choice(self.gates)
        loop.call_later(self.rng.uniform(0.2, 2.0), gate.on_loop_finished)


async def _starter(
    account: Account, gate: QuotaGate, replica: int, pace: asyncio.Lock, rng: random.Random
) -> None:
    """A2IGateway.start's protocol for one backlog slot, forever: the gate, a rate token
    (``RATE`` a second per replica), ``confirm``, the call."""
    while True:
        await gate.wait_open()
        async with pace:
            await asyncio.sleep(1.0 / RATE)
        if not gate.confirm():
            continue
        await asyncio.sleep(rng.uniform(0.01, 0.05))  # StartHumanLoop on the wire
        if account.start(replica):
            gate.on_start_succeeded()
        else:
            gate.on_quota_exceeded()


async def _recounts(account: Account, gate: QuotaGate, phase: float) -> None:
    await asyncio.sleep(phase)
    while True:
        gate.set_in_flight(account.open)  # the ledger's open loops, table-wide
        await asyncio.sleep(RECOUNT)


async def _raise_quota(account: Account, at: float, to: int) -> None:
    await asyncio.sleep(at)
    account.quota = to


async def _simulate(
    seed: int, demand: tuple[int, ...], raise_to: tuple[float, int] | None = None
) -> Account:
    """``demand[i]``: backlog slots (concurrent starters) of replica ``i``."""
    rng = random.Random(seed)
    gates = [QuotaGate(GateParams(), rng=random.Random(rng.random())) for _ in demand]
    account = Account(rng, gates, starts=[0] * len(demand))
    tasks = []
    for i, gate in enumerate(gates):
        tasks.append(asyncio.create_task(_recounts(account, gate, rng.uniform(0, RECOUNT))))
        pace = asyncio.Lock()
        for _ in range(demand[i]):
            r = random.Random(rng.random())
            tasks.append(asyncio.create_task(_starter(account, gate, i, pace, r)))
    if raise_to is not None:
        tasks.append(asyncio.create_task(_raise_quota(account, *raise_to)))
    await asyncio.sleep(DURATION)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    account._tick(asyncio.get_running_loop().time())
    return account


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("demand", [(40,), (40, 40, 40), (80, 10, 2)])
def test_gates_share_one_quota_without_over_admission_or_starvation(
    seed: int, demand: tuple[int, ...]
) -> None:
    account = run_virtual(_simulate(seed, demand))
    total = sum(account.starts)
    assert account.most_open <= QUOTA  # the server's own bound, for the record
    # no over-admission: after the first minute (each replica finds the quota once, with
    # the starts it has on the wire then) at most 2 % of starts are sent only to be refused
    ramp = sum(1 for t in account.rejected_at if t < 60.0)
    assert ramp <= 8 * len(demand), ramp
    late = len(account.rejected_at) - ramp
    assert late <= 0.02 * total, (late, total)
    # the quota is used: on average 90 % of it is open (finish events arrive 0.2-2 s
    # after the loop ends: ~8 % of the slots are free but not yet known to be)
    assert account.open_on_average(60.0, DURATION) >= 0.88 * QUOTA
    # no starvation: every replica with a backlog gets a fair part of the starts
    for starts in account.starts:
        assert starts >= 0.6 * total / len(demand), account.starts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_raised_quota_is_found_by_the_probes(seed: int) -> None:
    account = run_virtual(_simulate(seed, (40, 40, 40), raise_to=(300.0, 90)))
    assert account.open_on_average(60.0, 300.0) >= 0.88 * QUOTA
    # one loop per successful probe, every ~15 s on each replica: ~+12 a minute
    assert account.open_on_average(540.0, DURATION) >= 0.8 * 90
    assert sum(1 for t in account.rejected_at if t > 60.0) <= 0.02 * sum(account.starts)
