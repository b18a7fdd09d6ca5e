"""Slow start against a full bucket, and idle spells: issue 15's first-second overshoot.

The simulation (bench/limsim.py) runs the real :class:`AdaptiveRate` behind the worker's
client bucket with 32 callers, side by side with botocore's own ``adaptive`` classes, on
simulated time against a token-bucket server that is full at the start.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from a2i_worker.limiting import AdaptiveRate, RateParams

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from limsim import Adaptive, Limiter, Run, simulate

SEEDS = (1, 2, 3)


def _limiter(seed: int) -> Limiter:
    return Limiter(RateParams(initial=10.0), seed)


def _first_good_second(run: Run, rate: float) -> int | None:
    """End of the first whole second with at least 0.9 ``rate`` accepted."""
    return next((s + 1 for s, n in enumerate(run.accepted) if n >= 0.9 * rate), None)


@pytest.mark.parametrize("rate", [50.0, 200.0])
@pytest.mark.parametrize("burst_s", [1.0, 2.0])
@pytest.mark.parametrize("seed", SEEDS)
def test_full_bucket_start_costs_few_throttles(rate: float, burst_s: float, seed: int) -> None:
    """Exponential growth reaches 4-8 R before a full bucket drains; the exit from slow
    start must cut to at most R at once, not by beta and then again."""
    run = simulate(_limiter(seed), [(0.0, rate, rate * burst_s)], 10.0, seed=seed)
    assert sum(run.throttled[:5]) <= 16, run.throttled[:5]
    assert sum(run.throttled[5:10]) <= 2
    assert (_first_good_second(run, rate) or 99) <= 2
    assert run.errors == []


@pytest.mark.parametrize("rate", [5.0, 50.0, 200.0])
def test_half_of_botocore_adaptive_throttles_and_more_goodput(rate: float) -> None:
    """Over whole 40 s runs (the start included), three seeds pooled."""
    ours = [simulate(_limiter(s), [(0.0, rate, rate)], 40.0, seed=s) for s in SEEDS]
    theirs = [simulate(Adaptive(s), [(0.0, rate, rate)], 40.0, seed=s) for s in SEEDS]

    def pooled(runs: list[Run]) -> tuple[float, float]:
        accepted = sum(sum(r.accepted[:40]) for r in runs)
        throttled = sum(sum(r.throttled[:40]) for r in runs)
        return accepted / (40.0 * rate * len(runs)), throttled / (accepted + throttled)

    goodput, fraction = pooled(ours)
    base_goodput, base_fraction = pooled(theirs)
    assert goodput >= 0.97
    assert goodput >= base_goodput
    assert fraction <= 0.5 * base_fraction, (fraction, base_fraction)


def test_exit_cut_is_at_most_what_a_full_bucket_could_hide() -> None:
    """Successes exactly as a full bucket of B = R admits them, then the first throttle:
    the new rate is below R, whatever the overshoot was."""
    quota = 100.0
    ar = AdaptiveRate(RateParams(initial=10.0, jitter=0.0), random.Random(0))
    t, admitted = 0.0, 0.0
    while True:
        t += 1.0 / ar.rate
        admitted_max = quota + quota * t  # burst + rate x t
        if admitted + 1 > admitted_max:
            break
        admitted += 1
        ar.on_success(t)
    overshoot = ar.rate
    assert overshoot > 3 * quota  # the full bucket hid the quota
    ar.on_throttle(t)
    assert ar.rate <= quota
    assert ar.rate >= 0.4 * quota  # and not needlessly deep
    assert ar.w_max is not None
    assert ar.w_max <= 2.5 * quota  # the curve tops out near R, not at the overshoot


def test_first_call_throttled_is_a_plain_cut() -> None:
    """Nothing was hidden (another client had drained the bucket): cut by beta only."""
    ar = AdaptiveRate(RateParams(initial=40.0, jitter=0.0), random.Random(0))
    for i in range(5):
        ar.on_success(0.02 * i)
    assert ar.on_throttle(0.1) == pytest.approx(0.85 * 40.0)


@pytest.mark.parametrize("gap", [300.0, 7200.0, 2 * 86_400.0])
def test_bursts_between_idle_spells(gap: float) -> None:
    """Demand in bursts of 300 requests with idle spells between them; the server's bucket
    refills (full) during each. No exception, few throttles, every burst served."""
    rate = 50.0
    arrivals = [(k * (gap + 20.0), 300) for k in range(4)]
    c = _limiter(1)
    run = simulate(c, [(0.0, rate, rate)], arrivals[-1][0] + 30.0, arrivals=arrivals, seed=1)
    assert run.errors == []
    assert len(run.finished_at) == 4 * 300
    assert sum(run.throttled) <= 40
    # each burst needs (300 - 50) / 50 = 5 s at best with a full bucket: served in < 8 s
    assert max(run.finished_at) < 8.0
