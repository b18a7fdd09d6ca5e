"""One task, one heap: due actions for any number of open loops.

Promise: :meth:`Scheduler.push` is O(log n) and never creates a task; :meth:`Scheduler.run`
(one long-lived task) calls ``fire(payload)`` for every entry once its due time has come, in
due-time order (ties in push order). 100k open loops are 100k heap entries, not 100k tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

__all__ = ["Scheduler"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Scheduler(Generic[T]):
    def __init__(self, fire: Callable[[T], None], clock: Callable[[], float] | None = None) -> None:
        self._fire = fire
        self._clock = clock
        self._heap: list[tuple[float, int, T]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, delay: float, payload: T) -> None:
        """Run ``fire(payload)`` ``delay`` seconds from now (0 -> on the next turn)."""
        due = self._now() + max(delay, 0.0)
        entry = (due, next(self._counter), payload)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wake.set()

    def clear(self) -> None:
        self._heap.clear()
        self._wake.set()

    async def run(self) -> None:
        heap = self._heap
        while True:
            self._wake.clear()
            now = self._now()
            while heap and heap[0][0] <= now:
                _, _, payload = heapq.heappop(heap)
                try:
                    self._fire(payload)
                except Exception:  # a bad entry must not stop every other loop
                    log.exception("scheduled_action_failed")
            timeout = heap[0][0] - now if heap else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
