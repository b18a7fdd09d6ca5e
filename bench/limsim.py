"""Discrete-event simulation of StartHumanLoop clients against a token-bucket server.

Simulated time only: a run of minutes takes milliseconds and is exactly reproducible from
its seed. The parts:

- :class:`Server`: the emulator's / A2I's bucket per operation: ``burst + rate * t`` calls
  in any ``t`` seconds, **full at the start** (and after any idle spell); ``(t, rate,
  burst)`` steps change it like the control API does (tokens settled, then clamped).
- Contenders, each with ``callers`` concurrent callers (the benchmark's 32):

  - ``limiter``: this project's :class:`~a2i_worker.limiting.rate.AdaptiveRate` behind the
    same client bucket as :class:`~a2i_worker.limiting.adaptive.AdaptiveLimiter` (aiolimiter
    leaky bucket, ``burst = max(1, rate * burst_seconds)``), retrying a throttle at once
    (what ``A2IGateway.start`` does);
  - ``adaptive``: botocore's own ``retries={"mode": "adaptive"}`` pieces
    (``ClientRateLimiter``, ``CubicCalculator``, ``RateClocker``, ``TokenBucket``) on a
    simulated clock, with the ``standard`` retry policy around them (3 attempts, backoff
    ``rand * 2**(attempt-1)``, the 500-unit retry quota); a throttle that escapes botocore
    is retried at once, as bench/limiter_bench.py does.

- Demand: a backlog (every caller always has a request) or ``arrivals`` -- batches of
  requests at given times, the callers idle while none are queued.

Every call reaches the server after ``latency/2`` and is answered after ``latency``, both
jittered uniformly by +-50 %. Counts are per simulated second, by server time.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from botocore.exceptions import CapacityNotAvailableError
from botocore.retries import adaptive, bucket, throttling
from botocore.retries.bucket import Clock

from a2i_worker.limiting.rate import AdaptiveRate, RateParams

__all__ = [
    "Adaptive",
    "Contender",
    "Limiter",
    "Run",
    "Server",
    "simulate",
]


class Server:
    """Token bucket of ``rate`` per second and ``burst`` tokens, full at t=0."""

    def __init__(self, schedule: Sequence[tuple[float, float, float]]) -> None:
        _, self.rate, self.burst = schedule[0]
        self.tokens = self.burst
        self.last = 0.0
        self._steps = deque(schedule[1:])

    def _refill(self, now: float) -> None:
        while self._steps and self._steps[0][0] <= now:
            at, rate, burst = self._steps.popleft()
            self._settle(at)
            self.rate, self.burst = rate, burst
            self.tokens = min(self.tokens, self.burst)
        self._settle(now)

    def _settle(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = max(self.last, now)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def level(self, now: float) -> float:
        self._refill(now)
        return self.tokens


class Contender(Protocol):
    """A client's pacing and reaction to answers; the simulation owns the callers."""

    name: str

    def wait(self, now: float) -> float:
        """0.0 and a token taken if a call may go at ``now``, else seconds to wait."""
        ...

    def answered(self, now: float, ok: bool) -> None: ...

    def retry_after(self, attempt: int) -> float | None:
        """After the ``attempt``-th throttle of one request: seconds before the next try
        through the client's own pacing (``None``: the caller retries at once)."""
        ...

    def rate(self) -> float | None: ...


class _LeakyBucket:
    """aiolimiter's AsyncLimiter arithmetic (``max_rate`` = burst, drains at ``rate``)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.level, self.last = rate, max(1.0, burst), 0.0, 0.0

    def _leak(self, now: float) -> None:
        self.level = max(0.0, self.level - max(0.0, now - self.last) * self.rate)
        self.last = max(self.last, now)

    def set(self, now: float, rate: float, burst: float) -> None:
        self._leak(now)  # settle at the old rate (TunableLimiter.set_rate)
        self.rate, self.burst = rate, max(1.0, burst)
        self.level = min(self.level, self.burst)

    def wait(self, now: float) -> float:
        self._leak(now)
        if self.level + 1.0 <= self.burst:
            self.level += 1.0
            return 0.0
        return max(1e-9, (self.level + 1.0 - self.burst) / self.rate)


class Limiter:
    """This project's start class: AdaptiveRate + the re-tunable client bucket."""

    name = "limiter"

    def __init__(self, params: RateParams, seed: int) -> None:
        self.ar = AdaptiveRate(params, random.Random(seed))
        self._bucket = _LeakyBucket(params.initial, self._burst())
        self.errors: list[str] = []

    def _burst(self) -> float:
        return max(1.0, self.ar.rate * self.ar.params.burst_seconds)

    def wait(self, now: float) -> float:
        return self._bucket.wait(now)

    def answered(self, now: float, ok: bool) -> None:
        try:
            if ok:
                self.ar.on_success(now)
            else:
                self.ar.on_throttle(now)
        except Exception as exc:  # the worker's handler would crash here
            self.errors.append(f"{type(exc).__name__} at t={now:.1f}")
        if self.ar.rate != self._bucket.rate:
            self._bucket.set(now, self.ar.rate, self._burst())

    def retry_after(self, attempt: int) -> float | None:
        return None

    def rate(self) -> float | None:
        return self.ar.rate


class _SimClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0

    def current_time(self) -> float:
        return self.t

    def sleep(self, amount: float) -> None:  # pragma: no cover - never blocks here
        raise RuntimeError("the simulation never sleeps")


