"""AdaptiveRate arithmetic, driven by explicit time: a discrete-event simulation of an
A2I-like token-bucket server (rate R, burst R, starts full) with the limiter as client."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from a2i_worker.limiting import AdaptiveRate, RateMeter, RateParams


class ServerBucket:
    """The emulator's token bucket: burst + rate*t calls in any t seconds; starts full."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def configure(self, now: float, rate: float) -> None:
        self._refill(now)
        self.rate = self.burst = rate
        self.tokens = min(self.tokens, self.burst)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class SimResult:
    accepted: list[int]  # per simulated second
    throttled: list[int]
    rates: list[tuple[float, float]]  # (t, rate) at each send

    def goodput(self, lo: int, hi: int) -> float:
        return sum(self.accepted[lo:hi]) / (hi - lo)

    def throttled_fraction(self, lo: int, hi: int) -> float:
        a, t = sum(self.accepted[lo:hi]), sum(self.throttled[lo:hi])
        return t / (a + t)


def simulate(
    schedule: list[tuple[float, float]],
    duration: float,
    *,
    latency: float = 0.02,
    seed: int = 1,
    params: RateParams | None = None,
) -> SimResult:
    """Backlogged client (always has a call to make) sending at ``AdaptiveRate.rate``;
    each call reaches the server after ~latency/2 and is answered after ~latency."""
    rng = random.Random(seed)
    ar = AdaptiveRate(params or RateParams(), random.Random(seed + 1000))
    server = ServerBucket(schedule[0][1], schedule[0][1])
    steps = list(schedule[1:])
    n = int(duration) + 1
    res = SimResult([0] * n, [0] * n, [])
    answers: list[tuple[float, bool]] = []
    next_send = 0.0
    while True:
        if answers and answers[0][0] <= next_send:
            t, ok = heapq.heappop(answers)
            if ok:
                ar.on_success(t)
            else:
                ar.on_throttle(t)
            continue
        t = next_send
        if t >= duration:
            return res
        while steps and steps[0][0] <= t:
            at, rate = steps.pop(0)
            server.configure(at, rate)
        ok = server.take(t + latency / 2 * rng.uniform(0.5, 1.5))
        (res.accepted if ok else res.throttled)[int(t)] += 1
        heapq.heappush(answers, (t + latency * rng.uniform(0.5, 1.5), ok))
        res.rates.append((t, ar.rate))
        next_send = t + 1.0 / ar.rate


@pytest.mark.parametrize("capacity", [5, 50, 200])
@pytest.mark.parametrize("latency", [0.005, 0.05])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_converges_to_fixed_capacity_with_few_throttles(
    capacity: int, latency: float, seed: int
) -> None:
    res = simulate([(0.0, capacity)], 120.0, latency=latency, seed=seed)
    assert res.goodput(0, 120) >= 0.95 * capacity
    assert res.throttled_fraction(0, 120) <= 0.05
    # and it is not just the average: the last minute is steady too
    assert res.goodput(60, 120) >= 0.95 * capacity
    assert res.throttled_fraction(60, 120) <= 0.05


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_within_10s_after_steps(seed: int) -> None:
    schedule = [(0.0, 100.0), (20.0, 50.0), (40.0, 200.0)]
    res = simulate(schedule, 60.0, seed=seed)
    for step_at, capacity in schedule[1:]:
        s = int(step_at)
        recovered = [t for t in range(s, s + 10) if res.accepted[t] >= 0.9 * capacity]
        assert recovered, f"no second with >= 0.9 R within 10 s of the step at {step_at}"
    # after the step down, the rate comes down to the new capacity (not left far above)
    late = [r for t, r in res.rates if 30.0 <= t < 40.0]
    assert max(late) < 1.5 * 50
    assert res.throttled_fraction(0, 60) <= 0.05


def test_throttles_within_the_dedup_window_are_one_event() -> None:
    ar = AdaptiveRate(RateParams(initial=100.0, jitter=0.0, dedup_window=0.2), random.Random(0))
    first = ar.on_throttle(10.0)
    assert first == pytest.approx(85.0)
    for i in range(20):
        assert ar.on_throttle(10.0 + 0.009 * i) == first
    assert ar.events == 1
    assert ar.throttles == 21


