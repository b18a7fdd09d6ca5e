"""When the sweeper looks at a running loop again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from a2i_worker.sweeper import next_check_delay

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"
MIN = timedelta(minutes=1)
CAP = timedelta(hours=1)


def test_young_loops_are_checked_every_sweep() -> None:
    for seconds in (0, 30, 300, 599):
        assert next_check_delay(timedelta(seconds=seconds), MIN, CAP) == MIN


def test_old_loops_back_off_to_a_quarter_of_their_age() -> None:
    assert next_check_delay(timedelta(minutes=20), MIN, CAP) == timedelta(minutes=5)


def test_backoff_is_capped() -> None:
    assert next_check_delay(timedelta(days=3), MIN, CAP) == CAP


async def test_the_sweeper_wakes_when_the_first_record_falls_due(tmp_path: Path) -> None:
    from typing import Any, cast

    from a2i_worker.ledger.protocol import Phase, StartPayload
    from a2i_worker.ledger.sqlite import SqliteLedger
    from a2i_worker.sweeper import SweepConfig, Sweeper

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ledger = SqliteLedger(tmp_path / "l.db", clock=lambda: now)
    await ledger.open()
    try:
        sweeper = Sweeper(
            ledger=ledger,
            gateway=cast(Any, None),  # not used to compute the schedule
            events=cast(Any, None),
            starter=cast(Any, None),
            config=SweepConfig(interval=timedelta(seconds=60)),
            clock=lambda: now,
        )
        assert await sweeper.seconds_until_next_sweep() == 60  # nothing open: one interval
        await ledger.claim("r-1", "f", route=None, received_at=now)
        await ledger.mark_starting(
            "r-1",
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name="l-1",
            decision=None,
            context=None,
            payload=StartPayload(
                "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f", "{}"
            ),
            next_check_at=now + timedelta(seconds=7),
        )
        assert await sweeper.seconds_until_next_sweep() == 7
        await ledger.reschedule("r-1", now - timedelta(seconds=5))  # overdue: soon, not now
        assert await sweeper.seconds_until_next_sweep() == 1
    finally:
        await ledger.close()
