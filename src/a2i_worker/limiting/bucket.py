"""An :class:`aiolimiter.AsyncLimiter` whose rate can be changed while tasks wait on it.

aiolimiter computes ``_rate_per_sec`` once, in ``__init__``, and drains the bucket lazily
from ``_last_check`` at that rate; its waker timer is scheduled from the same number.
Changing the rate therefore has to (1) settle the level drained so far at the *old* rate,
(2) cap the level at the new burst and swap capacity and rate, (3) re-arm the waker so
waiting tasks see the new rate now, not when a timer computed at the old rate fires.
:meth:`TunableLimiter.set_rate` does exactly that, using aiolimiter 1.3's internals (pinned
in requirements/constraints.txt; tests/unit/test_limiter_async.py fails if they change).
"""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter

__all__ = ["TunableLimiter"]


class TunableLimiter(AsyncLimiter):
    """Leaky bucket of ``burst`` tokens draining at ``rate`` per second, re-tunable live."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        burst = max(1.0, burst)
        super().__init__(burst, burst / rate)

    @property
    def rate(self) -> float:
        """Sustained acquisitions per second."""
        return float(self._rate_per_sec)

    def _attached_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            loop: asyncio.AbstractEventLoop = self._event_loop
        except AttributeError:
            return None
        return None if loop.is_closed() else loop

    def set_rate(self, rate: float, burst: float = 1.0) -> None:
        """Apply a new ``rate`` (> 0) and ``burst`` (>= 1 token) from now on."""
        if not rate > 0:
            raise ValueError("rate must be > 0")
        burst = max(1.0, burst)
        attached = self._attached_loop() is not None
        if attached:
            self._leak()  # settle at the old rate
        # A deep cut must not stall the class: a level built at the old rate (up to the
        # old, larger burst) would drain at the new, lower one -- measured: 0.37 s without
        # a call after a cut from 1000/s to 121/s, while the server's bucket refilled. At
        # most one burst of debt is kept: the next call goes one interval after the cut.
        self._level = min(self._level, burst)
        self.max_rate = burst
        self.time_period = burst / rate
        self._rate_per_sec = rate
        if attached:
            self._wake_next()  # re-arm the waker at the new rate