class Adaptive:
    """botocore ``adaptive`` retry mode, its own classes on a simulated clock."""

    name = "adaptive"

    def __init__(self, seed: int) -> None:
        self._clock = _SimClock()
        self._rng = random.Random(seed)
        self.bucket = bucket.TokenBucket(max_rate=1, clock=self._clock)
        self.limiter = adaptive.ClientRateLimiter(
            rate_adjustor=throttling.CubicCalculator(starting_max_rate=0, start_time=0.0),
            rate_clocker=adaptive.RateClocker(self._clock),
            token_bucket=self.bucket,
            throttling_detector=_Detector(),
            clock=self._clock,
        )
        self.quota = 500
        # ClientRateLimiter paces nothing until its first throttle (its own _enabled flag)
        self.enabled = False
        self.errors: list[str] = []

    def wait(self, now: float) -> float:
        self._clock.t = now
        if not self.enabled:
            return 0.0
        try:
            self.bucket.acquire(block=False)
        except CapacityNotAvailableError:
            # TokenBucket._sleep_amount(1), from its public state (refilled by acquire)
            return max(1e-9, (1.0 - float(self.bucket.available_capacity)) / self._fill())
        return 0.0

    def _fill(self) -> float:
        return float(self.bucket.max_rate)

    def answered(self, now: float, ok: bool) -> None:
        self._clock.t = now
        self.limiter.on_receiving_response(throttled=not ok)
        self.enabled = self.enabled or not ok
        if ok:
            self.quota = min(500, self.quota + 1)

    def retry_after(self, attempt: int) -> float | None:
        # standard retries: at most 3 attempts, each retry costs 5 of the 500-unit quota
        if attempt >= 3 or self.quota < 5:
            return None
        self.quota -= 5
        return self._rng.random() * min(2.0 ** (attempt - 1), 20.0)

    def rate(self) -> float | None:
        return self._fill() if self.enabled else None


class _Detector:
    def is_throttling_error(self, throttled: bool = False, **_: object) -> bool:
        return throttled


@dataclass
class Run:
    """Per-second counts (server time) and the client's target rate at each send."""

    accepted: list[int]
    throttled: list[int]
    rates: list[tuple[float, float]] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)  # per request, arrivals mode
    errors: list[str] = field(default_factory=list)

    def goodput(self, lo: int, hi: int) -> float:
        return sum(self.accepted[lo:hi]) / max(1, hi - lo)

    def throttled_fraction(self, lo: int = 0, hi: int | None = None) -> float:
        a, t = sum(self.accepted[lo:hi]), sum(self.throttled[lo:hi])
        return t / max(1, a + t)


def simulate(
    contender: Contender,
    schedule: Sequence[tuple[float, float, float]],
    duration: float,
    *,
    callers: int = 32,
    latency: float = 0.01,
    seed: int = 1,
    arrivals: Sequence[tuple[float, int]] | None = None,
) -> Run:
    """Run ``contender`` against :class:`Server` (``schedule``) for ``duration`` s.

    ``arrivals``: ``(t, n)`` batches of requests; ``None``: a backlog.
    """
    rng = random.Random(seed)
    server = Server(schedule)
    n = math.ceil(duration) + 1
    run = Run([0] * n, [0] * n)
    seq = itertools.count()
    events: list[tuple[float, int, str, int]] = []
    queue: deque[float] = deque()  # arrival times of requests not yet taken
    waiting: deque[int] = deque()  # callers waiting for the client's pacing
    attempt = [0] * callers
    arrived = [0.0] * callers
    wake_at: list[float] = [math.inf]

    def push(t: float, kind: str, who: int) -> None:
        heapq.heappush(events, (t, next(seq), kind, who))

    if arrivals is None:
        for c in range(callers):
            push(0.0, "ready", c)
    else:
        for t, count in arrivals:
            push(t, "arrive", count)
    idle: deque[int] = deque(range(callers)) if arrivals is not None else deque()

    def pump(now: float) -> None:
        while waiting:
            w = contender.wait(now)
            if w > 0.0:
                if now + w < wake_at[0]:
                    wake_at[0] = now + w
                    push(now + w, "wake", -1)
                return
            c = waiting.popleft()
            rate = contender.rate()
            if rate is not None:
                run.rates.append((now, rate))
            t_server = now + latency / 2 * rng.uniform(0.5, 1.5)
            ok = server.take(t_server)
            sec = int(t_server)
            if sec < n:
                (run.accepted if ok else run.throttled)[sec] += 1
            push(now + latency * rng.uniform(0.5, 1.5), "ok" if ok else "thr", c)

    def take_work(c: int, now: float) -> None:
        if arrivals is None:
            attempt[c] = 0
            waiting.append(c)
        elif queue:
            arrived[c] = queue.popleft()
            attempt[c] = 0
            waiting.append(c)
        else:
            idle.append(c)

    while events:
        now, _, kind, who = heapq.heappop(events)
        if now > duration:
            break
        if kind == "arrive":
            queue.extend([now] * who)
            while idle and queue:
                take_work(idle.popleft(), now)
        elif kind == "ready":
            take_work(who, now)
        elif kind == "wake":
            if now < wake_at[0]:
                continue  # superseded by an earlier wake
            wake_at[0] = math.inf
        elif kind == "ok":
            contender.answered(now, True)
            run.finished_at.append(now - arrived[who])
            take_work(who, now)
        elif kind == "thr":
            contender.answered(now, False)
            attempt[who] += 1
            delay = contender.retry_after(attempt[who])
            if delay is None:
                attempt[who] = 0  # the error escaped the client; the caller retries at once
                waiting.append(who)
            else:
                push(now + delay, "retry", who)
        elif kind == "retry":
            waiting.append(who)
        if kind != "arrive" or waiting:
            pump(now)
    run.errors = list(getattr(contender, "errors", []))
    return run
