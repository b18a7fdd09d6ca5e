"""The ledger contract, continued: every backend keeps a record's history of transitions."""

from __future__ import annotations

from datetime import timedelta

from a2i_worker.ledger.protocol import Ledger, LoopUpdate, Phase

from .test_contract import T0, starting


async def test_a_request_s_transitions_are_kept_in_order_with_their_reasons(
    ledger: Ledger,
) -> None:
    await starting(ledger, "h-1")
    await ledger.mark_open(
        "h-1",
        loop_name="loop-h-1-1",
        loop_arn="arn:aws:sagemaker:us-east-1:123456789012:human-loop/loop-h-1-1",
        loop_created_at=T0,
        next_check_at=T0 + timedelta(minutes=1),
    )
    await ledger.reschedule("h-1", T0 + timedelta(minutes=2))  # no new stage: not a step
    await ledger.apply_loop_update(
        LoopUpdate(
            loop_name="loop-h-1-1",
            status="Failed",
            observed_at=T0 + timedelta(minutes=3),
            failure_code="Expired",
            failure_reason="no reviewer in time",
        )
    )
    stored = await ledger.store_result(
        "h-1",
        expected=[Phase.OPEN],
        result={"outcome": "expired", "failure_code": "Expired", "reason": "late"},
        result_id="res-h-1",
    )
    assert stored
    record = await ledger.get("h-1")
    assert record is not None
    steps = [(s.phase, s.loop_status, s.attempt, s.note) for s in record.history]
    assert steps == [
        ("received", None, 1, None),
        ("starting", None, 1, "review (c0)"),
        ("open", "InProgress", 1, None),
        ("open", "Failed", 1, "Expired"),
        ("done", "Failed", 1, "result expired: Expired"),
    ]
    times = [s.at for s in record.history]
    assert times == sorted(times)
    assert all(t.tzinfo is not None for t in times)
