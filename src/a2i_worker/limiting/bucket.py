"""A leaky bucket whose rate can be changed while tasks wait on it.

Owned here, not an :class:`aiolimiter.AsyncLimiter` subclass: aiolimiter has no public way
to change the rate of a live limiter (it fixes the drain rate in ``__init__``), and
re-tuning it meant reaching into its private ``_rate_per_sec``/``_leak``/``_wake_next``.

The arithmetic is aiolimiter's: the level rises by one per acquisition, drains at
``rate`` per second, and an acquisition waits while the level would exceed ``burst``.
Waiters go first come, first served; only the first one sleeps, on a timer computed from
the current rate, and :meth:`TunableLimiter.set_rate` wakes it to recompute, so waiting
tasks see a new rate at once. Time is ``time.monotonic`` (the clock asyncio's loop uses),
so the bucket is bound to no event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from types import TracebackType

__all__ = ["TunableLimiter"]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class TunableLimiter:
    """Leaky bucket of ``burst`` tokens draining at ``rate`` per second, re-tunable live."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        self._level = 0.0
        self._checked = time.monotonic()
        self._queue: deque[asyncio.Future[None]] = deque()
        self._retuned: asyncio.Future[None] | None = None
        self._rate, self._burst = self._valid(rate, burst)

    @staticmethod
    def _valid(rate: float, burst: float) -> tuple[float, float]:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        return float(rate), max(1.0, float(burst))

    @property
    def rate(self) -> float:
        """Sustained acquisitions per second."""
        return self._rate

    def _drain(self) -> None:
        now = time.monotonic()
        self._level = max(0.0, self._level - (now - self._checked) * self._rate)
        self._checked = now

    def _take(self) -> bool:
        self._drain()
        if self._level + 1.0 > self._burst:
            return False
        self._level += 1.0
        return True

    def set_rate(self, rate: float, burst: float = 1.0) -> None:
        """Apply a new ``rate`` (> 0) and ``burst`` (>= 1 token) from now on."""
        rate, burst = self._valid(rate, burst)
        self._drain()  # settle at the old rate
        # A deep cut must not stall the class: a level built at the old rate (up to the
        # old, larger burst) would drain at the new, lower one -- measured: 0.37 s without
        # a call after a cut from 1000/s to 121/s, while the server's bucket refilled. At
        # most one burst of debt is kept: the next call goes one interval after the cut.
        self._level = min(self._level, burst)
        self._rate, self._burst = rate, burst
        if self._retuned is not None:
            _resolve(self._retuned)  # the first waiter recomputes its wait at the new rate

    async def acquire(self) -> None:
        """Wait for a token (first come, first served)."""
        if not self._queue and self._take():
            return
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._queue.append(turn)
        try:
            if self._queue[0] is not turn:
                await turn  # resolved when the waiter ahead of this one is done
            while not self._take():
                self._retuned = woken = loop.create_future()
                delay = (self._level + 1.0 - self._burst) / self._rate
                timer = loop.call_later(max(delay, 0.0), _resolve, woken)
                try:
                    await woken
                finally:
                    timer.cancel()
        finally:
            first = self._queue[0] is turn
            self._queue.remove(turn)
            if first:
                self._retuned = None
                if self._queue:
                    _resolve(self._queue[0])

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
