"""The asyncio side of the adaptive rate: one re-tunable bucket per operation class.

Classes are independent: ``"start"`` (StartHumanLoop) and ``"sweep"`` (Describe / List /
Stop) each have their own :class:`~a2i_worker.limiting.rate.AdaptiveRate` and their own
bucket, so a throttled start never slows a sweep and a backlog of starts never takes a
sweep's tokens (A2I meters each operation separately). Neither class can starve the other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import structlog

from a2i_worker.limiting.bucket import TunableLimiter
from a2i_worker.limiting.clock import Clock, MonotonicClock
from a2i_worker.limiting.rate import AdaptiveRate, RateParams

__all__ = ["CLASSES", "AdaptiveLimiter", "ClassSnapshot", "LimiterSnapshot"]

CLASSES = ("start", "sweep")

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ClassSnapshot:
    """State of one operation class at one moment (for metrics and logs)."""

    rate: float
    w_max: float | None
    slow_start: bool
    successes: int
    throttles: int
    congestion_events: int


@dataclass(frozen=True, slots=True)
class LimiterSnapshot:
    start: ClassSnapshot
    sweep: ClassSnapshot


class _Class:
    __slots__ = ("bucket", "rate", "watchers")

    def __init__(self, params: RateParams, rng: random.Random) -> None:
        self.rate = AdaptiveRate(params, rng)
        self.bucket = TunableLimiter(params.initial, self._burst())
        self.watchers: list[Callable[[], None]] = []

    def _burst(self) -> float:
        return max(1.0, self.rate.rate * self.rate.params.burst_seconds)

    def apply(self) -> None:
        if self.rate.rate != self.bucket.rate:
            self.bucket.set_rate(self.rate.rate, self._burst())
            for watcher in self.watchers:
                watcher()

    def snapshot(self) -> ClassSnapshot:
        r = self.rate
        return ClassSnapshot(r.rate, r.w_max, r.in_slow_start, r.successes, r.throttles, r.events)


class AdaptiveLimiter:
    """Per-class adaptive rate limiting.

    Use::

        async with limiter.acquire("start"):
            ...call A2I...
        limiter.on_success("start")   # or limiter.on_throttle("start") on ThrottlingException

    ``acquire`` waits for a token of that class; report every answered call exactly once.
    Other errors (validation, 5xx) are reported to neither: they say nothing about rate.
    A structlog line is emitted per congestion event (rate decrease), never per call.
    """

    def __init__(
        self,
        *,
        start: RateParams,
        sweep: RateParams,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        rng = rng if rng is not None else random.Random()
        # each class gets its own stream so the two never move in lockstep
        self._classes = {
            "start": _Class(start, random.Random(rng.random())),
            "sweep": _Class(sweep, random.Random(rng.random())),
        }

    def _get(self, cls: str) -> _Class:
        try:
            return self._classes[cls]
        except KeyError:
            raise ValueError(
                f"unknown operation class {cls!r}; expected one of {CLASSES}"
            ) from None

    def acquire(self, cls: str) -> AbstractAsyncContextManager[None]:
        """An async context manager that waits for a token of ``cls``."""
        return self._get(cls).bucket

    def rate(self, cls: str) -> float:
        """Current rate of ``cls`` in calls per second."""
        return self._get(cls).rate.rate

    def watch(self, cls: str, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of the rate of ``cls`` (e.g. the receive
        window's :meth:`~a2i_worker.limiting.window.ReceiveWindow.notify`)."""
        self._get(cls).watchers.append(callback)

    def on_success(self, cls: str) -> None:
        """A call of ``cls`` was accepted."""
        c = self._get(cls)
        c.rate.on_success(self._clock.now())
        c.apply()

    def on_throttle(self, cls: str) -> None:
        """A call of ``cls`` got ThrottlingException."""
        c = self._get(cls)
        before, events = c.rate.rate, c.rate.events
        after = c.rate.on_throttle(self._clock.now())
        c.apply()
        if c.rate.events != events:
            _log.info(
                "limiter.rate_decreased",
                op_class=cls,
                rate_before=round(before, 3),
                rate=round(after, 3),
                w_max=round(c.rate.w_max or 0.0, 3),
                throttles=c.rate.throttles,
            )

    def snapshot(self) -> LimiterSnapshot:
        return LimiterSnapshot(
            start=self._classes["start"].snapshot(), sweep=self._classes["sweep"].snapshot()
        )