def test_persistent_throttling_cuts_to_what_the_server_admitted() -> None:
    ar = AdaptiveRate(RateParams(initial=100.0, jitter=0.0, dedup_window=0.1), random.Random(0))
    ar.on_throttle(0.0)  # 100 -> 85
    for i in range(12):  # the server admits 40/s after the cut
        ar.on_success(0.0 + (i + 1) * 0.025)
    rate = ar.on_throttle(0.3)
    # cut from the admitted rate (40/s), floored at 0.8 x the current rate per step
    assert rate == pytest.approx(0.85 * max(40.0, 0.8 * 85.0))
    assert ar.w_max == pytest.approx(68.0)


def _feed(ar: AdaptiveRate, t0: float, t1: float, rate: float) -> float:
    """Successes answered evenly at ``rate`` per second from ``t0`` to ``t1``."""
    n = round((t1 - t0) * rate)
    for i in range(1, n + 1):
        ar.on_success(t0 + i / rate)
    return t1


def _steady(params: RateParams | None = None) -> AdaptiveRate:
    return AdaptiveRate(params or RateParams(initial=60.0, jitter=0.0), random.Random(0))


def test_plateau_lengthens_while_measurements_agree_and_vanishes_on_a_change() -> None:
    ar = _steady()
    ar.on_throttle(0.0)  # first event: nothing measured yet
    t, holds = 0.0, []
    for _ in range(4):  # the server admits 50/s between events, four times running
        t = _feed(ar, t, t + 8.0, 50.0)
        ar.on_throttle(t)
        holds.append(ar.hold)
        assert ar.w_max == pytest.approx(50.0, rel=0.01)
    # the first measurement has nothing to agree with; then +hold_step each, up to hold_max
    assert holds == [0.0, 2.5, 5.0, 5.0]
    t = _feed(ar, t, t + 8.0, 35.0)  # quota cut to 35/s: a disagreeing measurement
    ar.on_throttle(t)
    assert ar.hold == 0.0
    assert ar.w_max == pytest.approx(40.0)  # floored at 0.8 x w_max (50) for one event
    t = _feed(ar, t, t + 1.0, 5.0)  # an idle spell: too few calls to confirm anything
    ar.on_throttle(t)
    assert ar.hold == 0.0


def test_rate_stays_at_w_max_through_the_plateau_then_probes() -> None:
    ar = _steady()
    ar.on_throttle(0.0)
    t = 0.0
    for _ in range(3):
        t = _feed(ar, t, t + 8.0, 50.0)
        ar.on_throttle(t)
    assert ar.hold == 5.0
    w, k = ar.w_max, ((1 - 0.85) / 0.05) ** (1 / 3)
    assert w is not None
    # answered at w_max: the server's bucket neither drains nor proves a raise
    _feed(ar, t, t + k + 4.9, w)
    assert ar.rate == pytest.approx(w, rel=0.001)
    _feed(ar, t + k + 4.9, t + k + 5.0 + 1.5, w)
    assert ar.rate == pytest.approx(w * (1 + 0.05 * 1.5**3), rel=0.02)
    assert ar.raises == 0


def test_more_successes_than_w_max_allows_prove_a_raise_then_linear_chase() -> None:
    ar = _steady()
    ar.on_throttle(0.0)
    t = 0.0
    for _ in range(2):
        t = _feed(ar, t, t + 8.0, 50.0)
        ar.on_throttle(t)
    assert ar.hold == 2.5
    # concave recovery and plateau: never above w_max, so nothing is proven
    t = plateau_end = _feed(ar, t, t + 4.0, 50.0)
    assert ar.raises == 0
    # the server keeps admitting everything the probe sends: a raised quota
    while ar.raises == 0:
        t += 1.0 / ar.rate
        ar.on_success(t)
        assert t < plateau_end + 3.0, "no raise proven within 3 s of probing"
    assert ar.in_slow_start
    proven_at, rate0 = t, ar.rate
    t = _feed(ar, t, t + 1.0, ar.rate * 1.5)
    # linear growth: + raise_slope x the rate at the proof per second (not exponential)
    assert ar.rate == pytest.approx(rate0 * 2.0, rel=0.05)
    assert t - proven_at == pytest.approx(1.0)
    ar.on_throttle(t)  # the chase ends at the next event
    assert not ar.in_slow_start


def test_no_raise_proven_while_w_max_is_unconfirmed() -> None:
    ar = _steady()
    ar.on_throttle(0.0)
    t = _feed(ar, 0.0, 8.0, 50.0)
    ar.on_throttle(t)  # measured once, not confirmed
    _feed(ar, t, t + 10.0, 80.0)
    assert ar.raises == 0
    assert not ar.in_slow_start


