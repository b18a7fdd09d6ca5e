"""Adaptive send rate: pure arithmetic, no asyncio, no wall clock.

:class:`AdaptiveRate` turns a stream of "success at t" / "throttled at t" observations into
a send rate (calls per second). It promises:

- **Growth only while used.** The rate grows only on successes, and never beyond
  ``params.headroom`` times the rate at which calls are actually answered, so an idle or
  lightly loaded worker does not drift up to ``max_rate`` and then fire a burst.
- **Slow start.** Until the first throttle the rate grows exponentially
  (``slow_start_growth`` e-folds per second, and at most ``headroom`` x the answered rate).
- **A slow start ends at what was proven, not at the overshoot.** A2I's buckets start
  full, and a full bucket of B hides the quota R until it drains: exponential growth is
  then at 4-8 R when the first throttle comes. That event cuts to ``beta`` x the rate the
  successes of the last seconds prove (``successes(W) / (W + start_burst)`` for the best
  window W: no bucket of at most ``start_burst`` x R admits more), which is at most R, and
  the curve tops out at twice that proof instead of at the overshoot. The next event,
  whose admitted-rate measurement then starts from an empty bucket, sets R and cuts no
  lower than the proof. (With fewer than 30 recent successes nothing was hidden: a plain
  ``beta`` cut.)
- **One cut per congestion event.** A throttle starts a congestion event and cuts the
  rate multiplicatively (``beta``, jittered); further throttles within ``dedup_window``
  seconds belong to the same event (they were already in flight) and change nothing.
- **Cuts to what the server accepts.** If throttles continue after a cut, the next cut is
  taken from the success rate measured since the previous cut (what the server really
  admitted), not from the rate we were sending at -- so a step down converges in two
  events instead of ``log(beta)`` many.
- **CUBIC recovery with a confirmed plateau.** After a cut the rate follows a scale-free
  CUBIC curve: concave back up to the rate of the last event ``w_max`` within ``K``
  seconds, a plateau there, then a convex probe beyond it. The plateau is ``hold_step``
  seconds longer for every consecutive event whose admitted-rate measurement (at least 30
  successes) agrees within ``agree`` with the previous one (up to ``hold_max``), and zero
  after any event that disagrees (a changed quota): a steady quota is probed -- and
  throttled -- rarely, a changed one is followed at full speed. Two agreeing measurements
  are pooled into ``w_max``.
- **Raises are proven, then chased.** Between two throttles the server admits at most its
  quota, so once ``w_max`` is confirmed and the successes since the last event exceed
  ``w_max`` x elapsed by ``raise_margin`` (plus 3 calls), the quota has been raised: the
  rate then grows linearly (by ``raise_slope`` x its value at the proof, per second) until
  the next throttle, instead of finishing the cubic probe -- the raised quota's full bucket
  hides it, and a gentle approach keeps the overshoot small when that bucket drains. That
  throttle ends the chase like the end of a slow start (above).
- **Bounded and total.** ``min_rate <= rate <= max_rate`` always, whatever the inputs: any
  gap between two observations (0 s to days), any order of successes and throttles, even a
  clock that stands still, jumps back or reads NaN (such a reading counts as no time
  passing). No observation raises, and nothing computed is NaN or infinite.
- **Idle time is not use.** A gap between two answers longer than ``max(idle_after,
  4 / rate)`` seconds is an idle spell: it advances the growth clocks (slow start, CUBIC,
  chase) by that bound only, and it voids the admitted-rate measurement running since the
  last event (the server's bucket refilled meanwhile, so the count no longer measures R).
  After it the rate resumes at ``w_max`` at the start of the plateau (a probe resumed
  against a refilled bucket would race above R unseen), and the next event cuts from
  ``w_max``, not from the rate the refilled bucket let through.
- **Decorrelated.** ``beta`` and the CUBIC constant are jittered per event from the injected
  :class:`random.Random`, so replicas that are throttled at the same moment drift apart.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from a2i_worker.limiting.meter import RateMeter, SuccessWindow

__all__ = ["AdaptiveRate", "RateParams"]

#: seconds of w_max allowed as successes already in flight at a congestion event
_IN_FLIGHT_S = 0.05
#: successes between two events needed for their admitted rate to count towards a plateau
_MIN_MEASURED = 30
#: largest exponent slow start applies in one step (e^50 is far beyond any max_rate ratio)
_MAX_GROWTH = 50.0
#: slots of the success window (0.125 s each) the slow-start exit looks at
_RECENT_SLOTS = 32
#: CUBIC-clock seconds beyond which the curve is evaluated as if there (its cube stays finite)
_MAX_CUBIC_T = 1.0e4


@dataclass(frozen=True, slots=True)
class RateParams:
    """Tuning of one :class:`AdaptiveRate` (see docs/limiter.md for the reasoning).

    ``initial``, ``min_rate``, ``max_rate``: calls per second.
    ``beta``: multiplicative decrease on a congestion event (0 < beta < 1).
    ``c``: CUBIC constant, *relative* to ``w_max`` (rate = w_max * (1 + c (t - K)^3)).
    ``jitter``: relative spread applied to ``beta`` (downwards) and ``c`` per event.
    ``dedup_window``: seconds after a cut during which further throttles are the same event.
    ``slow_start_growth``: e-folds per second before the first throttle (2: x7.4 a second,
    0.9 R within 2 s of the start from 10/s for R up to ~200/s; faster growth only
    overshoots a full bucket further).
    ``headroom``: the rate never grows beyond headroom x the measured answered-call rate.
    ``burst_seconds``: client bucket size in seconds of the current rate (at least 1 token).
    ``rate_scale``: below this rate (calls/s) the CUBIC clock runs slower, proportionally,
    so a cycle holds enough calls that one throttle per event stays a small fraction.
    ``memory``: seconds over which the admitted rate between two events is trusted.
    ``floor``: one cut never goes below ``floor * beta`` times the current rate (or the
    previous ``w_max``, if lower), however low the admitted-rate measurement (few calls, an
    idle spell) came out.
    ``hold_step``, ``hold_max``: plateau at ``w_max`` (CUBIC-clock seconds) added per
    consecutive agreeing event, and its maximum.
    ``agree``: relative difference within which a new admitted-rate measurement confirms the
    previous ``w_max``.
    ``raise_margin``: successes since the last event beyond ``(1 + raise_margin) * w_max``
    per second (plus 3 calls) prove a raised quota.
    ``raise_slope``: after a proven raise the rate grows linearly by ``raise_slope`` times
    the rate at the proof, per second, until the next congestion event.
    ``idle_after``: seconds; a gap between two answers beyond ``max(idle_after, 4 / rate)``
    is an idle spell (see the module docstring).
    ``start_burst``: the largest server bucket assumed, in seconds of its rate (B <= this x
    R); it sets how much of the successes before the first throttle slow start's exit
    trusts as proof of R (see :class:`~a2i_worker.limiting.meter.SuccessWindow`).
    """

    initial: float = 5.0
    min_rate: float = 0.5
    max_rate: float = 1000.0
    beta: float = 0.85
    c: float = 0.05
    jitter: float = 0.1
    dedup_window: float = 0.15
    slow_start_growth: float = 2.0
    headroom: float = 2.0
    burst_seconds: float = 0.05
    rate_scale: float = 20.0
    memory: float = 120.0
    floor: float = 0.8
    hold_step: float = 2.5
    hold_max: float = 5.0
    agree: float = 0.08
    raise_margin: float = 0.01
    raise_slope: float = 1.0
    idle_after: float = 1.0
    start_burst: float = 2.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number")
        if not 0 < self.min_rate <= self.initial <= self.max_rate:
            raise ValueError("need 0 < min_rate <= initial <= max_rate")
        if not 0 < self.beta < 1:
            raise ValueError("beta must be in (0, 1)")
        if not self.c > 0:
            raise ValueError("c must be > 0")
        if not 0 < self.floor <= 1 or self.rate_scale <= 0 or self.memory < 0:
            raise ValueError("need 0 < floor <= 1, rate_scale > 0, memory >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.dedup_window < 0 or self.slow_start_growth <= 0 or self.headroom < 1:
            raise ValueError("need dedup_window >= 0, slow_start_growth > 0, headroom >= 1")
        if self.burst_seconds <= 0:
            raise ValueError("burst_seconds must be > 0")
        if not 0 <= self.hold_step <= self.hold_max or self.agree < 0 or self.raise_margin < 0:
            raise ValueError("need 0 <= hold_step <= hold_max, agree >= 0, raise_margin >= 0")
        if not self.raise_slope > 0 or not self.idle_after > 0 or self.start_burst < 0:
            raise ValueError("need raise_slope > 0, idle_after > 0, start_burst >= 0")


class AdaptiveRate:
    """The rate of one operation class; see the module docstring for the promises."""

    def __init__(self, params: RateParams, rng: random.Random | None = None) -> None:
        self.params = params
        self._rng = rng if rng is not None else random.Random()
        self._rate = params.initial
        self._w_max: float | None = None  # None: slow start (no congestion seen yet)
        self._t_eff = 0.0  # CUBIC time since the last cut (see rate_scale)
        self._k = 0.0
        self._c = params.c
        self._hold = 0.0  # plateau at w_max, CUBIC-clock seconds
        # after a proven raise: (active clock then, rate then, calls/s per second) until the
        # next event
        self._chase: tuple[float, float, float] | None = None
        self._streak = 0  # consecutive events whose measurements agreed
        # the last admitted-rate measurement: (successes, seconds) between two events
        self._measured: tuple[int, float] | None = None
        self._last_update: float | None = None
        self._active = 0.0  # seconds of use so far: the clock of slow start and the chase
        self._idle_since_event = False
        self._last_event: float | None = None
        # start of the admitted-rate measurement (the last event, when the server's bucket
        # was empty); None when no trustworthy measurement runs (slow start after a raise)
        self._measure_from: float | None = None
        self._successes_since_event = 0
        self._answered = RateMeter()
        self._recent = SuccessWindow()
        # after the cut that ended slow start: the rate the successes before it proved,
        # the floor of the next cut (instead of the heuristic ``floor``)
        self._proven: float | None = None
        self.throttles = 0
        self.events = 0
        self.successes = 0
        self.raises = 0

    @property
    def rate(self) -> float:
        """Current target send rate, calls per second."""
        return self._rate

    @property
    def w_max(self) -> float | None:
        """Rate at the last congestion event (``None`` while in slow start)."""
        return self._w_max

    @property
    def in_slow_start(self) -> bool:
        """No congestion seen yet, or a raised quota proven since the last event."""
        return self._w_max is None

    @property
    def hold(self) -> float:
        """Current plateau length at ``w_max`` (CUBIC-clock seconds)."""
        return self._hold

    def _proves_raise(self, now: float) -> bool:
        """More successes since the last event than a quota of ``w_max`` could admit."""
        if self._w_max is None or self._measure_from is None or self._streak == 0:
            return False  # w_max is not a confirmed measurement: the probe finds raises
        if self._idle_since_event:
            return False  # the server's bucket refilled while we were idle
        if self._t_eff < self._k + self._hold:
            return False  # not probing yet: we never sent above w_max
        p = self.params
        elapsed = now - self._measure_from
        # calls answered just after the event were in flight at it (admitted before it)
        allowed = self._w_max * (elapsed * (1.0 + p.raise_margin) + _IN_FLIGHT_S) + 3.0
        return self._successes_since_event > allowed

    def _clamp(self, rate: float) -> float:
        if not math.isfinite(rate):  # cannot happen; if it ever did, never let it out
            return self._rate if math.isfinite(self._rate) else self.params.initial
        return min(self.params.max_rate, max(self.params.min_rate, rate))

    def _observe(self, now: float) -> tuple[float, float]:
        """``(now, active)``: the reading made monotonic and finite, and the seconds of use
        since the previous observation (an idle spell counts as its bound)."""
        last = self._last_update
        if last is None:
            now = now if math.isfinite(now) else 0.0
            self._last_update = now
            return now, 0.0
        if not (math.isfinite(now) and now >= last):
            now = last  # a clock that jumps back or reads NaN: no time passed
        gap = now - last
        bound = max(self.params.idle_after, 4.0 / self._rate)
        if gap > bound:
            self._idle_since_event = True
            gap = bound
            if self._w_max is not None and self._chase is None:
                # the server's bucket refilled: a probe resumed now would race above R
                # while the stash hides it. Resume at w_max, at the start of the plateau.
                self._t_eff = min(self._t_eff, self._k)
                self._rate = self._clamp(min(self._rate, self._w_max))
        self._last_update = now
        self._active += gap
        return now, gap

    def on_success(self, now: float) -> float:
        """Record an accepted call answered at ``now``; returns the new rate."""
        p = self.params
        now, gap = self._observe(now)
        self.successes += 1
        self._successes_since_event += 1
        self._recent.add(now)
        # the smoothed meter lags by a bucket or two; the last half second does not
        recent, span = self._recent.count(now, 4)
        answered = max(self._answered.record(now), recent / span)
        if self._proves_raise(now):
            # the server admitted more than w_max allows: the quota went up; chase it
            # (the measurement since the last event stays valid: the bucket was empty then)
            self.raises += 1
            self._chase = (self._active, self._rate, p.raise_slope * self._rate)
            self._w_max = None
            self._streak = 0
            self._hold = 0.0
        if self._chase is not None:
            # linear, not exponential: the raised quota's bucket is full and hides the new
            # quota until it drains; the slower the approach, the smaller the overshoot then
            since, rate0, slope = self._chase
            target = rate0 + slope * (self._active - since)
        elif self._w_max is None:
            target = self._rate * math.exp(min(_MAX_GROWTH, p.slow_start_growth * gap))
        else:
            # the CUBIC clock runs slower below rate_scale, in proportion to the rate
            self._t_eff += gap * min(1.0, self._rate / p.rate_scale)
            # concave up to w_max, the plateau (hold), then the convex probe
            t = min(self._t_eff, _MAX_CUBIC_T) - self._k
            t = min(t, 0.0) if t < self._hold else t - self._hold
            target = self._w_max * (1.0 + self._c * t**3)
        if target > self._rate:
            # grow only while the rate is being used (answered calls keep up with it)
            ceiling = max(self._rate, p.headroom * answered) if answered > 0 else self._rate
            target = min(target, ceiling)
        # during concave recovery target can be below the current rate only right after a
        # cut's jittered beta; never let success lower the rate
        self._rate = self._clamp(max(self._rate, target))
        return self._rate

    def on_throttle(self, now: float) -> float:
        """Record a throttled call answered at ``now``; returns the new rate.

        Throttles within ``dedup_window`` of the last cut are the same congestion event and
        leave the rate alone.
        """
        p = self.params
        now, _ = self._observe(now)
        self.throttles += 1
        self._answered.record(now)
        last = self._last_event
        if last is not None and now - last < p.dedup_window:
            return self._rate
        base = self._rate
        start = self._measure_from
        calls = self._successes_since_event
        span = now - start if start is not None else 0.0
        if start is not None and 0 < span <= p.memory and not self._idle_since_event:
            # Between two congestion events the server's bucket went from empty to empty,
            # so what it admitted in between is its sustained rate: that, not the rate we
            # happened to be sending at, is where the next plateau belongs.
            admitted = calls / span
            previous = self._measured
            if calls < _MIN_MEASURED:
                self._streak = 0  # too few calls to confirm (or refute) anything
                self._measured = None
            elif (
                previous is not None and abs(admitted / (previous[0] / previous[1]) - 1) <= p.agree
            ):
                # the same quota measured again: probe it less often, and trust the two
                # windows together (twice the calls, half the noise)
                self._streak += 1
                admitted = (calls + previous[0]) / (span + previous[1])
                self._measured = (calls, span)
            else:
                self._streak = 0
                self._measured = (calls, span)
            # a noisy measurement (few calls, an idle spell) must not collapse the rate; the
            # floor is taken from w_max, not from a probe's overshoot (the probe can end
            # well above the quota, and a floor from there would hold the plateau above it)
            ref = base if self._w_max is None else min(base, self._w_max)
            floor = p.floor * ref if self._proven is None else self._proven
            base = min(base, max(admitted, floor))
        else:
            self._streak = 0
            self._measured = None
            if self._idle_since_event and self._w_max is not None:
                # the refilled bucket hid R again: the rate now says nothing, w_max does
                base = min(base, self._w_max)
        beta = p.beta * (1.0 - p.jitter * self._rng.random())
        self._c = p.c * (1.0 + p.jitter * (2.0 * self._rng.random() - 1.0))
        target = base * beta
        self._proven = None
        if self._w_max is None:
            # The end of slow start. The server's bucket was full when we began and hid
            # the quota, so the rate now is several times R (a full bucket of B = R lets
            # exponential growth reach 4-6 R): a cut by beta would keep sending far above R
            # until a second event, a burst of throttles. Cut instead to what the recent
            # successes prove R is at least, and climb back from there (concave, fast at
            # first); the next event measures R from this one and cuts no lower than that.
            recent, _ = self._recent.count(now, _RECENT_SLOTS)
            if recent >= _MIN_MEASURED:  # fewer: no full bucket hid anything; cut by beta
                self._proven = proven = self._recent.lower_bound(now, p.start_burst)
                target = min(target, max(proven * beta, p.min_rate))
                # R lies between what was proven and (most likely) twice that: the curve
                # tops out there instead of at the overshoot, or its first, steepest part
                # would race past R again inside the dedup window
                base = min(base, max(2.0 * proven, target))
        self._hold = min(p.hold_max, p.hold_step * self._streak)
        self.events += 1
        self._chase = None
        self._w_max = base = max(base, p.min_rate)
        self._rate = self._clamp(target)
        # the concave curve starts at the new rate: w_max (1 - c K^3) = rate
        self._k = (max(0.0, 1.0 - self._rate / base) / self._c) ** (1.0 / 3.0)
        self._t_eff = 0.0
        self._last_event = now
        self._measure_from = now
        self._successes_since_event = 0
        self._idle_since_event = False
        return self._rate
