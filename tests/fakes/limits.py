"""The A2I gateway's two other seams, without real time: a limiter and a quota gate.

The real :class:`~a2i_worker.limiter.AdaptiveLimiter` and
:class:`~a2i_worker.limiter.QuotaGate` wait in real time (token buckets, probe timers);
they have their own tests. Here a wait that would outlast the starter's ``start_wait``
answers at once what the starter's ``anyio.fail_after`` would answer after it:
``TimeoutError`` (a closed gate; starts throttled ``start_throttles`` times in a row).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

__all__ = ["FakeGate", "FakeLimiter"]


class FakeLimiter:
    def __init__(self, *, start_throttles: int = 3) -> None:
        self.start_throttles = start_throttles
        self.throttled: dict[str, int] = {}
        self.successes: dict[str, int] = {}

    def acquire(self, cls: str) -> AbstractAsyncContextManager[None]:
        return self._acquire(cls)

    @asynccontextmanager
    async def _acquire(self, cls: str) -> AsyncIterator[None]:
        if cls == "start" and self.throttled.get(cls, 0) >= self.start_throttles:
            self.throttled[cls] = 0
            raise TimeoutError("the limiter holds starts back beyond start_wait")
        await asyncio.sleep(0)  # a checkpoint, as a real wait for a token is
        yield

    def on_success(self, cls: str) -> None:
        self.successes[cls] = self.successes.get(cls, 0) + 1
        self.throttled[cls] = 0

    def on_throttle(self, cls: str) -> None:
        self.throttled[cls] = self.throttled.get(cls, 0) + 1


class FakeGate:
    """Open until A2I answers ServiceQuotaExceeded; open again when a loop finishes (or
    the test calls :meth:`reopen`, as the real gate's probe would)."""

    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0
        self.quota_answers = 0

    async def wait_open(self) -> None:
        if self.closed:
            raise TimeoutError("the quota gate stays closed beyond start_wait")
        await asyncio.sleep(0)

    def confirm(self) -> bool:
        return True

    def on_start_succeeded(self) -> None:
        self.in_flight += 1

    def on_quota_exceeded(self, in_flight: int | None = None) -> None:
        self.quota_answers += 1
        self.closed = True

    def on_start_failed(self) -> None:
        return None

    def on_loop_finished(self, n: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - n)
        self.closed = False

    def set_in_flight(self, n: int) -> None:
        self.in_flight = n

    def reopen(self) -> None:
        self.closed = False
