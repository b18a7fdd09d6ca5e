"""Counting answers over time: the smoothed answered rate and the recent successes."""

from __future__ import annotations

import math

__all__ = ["RateMeter", "SuccessWindow"]


class RateMeter:
    """Smoothed events-per-second, updated in buckets of ``bucket`` seconds.

    Like botocore's ``RateClocker``: each full bucket blends its count into an
    exponentially weighted average with weight ``smoothing``. Empty buckets between two
    observations count as zero. ``rate`` is 0.0 until the first bucket closes.
    """

    __slots__ = ("_bucket", "_count", "_rate", "_smoothing", "_start")

    def __init__(self, bucket: float = 0.25, smoothing: float = 0.6) -> None:
        self._bucket = bucket
        self._smoothing = smoothing
        self._start: float | None = None
        self._count = 0
        self._rate = 0.0

    def record(self, now: float, amount: int = 1) -> float:
        """Count ``amount`` events at ``now``; returns the smoothed rate.

        A reading that is not finite, or earlier than the open bucket, counts in that bucket.
        """
        if self._start is not None and not (now >= self._start and math.isfinite(now)):
            now = self._start
        if self._start is None:
            if not math.isfinite(now):
                return self._rate
            self._start = now
        elapsed = now - self._start
        if elapsed >= self._bucket:
            q = elapsed / self._bucket
            if q < 1e15:
                buckets = math.floor(q)
                current = self._count / (buckets * self._bucket)
                self._start += buckets * self._bucket
            else:  # a gap of ages (or a clock reading near the float range's end)
                current = 0.0
                self._start = now
            # one blend for the closed bucket(s) as a whole: robust to sparse calls
            self._rate = self._smoothing * current + (1 - self._smoothing) * self._rate
            self._count = 0
        self._count += amount
        return self._rate

    @property
    def rate(self) -> float:
        return self._rate


class SuccessWindow:
    """Successes per ``slot`` seconds over the last ``slots * slot`` seconds (a ring).

    :meth:`lower_bound` is what they *prove* about the server's sustained rate R: a token
    bucket of rate R and burst B admits at most ``B + R * W`` calls in any ``W`` seconds,
    so if ``B <= burst_seconds * R`` then ``R >= successes(W) / (W + burst_seconds)``
    for every window ``W`` -- the best such bound is over a few window lengths.
    """

    __slots__ = ("_counts", "_head", "_slot")

    def __init__(self, slot: float = 0.125, slots: int = 32) -> None:
        self._slot = slot
        self._counts = [0] * slots
        self._head: int | None = None  # index of the newest slot

    def _advance(self, now: float) -> int:
        q = now / self._slot
        if not math.isfinite(q):  # a reading near the float range's end: the newest slot
            return self._head if self._head is not None else 0
        i = math.floor(q)
        if self._head is None:
            self._head = i
        elif i > self._head:
            n = len(self._counts)
            for k in range(self._head + 1, self._head + 1 + min(i - self._head, n)):
                self._counts[k % n] = 0
            self._head = i
        return self._head

    def add(self, now: float) -> None:
        """One success at ``now`` (finite; an earlier reading counts in the newest slot)."""
        head = self._advance(now)
        self._counts[head % len(self._counts)] += 1

    def count(self, now: float, slots: int) -> tuple[int, float]:
        """``(successes, seconds)`` over the newest ``slots`` slots up to ``now``."""
        head = self._advance(now)
        n = len(self._counts)
        slots = max(1, min(slots, n))
        total = sum(self._counts[(head - k) % n] for k in range(slots))
        span = max(now - (head - slots + 1) * self._slot, self._slot)
        return total, span

    def lower_bound(self, now: float, burst_seconds: float) -> float:
        """The largest rate the recent successes prove (see the class docstring)."""
        best = 0.0
        slots = 4
        while slots <= len(self._counts):
            total, span = self.count(now, slots)
            best = max(best, total / (span + burst_seconds))
            slots *= 2
        return best