def test_floor_of_a_cut_comes_from_w_max_not_from_the_probe_overshoot() -> None:
    ar = _steady()
    ar.on_throttle(0.0)
    t = _feed(ar, 0.0, 8.0, 50.0)
    ar.on_throttle(t)
    ar._rate = 90.0  # a probe that ran far above the quota before the bucket drained
    t = _feed(ar, t, t + 8.0, 50.0)
    ar.on_throttle(t)
    # admitted 50/s; a floor of 0.8 x 90 = 72 would have kept the plateau 44 % too high
    assert ar.w_max == pytest.approx(50.0, rel=0.01)


def test_steady_quota_is_probed_rarely() -> None:
    """Once the plateau is confirmed a congestion event costs ~1 throttle per ~8 s."""
    for seed in (1, 2, 3):
        res = simulate([(0.0, 50.0)], 120.0, latency=0.05, seed=seed)
        # without the plateau (hold_max=0): 0.6-0.9 %
        assert res.throttled_fraction(20, 120) <= 0.004
        assert res.goodput(20, 120) >= 0.99 * 50


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_raise_after_a_long_steady_spell_found_within_10s(seed: int) -> None:
    """The longest plateau is in force when the quota is raised: still >= 0.9 R in 10 s."""
    res = simulate([(0.0, 50.0), (60.0, 200.0)], 75.0, latency=0.02, seed=seed)
    recovered = [t for t in range(60, 70) if res.accepted[t] >= 0.9 * 200]
    assert recovered, res.accepted[60:75]
    assert res.throttled_fraction(60, 75) <= 0.05


def test_rate_stays_within_bounds() -> None:
    params = RateParams(initial=2.0, min_rate=1.0, max_rate=10.0)
    ar = AdaptiveRate(params, random.Random(3))
    t = 0.0
    for _ in range(50):  # throttle storm
        t += 1.0
        assert params.min_rate <= ar.on_throttle(t) <= params.max_rate
    for _ in range(5000):  # long success run, calls answered at the current rate
        t += 1.0 / ar.rate
        assert params.min_rate <= ar.on_success(t) <= params.max_rate
    assert ar.rate == params.max_rate


def test_does_not_grow_while_barely_used() -> None:
    """One success every 2 s at a 20/s rate: the rate must not run away."""
    ar = AdaptiveRate(RateParams(initial=20.0), random.Random(0))
    for i in range(60):
        ar.on_success(2.0 * i)
    assert ar.rate <= 20.0


def test_slow_start_grows_exponentially_until_first_throttle() -> None:
    ar = AdaptiveRate(RateParams(initial=5.0, jitter=0.0), random.Random(0))
    t = 0.0
    while t < 2.0:
        t += 1.0 / ar.rate
        ar.on_success(t)
    assert ar.in_slow_start
    assert ar.rate > 20.0
    ar.on_throttle(t)
    assert not ar.in_slow_start


def test_jitter_decorrelates_two_replicas() -> None:
    """Two replicas throttled at exactly the same moments follow different curves."""
    a = AdaptiveRate(RateParams(initial=50.0), random.Random(1))
    b = AdaptiveRate(RateParams(initial=50.0), random.Random(2))
    diffs = []
    t = 0.0
    for cycle in range(5):
        a.on_throttle(t)
        b.on_throttle(t)
        for _ in range(300):
            t += 0.01
            diffs.append(abs(a.on_success(t) - b.on_success(t)))
        t += 0.5 + cycle
    assert max(diffs) > 1.0
    same = AdaptiveRate(RateParams(initial=50.0, jitter=0.0), random.Random(1))
    other = AdaptiveRate(RateParams(initial=50.0, jitter=0.0), random.Random(2))
    assert same.on_throttle(0.0) == other.on_throttle(0.0)


def test_rate_meter_counts_events_per_second() -> None:
    meter = RateMeter(bucket=0.5, smoothing=1.0)
    for i in range(100):
        meter.record(i * 0.05)  # 20/s
    assert meter.rate == pytest.approx(20.0, rel=0.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.1, "min_rate": 1.0},
        {"beta": 1.0},
        {"c": 0.0},
        {"jitter": 1.0},
        {"headroom": 0.5},
        {"floor": 0.0},
        {"hold_step": 3.0, "hold_max": 2.0},
        {"raise_slope": 0.0},
    ],
)
def test_rejects_nonsense_params(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        RateParams(**kwargs)
