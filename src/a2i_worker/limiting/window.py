"""The receive window: how many request messages a worker holds, following the start rate.

A fixed ``max_in_flight`` (1,000) holds 40 s of work at a 25/s start quota: a kill -9
then delays up to 1,000 requests by a visibility timeout, and one replica hoards what
another could start. :class:`ReceiveWindow` holds about what can be started within
``seconds`` at the current start rate, plus one receive batch, with ``ceiling``
(``max_in_flight``) as the upper bound. It promises:

- **Follows the rate.** ``limit = min(ceiling, ceil(rate * seconds) + batch)``, read at
  each decision; when the rate grows, waiting receivers are woken
  (:meth:`ReceiveWindow.notify`, wired to :meth:`AdaptiveLimiter.watch
  <a2i_worker.limiting.adaptive.AdaptiveLimiter.watch>`); when it shrinks, no new
  message is taken until enough held ones are done. Nothing held is ever dropped.
- **Semaphore-shaped.** ``acquire`` / ``acquire_nowait`` / ``release`` / ``value`` as
  :class:`anyio.Semaphore`, so the intake takes either (:class:`Slots`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import anyio

__all__ = ["ReceiveWindow", "Slots"]


class Slots(Protocol):
    """What the intake needs of its bound on held messages (anyio.Semaphore has it)."""

    @property
    def value(self) -> int: ...

    async def acquire(self) -> None: ...

    def acquire_nowait(self) -> None: ...

    def release(self) -> None: ...


class ReceiveWindow:
    """A bound on held messages that follows ``rate()`` (see the module docstring)."""

    def __init__(
        self,
        rate: Callable[[], float],
        *,
        seconds: float,
        ceiling: int,
        batch: int = 10,
    ) -> None:
        if not seconds > 0 or ceiling < 1 or batch < 1:
            raise ValueError("need seconds > 0, ceiling >= 1, batch >= 1")
        self._rate = rate
        self._seconds = seconds
        self._ceiling = ceiling
        self._batch = batch
        self._taken = 0
        self._changed: anyio.Event | None = None

    def limit(self) -> int:
        """Messages that may be held now."""
        rate = self._rate()
        wanted = math.ceil(rate * self._seconds) if math.isfinite(rate) and rate > 0 else 0
        return max(1, min(self._ceiling, wanted + self._batch))

    @property
    def held(self) -> int:
        """Slots taken (messages held, or being received)."""
        return self._taken

    @property
    def value(self) -> int:
        """Free slots now (0 while the window is smaller than what is held)."""
        return max(0, self.limit() - self._taken)

    def acquire_nowait(self) -> None:
        if self.value <= 0:
            raise anyio.WouldBlock
        self._taken += 1

    async def acquire(self) -> None:
        """Take a slot, waiting (for a release or a higher rate) while none is free."""
        while self.value <= 0:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        self._taken += 1

    def release(self) -> None:
        self._taken = max(0, self._taken - 1)
        self.notify()

    def notify(self) -> None:
        """Something changed (a release, the rate): waiters look again."""
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()
