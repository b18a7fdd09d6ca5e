"""A clock that moves only when told to: every role and fake of one test shares it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]


class ManualClock:
    """``clock()`` is the current (aware, UTC) time; ``advance`` moves it forward."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward ``by`` (seconds or a timedelta); never backwards."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError("a ManualClock never goes backwards")
        self.now += step
        return self.now

    def epoch(self) -> float:
        """The current time as epoch seconds (what SQS and A2I count in)."""
        return self.now.timestamp()
