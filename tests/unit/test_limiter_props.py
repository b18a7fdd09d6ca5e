"""The rate arithmetic is total: properties over arbitrary clock gaps and event orders.

Issue 15: after ~4 minutes without a start, slow start computed ``exp(3 * gap)`` and raised
OverflowError inside the start handler, after A2I had accepted the loop. Whatever the gaps
(0 s to days) and whatever order successes and throttles come in, an observation must
return a finite rate within ``[min_rate, max_rate]`` and never raise.
"""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from a2i_worker.limiting import AdaptiveLimiter, AdaptiveRate, RateMeter, RateParams

DAY = 86_400.0

#: gaps between two observations: simultaneous, sub-millisecond, call-like, idle, days
gaps = st.one_of(
    st.just(0.0),
    st.floats(0.0, 1e-3),
    st.floats(0.0, 2.0),
    st.floats(0.0, 600.0),
    st.floats(0.0, 3 * DAY),
    st.sampled_from([236.0, 237.0, 7200.0, 2 * DAY]),
)
events = st.lists(st.tuples(gaps, st.booleans()), min_size=1, max_size=300)


@st.composite
def params(draw: st.DrawFn) -> RateParams:
    lo = draw(st.floats(0.01, 50.0))
    hi = draw(st.floats(lo, 10_000.0))
    initial = draw(st.floats(lo, hi))
    return RateParams(
        initial=initial,
        min_rate=lo,
        max_rate=hi,
        beta=draw(st.floats(0.05, 0.95)),
        c=draw(st.floats(0.001, 2.0)),
        jitter=draw(st.floats(0.0, 0.5)),
        dedup_window=draw(st.floats(0.0, 1.0)),
        slow_start_growth=draw(st.floats(0.1, 20.0)),
        headroom=draw(st.floats(1.0, 10.0)),
        rate_scale=draw(st.floats(0.1, 1000.0)),
        memory=draw(st.floats(0.0, 1000.0)),
        floor=draw(st.floats(0.01, 1.0)),
    )


def _check(ar: AdaptiveRate, rate: float) -> None:
    p = ar.params
    assert math.isfinite(rate)
    assert p.min_rate <= rate <= p.max_rate
    assert rate == ar.rate
    assert ar.w_max is None or math.isfinite(ar.w_max)
    assert math.isfinite(ar.hold)


@settings(max_examples=300, deadline=None)
@given(p=params(), seq=events, seed=st.integers(0, 2**32 - 1), t0=st.floats(-1e6, 1e9))
def test_any_gaps_any_order_stay_finite_and_in_bounds(
    p: RateParams, seq: list[tuple[float, bool]], seed: int, t0: float
) -> None:
    ar = AdaptiveRate(p, random.Random(seed))
    t = t0
    for gap, ok in seq:
        t += gap
        _check(ar, ar.on_success(t) if ok else ar.on_throttle(t))


@settings(max_examples=200, deadline=None)
@given(
    seq=st.lists(
        st.tuples(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.sampled_from([math.nan, math.inf, -math.inf, -1e300, 1e300]),
            ),
            st.booleans(),
        ),
        min_size=1,
        max_size=100,
    )
)
def test_broken_clock_readings_never_raise(seq: list[tuple[float, bool]]) -> None:
    """NaN, infinities and a clock that jumps back: no time passed, nothing raises."""
    ar = AdaptiveRate(RateParams(), random.Random(0))
    meter = RateMeter()
    for now, ok in seq:
        _check(ar, ar.on_success(now) if ok else ar.on_throttle(now))
        assert math.isfinite(meter.record(now))


@settings(max_examples=100, deadline=None)
@given(burst=st.integers(1, 400), idle=gaps, after=st.integers(1, 200))
def test_slow_start_after_any_idle_spell(burst: int, idle: float, after: int) -> None:
    """The reported crash: successes, an idle spell of any length, successes again."""
    ar = AdaptiveRate(RateParams(initial=10.0), random.Random(1))
    t = 0.0
    for _ in range(burst):
        t += 1.0 / ar.rate
        ar.on_success(t)
    t += idle
    for _ in range(after):
        _check(ar, ar.on_success(t))
        t += 1.0 / ar.rate
    assert ar.in_slow_start


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


@settings(max_examples=100, deadline=None)
@given(seq=st.lists(st.tuples(gaps, st.sampled_from(["start", "sweep"]), st.booleans())))
def test_limiter_buckets_always_get_a_valid_rate(seq: list[tuple[float, str, bool]]) -> None:
    clock = _Clock()
    lim = AdaptiveLimiter(start=RateParams(), sweep=RateParams(), clock=clock, rng=random.Random(2))
    for gap, cls, ok in seq:
        clock.t += gap
        (lim.on_success if ok else lim.on_throttle)(cls)
        rate = lim.rate(cls)
        assert math.isfinite(rate)
        assert 0.5 <= rate <= 1000.0
