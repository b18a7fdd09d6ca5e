"""When the sweeper looks at a running loop again."""

from __future__ import annotations

from datetime import timedelta

from a2i_worker.sweeper import next_check_delay

MIN = timedelta(minutes=1)
CAP = timedelta(hours=1)


def test_young_loops_are_checked_every_sweep() -> None:
    for seconds in (0, 30, 300, 599):
        assert next_check_delay(timedelta(seconds=seconds), MIN, CAP) == MIN


def test_old_loops_back_off_to_a_quarter_of_their_age() -> None:
    assert next_check_delay(timedelta(minutes=20), MIN, CAP) == timedelta(minutes=5)


def test_backoff_is_capped() -> None:
    assert next_check_delay(timedelta(days=3), MIN, CAP) == CAP
