"""Time source of the limiter: injectable, monotonic seconds."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "MonotonicClock"]


class Clock(Protocol):
    """Monotonic seconds. Tests inject a fake one and drive time explicitly."""

    def now(self) -> float: ...


class MonotonicClock:
    """:func:`time.monotonic` -- the same time base as the asyncio event loop."""

    def now(self) -> float:
        return time.monotonic()
