"""A record's history: one step per new stage, attempt or reason; bounded; no content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from a2i_worker.ledger import codec
from a2i_worker.ledger import transitions as tr
from a2i_worker.ledger.protocol import LedgerRecord, LoopUpdate, Phase, StartPayload, Step

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"
SECRET_INPUT = '{"ssn": "123-45-6789"}'


def _expired_cycles(n: int) -> LedgerRecord:
    rec = tr.new_record("r", "fp", route="x", received_at=T0)
    at = T0
    for attempt in range(1, n + 1):
        at += timedelta(minutes=1)
        started = tr.start(
            rec,
            expected=[Phase.RECEIVED, Phase.OPEN],
            attempt=attempt,
            loop_name=f"l-{attempt}",
            decision=None,
            context=None,
            payload=StartPayload(FLOW, SECRET_INPUT),
            next_check_at=at,
            now=at,
        )
        assert started is not None
        opened = tr.apply_update(started, LoopUpdate(f"l-{attempt}", "InProgress", at), now=at)
        assert opened is not None
        expired = tr.apply_update(
            opened,
            LoopUpdate(f"l-{attempt}", "Failed", at, failure_code="Expired"),
            now=at,
        )
        assert expired is not None
        rec = expired
    return rec


def test_each_attempt_leaves_its_steps() -> None:
    rec = _expired_cycles(2)
    assert [(s.phase, s.loop_status, s.attempt, s.note) for s in rec.history] == [
        ("received", None, 1, None),
        ("starting", None, 1, None),
        ("open", "InProgress", 1, None),
        ("open", "Failed", 1, "Expired"),
        ("starting", None, 2, None),
        ("open", "InProgress", 2, None),
        ("open", "Failed", 2, "Expired"),
    ]


def test_a_long_history_keeps_the_first_and_the_latest_steps() -> None:
    rec = _expired_cycles(20)  # 1 + 20 x 3 steps
    assert len(rec.history) == tr.MAX_HISTORY
    assert rec.history[0].phase == "received"
    assert rec.history[-1] == Step(rec.history[-1].at, "open", "Failed", 20, "Expired")
    times = [s.at for s in rec.history]
    assert times == sorted(times)


def test_a_reschedule_is_not_a_step() -> None:
    rec = _expired_cycles(1)
    later = tr.reschedule(rec, T0 + timedelta(hours=1), now=T0 + timedelta(minutes=30))
    assert later is None or later.history == rec.history


def test_the_history_round_trips_through_a_row_and_holds_no_content() -> None:
    rec = _expired_cycles(3)
    row = codec.to_row(rec)
    assert SECRET_INPUT not in str(row["history"])
    assert "ssn" not in str(row["history"])
    assert codec.from_row(row).history == rec.history
    assert codec.changed_columns(rec, rec) == {}
