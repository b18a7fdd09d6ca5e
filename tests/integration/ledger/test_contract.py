"""The ledger contract, run against every backend (SQLite file, DynamoDB on moto)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import (
    ClaimOutcome,
    Ledger,
    LedgerRecord,
    LoopUpdate,
    Phase,
    StartPayload,
)

T0 = datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=UTC)
FLOW_A = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/a"
FLOW_B = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/b"


def payload(flow: str = FLOW_A, content: str = '{"text": "hello"}') -> StartPayload:
    return StartPayload(flow, content, ("FreeOfPersonallyIdentifiableInformation",))


async def received(ledger: Ledger, rid: str) -> LedgerRecord:
    claim = await ledger.claim(rid, f"fp-{rid}", route="invoices", received_at=T0)
    assert claim.outcome is ClaimOutcome.NEW
    return claim.record


async def starting(
    ledger: Ledger,
    rid: str,
    *,
    flow: str = FLOW_A,
    check_at: datetime = T0,
    attempt: int = 1,
) -> LedgerRecord:
    await received(ledger, rid)
    ok = await ledger.mark_starting(
        rid,
        expected=[Phase.RECEIVED],
        attempt=attempt,
        loop_name=f"loop-{rid}-{attempt}",
        decision={"activated": True, "fired": ["c0"]},
        context={"metadata": {"k": "v"}},
        payload=payload(flow),
        next_check_at=check_at,
    )
    assert ok
    record = await ledger.get(rid)
    assert record is not None
    return record


async def opened(
    ledger: Ledger,
    rid: str,
    *,
    flow: str = FLOW_A,
    created: datetime = T0,
    check_at: datetime = T0,
) -> LedgerRecord:
    rec = await starting(ledger, rid, flow=flow, check_at=check_at)
    assert rec.loop_name is not None
    ok = await ledger.mark_open(
        rid,
        loop_name=rec.loop_name,
        loop_arn=f"arn:loop/{rec.loop_name}",
        loop_created_at=created,
        next_check_at=check_at,
    )
    assert ok
    record = await ledger.get(rid)
    assert record is not None
    return record


def update(loop: str, status: str, **kw: object) -> LoopUpdate:
    return LoopUpdate(loop_name=loop, status=status, observed_at=T0 + timedelta(minutes=5), **kw)  # type: ignore[arg-type]


# -- claim ------------------------------------------------------------------------------


async def test_claim_new_existing_mismatch(ledger: Ledger) -> None:
    first = await ledger.claim("r1", "fp", route="invoices", received_at=T0)
    assert first.outcome is ClaimOutcome.NEW
    assert first.record.phase is Phase.RECEIVED
    again = await ledger.claim("r1", "fp", route="invoices", received_at=T0 + timedelta(1))
    assert again.outcome is ClaimOutcome.EXISTING
    assert again.record.received_at == T0
    assert again.record.route == "invoices"
    other = await ledger.claim("r1", "fp-other", route="invoices", received_at=T0)
    assert other.outcome is ClaimOutcome.MISMATCH
    assert other.record.fingerprint == "fp"


async def test_first_claim_can_store_the_decision_in_the_same_write(ledger: Ledger) -> None:
    def start(r: LedgerRecord) -> LedgerRecord | None:
        return transitions.start(
            r,
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name="loop-r1-1",
            decision={"activated": True},
            context={"metadata": {"k": "v"}},
            payload=payload(),
            next_check_at=T0 + timedelta(minutes=5),
            now=T0,
        )

    first = await ledger.claim("r1", "fp", route="invoices", received_at=T0, then=start)
    assert first.outcome is ClaimOutcome.NEW
    stored = await ledger.get("r1")
    assert stored == first.record
    assert (stored.phase, stored.loop_name, stored.payload, stored.route) == (
        Phase.STARTING,
        "loop-r1-1",
        payload(),
        "invoices",
    )
    assert [r.request_id for r in await ledger.due_for_check(T0 + timedelta(hours=1), 10)] == ["r1"]
    # a second claim returns the stored record untouched, whatever ``then`` would do
    again = await ledger.claim(
        "r1",
        "fp",
        route="invoices",
        received_at=T0,
        then=lambda r: transitions.store_result(
            r, expected=[Phase.RECEIVED], result={}, result_id="x", decision=None, now=T0
        ),
    )
    assert (again.outcome, again.record) == (ClaimOutcome.EXISTING, stored)
    assert await ledger.unpublished(10) == []


async def test_first_claim_can_store_a_result_for_the_outbox(ledger: Ledger) -> None:
    def done(r: LedgerRecord) -> LedgerRecord | None:
        return transitions.store_result(
            r,
            expected=[Phase.RECEIVED],
            result={"outcome": "not_activated"},
            result_id="res-r1",
            decision={"activated": False},
            now=T0,
        )

    claim = await ledger.claim("r1", "fp", route=None, received_at=T0, then=done)
    assert (claim.outcome, claim.record.phase, claim.record.result_id) == (
        ClaimOutcome.NEW,
        Phase.DONE,
        "res-r1",
    )
    assert [r.request_id for r in await ledger.unpublished(10)] == ["r1"]


async def test_mark_published_many_moves_only_matching_results(ledger: Ledger) -> None:
    for rid in ("r1", "r2", "r3"):
        await received(ledger, rid)
        assert await ledger.store_result(
            rid, expected=[Phase.RECEIVED], result={"outcome": "x"}, result_id=f"res-{rid}"
        )
    await received(ledger, "r4")  # not DONE: refused
    assert await ledger.mark_published_many([]) == 0
    moved = await ledger.mark_published_many(
        [("r1", "res-r1"), ("r2", "wrong-id"), ("r3", "res-r3"), ("r4", "res-r4"), ("r9", "x")]
    )
    assert moved == 2
    phases = {rid: (await ledger.get(rid)).phase for rid in ("r1", "r2", "r3", "r4")}  # type: ignore[union-attr]
    assert phases == {
        "r1": Phase.PUBLISHED,
        "r2": Phase.DONE,
        "r3": Phase.PUBLISHED,
        "r4": Phase.RECEIVED,
    }
    assert [r.request_id for r in await ledger.unpublished(10)] == ["r2"]
    assert await ledger.mark_published_many([("r1", "res-r1")]) == 0  # idempotent


async def test_datetimes_come_back_aware_utc_and_exact(ledger: Ledger) -> None:
    local = T0.astimezone(__import__("datetime").timezone(timedelta(hours=5, minutes=30)))
    await ledger.claim("r1", "fp", route=None, received_at=local)
    rec = await ledger.get("r1")
    assert rec is not None
    assert rec.received_at == T0
    assert rec.received_at.tzinfo is UTC
    assert rec.updated_at is not None
    assert rec.updated_at.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await ledger.claim("r1", "fp", route=None, received_at=datetime(2026, 1, 1))


async def test_unknown_records(ledger: Ledger) -> None:
    assert await ledger.get("nope") is None
    assert await ledger.get_by_loop("nope") is None
    assert await ledger.apply_loop_update(update("nope", "Completed")) is None
    assert not await ledger.mark_published("nope", "x")
    assert not await ledger.mark_open(
        "nope", loop_name="l", loop_arn="a", loop_created_at=None, next_check_at=T0
    )
    await ledger.reschedule("nope", T0)
    await ledger.ping()


# -- starting / open -------------------------------------------------------------------


async def test_mark_starting_stores_everything_and_is_conditional(ledger: Ledger) -> None:
    rec = await starting(ledger, "r1")
    assert rec.phase is Phase.STARTING
    assert rec.loop_name == "loop-r1-1"
    assert rec.attempt == 1
    assert rec.payload == payload()
    assert rec.decision == {"activated": True, "fired": ["c0"]}
    assert rec.context == {"metadata": {"k": "v"}}
    assert rec.next_check_at == T0
    assert rec.version == 2
    # the same transition again: the record is no longer RECEIVED
    assert not await ledger.mark_starting(
        "r1",
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="loop-r1-1",
        decision=None,
        context=None,
        payload=payload(),
        next_check_at=T0,
    )
    by_loop = await ledger.get_by_loop("loop-r1-1")
    assert by_loop == rec


async def test_large_compressible_input_round_trips(ledger: Ledger) -> None:
    big = json.dumps({"rows": [{"id": i, "text": "lorem ipsum dolor"} for i in range(90_000)]})
    assert len(big) > 3_000_000
    await received(ledger, "r1")
    assert await ledger.mark_starting(
        "r1",
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="loop-1",
        decision=None,
        context=None,
        payload=payload(content=big),
        next_check_at=T0,
    )
    rec = await ledger.get("r1")
    assert rec is not None
    assert rec.payload is not None
    assert rec.payload.input_content == big


async def test_mark_open_only_for_the_current_loop_and_idempotent(ledger: Ledger) -> None:
    await starting(ledger, "r1")
    assert not await ledger.mark_open(
        "r1", loop_name="other", loop_arn="a", loop_created_at=T0, next_check_at=T0
    )
    assert await ledger.mark_open(
        "r1", loop_name="loop-r1-1", loop_arn="arn:1", loop_created_at=T0, next_check_at=T0
    )
    rec = await ledger.get("r1")
    assert rec is not None
    assert (rec.phase, rec.loop_arn, rec.loop_created_at) == (Phase.OPEN, "arn:1", T0)
    assert rec.loop_status == "InProgress"
    assert await ledger.mark_open(
        "r1", loop_name="loop-r1-1", loop_arn="arn:1", loop_created_at=T0, next_check_at=T0
    )
    again = await ledger.get("r1")
    assert again is not None
    assert again.version == rec.version  # nothing written the second time


async def test_event_before_mark_open_opens_the_record(ledger: Ledger) -> None:
    await starting(ledger, "r1")
    new = await ledger.apply_loop_update(
        update("loop-r1-1", "InProgress", loop_arn="arn:1", loop_created_at=T0)
    )
    assert new is not None
    assert (new.phase, new.loop_status, new.loop_arn) == (Phase.OPEN, "InProgress", "arn:1")
    assert await ledger.mark_open(
        "r1", loop_name="loop-r1-1", loop_arn="arn:1", loop_created_at=T0, next_check_at=T0
    )


# -- loop updates ----------------------------------------------------------------------


async def test_status_order_and_terminal_statuses_never_move(ledger: Ledger) -> None:
    await opened(ledger, "r1")
    assert await ledger.apply_loop_update(update("loop-r1-1", "InProgress")) is None
    stopping = await ledger.apply_loop_update(update("loop-r1-1", "Stopping"))
    assert stopping is not None
    assert stopping.loop_status == "Stopping"
    assert await ledger.apply_loop_update(update("loop-r1-1", "InProgress")) is None
    assert await ledger.apply_loop_update(update("loop-r1-1", "Stopping")) is None
    stopped = await ledger.apply_loop_update(update("loop-r1-1", "Stopped"))
    assert stopped is not None
    assert stopped.loop_status == "Stopped"
    assert stopped.loop_finished_at == T0 + timedelta(minutes=5)
    for status in ("Completed", "Failed", "InProgress", "Stopping", "Stopped"):
        assert await ledger.apply_loop_update(update("loop-r1-1", status)) is None
    rec = await ledger.get("r1")
    assert rec == stopped


async def test_completed_and_failed_carry_their_fields(ledger: Ledger) -> None:
    await opened(ledger, "ok")
    await opened(ledger, "bad")
    done = await ledger.apply_loop_update(
        update("loop-ok-1", "Completed", output_uri="s3://b/o/output.json")
    )
    assert done is not None
    assert (done.loop_status, done.output_uri) == ("Completed", "s3://b/o/output.json")
    failed = await ledger.apply_loop_update(
        update("loop-bad-1", "Failed", failure_code="Expired", failure_reason="timed out")
    )
    assert failed is not None
    assert (failed.failure_code, failed.failure_reason) == ("Expired", "timed out")
    # a stopping loop may still complete
    await opened(ledger, "s")
    assert await ledger.apply_loop_update(update("loop-s-1", "Stopping")) is not None
    late = await ledger.apply_loop_update(update("loop-s-1", "Completed", output_uri="s3://x"))
    assert late is not None
    assert late.loop_status == "Completed"


async def test_resubmission_moves_to_the_next_attempt(ledger: Ledger) -> None:
    await opened(ledger, "r1")
    args = {
        "expected": [Phase.OPEN],
        "attempt": 2,
        "loop_name": "loop-r1-2",
        "decision": {"activated": True},
        "context": None,
        "payload": payload(),
        "next_check_at": T0,
    }
    # the loop is still in progress: resubmitting would duplicate it
    assert not await ledger.mark_starting("r1", **args)  # type: ignore[arg-type]
    await ledger.apply_loop_update(update("loop-r1-1", "Failed", failure_code="Expired"))
    assert await ledger.mark_starting("r1", **args)  # type: ignore[arg-type]
    rec = await ledger.get("r1")
    assert rec is not None
    assert (rec.phase, rec.attempt, rec.loop_name) == (Phase.STARTING, 2, "loop-r1-2")
    assert (rec.loop_status, rec.failure_code, rec.loop_arn, rec.loop_finished_at) == (
        None,
        None,
        None,
        None,
    )
    # the old loop is no longer this record's loop
    assert await ledger.get_by_loop("loop-r1-1") is None
    assert await ledger.apply_loop_update(update("loop-r1-1", "Completed")) is None
    # and an older attempt can never come back
    assert not await ledger.mark_starting("r1", **{**args, "attempt": 1, "loop_name": "x"})  # type: ignore[arg-type]


# -- results ---------------------------------------------------------------------------


async def test_one_result_then_published(ledger: Ledger) -> None:
    await opened(ledger, "r1")
    result = {"request_id": "r1", "outcome": "completed", "answers": [{"a": 1}]}
    assert not await ledger.store_result(
        "r1", expected=[Phase.RECEIVED], result=result, result_id="res-1"
    )
    assert await ledger.store_result(
        "r1", expected=[Phase.OPEN], result=result, result_id="res-1", decision={"d": 1}
    )
    for phases in ([Phase.OPEN], [Phase.DONE], list(Phase)):
        assert not await ledger.store_result("r1", expected=phases, result={}, result_id="res-2")
    rec = await ledger.get("r1")
    assert rec is not None
    assert (rec.phase, rec.result, rec.result_id, rec.decision) == (
        Phase.DONE,
        result,
        "res-1",
        {"d": 1},
    )
    assert [r.request_id for r in await ledger.unpublished(10)] == ["r1"]
    assert await ledger.due_for_check(T0 + timedelta(days=1), 10) == []
    assert not await ledger.mark_published("r1", "res-2")
    assert await ledger.mark_published("r1", "res-1")
    assert not await ledger.mark_published("r1", "res-1")
    rec = await ledger.get("r1")
    assert rec is not None
    assert rec.phase is Phase.PUBLISHED
    assert await ledger.unpublished(10) == []
    assert await ledger.apply_loop_update(update("loop-r1-1", "Completed")) is None


async def test_not_activated_goes_straight_to_done(ledger: Ledger) -> None:
    await received(ledger, "r1")
    assert await ledger.store_result(
        "r1",
        expected=[Phase.RECEIVED],
        result={"outcome": "not_activated"},
        result_id="x",
        decision={"activated": False},
    )
    rec = await ledger.get("r1")
    assert rec is not None
    assert (rec.phase, rec.decision, rec.loop_name) == (Phase.DONE, {"activated": False}, None)


# -- queries ---------------------------------------------------------------------------


async def test_due_for_check_orders_limits_and_reschedules(ledger: Ledger) -> None:
    await starting(ledger, "s1", check_at=T0 + timedelta(seconds=30))
    await opened(ledger, "o1", check_at=T0 + timedelta(seconds=10))
    await opened(ledger, "o2", check_at=T0 + timedelta(seconds=20))
    await opened(ledger, "later", check_at=T0 + timedelta(hours=1))
    await received(ledger, "rcv")
    now = T0 + timedelta(minutes=1)
    assert [r.request_id for r in await ledger.due_for_check(now, 10)] == ["o1", "o2", "s1"]
    assert [r.request_id for r in await ledger.due_for_check(now, 2)] == ["o1", "o2"]
    await ledger.reschedule("o1", T0 + timedelta(minutes=2))
    assert [r.request_id for r in await ledger.due_for_check(now, 10)] == ["o2", "s1"]
    rec = await ledger.get("o1")
    assert rec is not None
    assert rec.next_check_at == T0 + timedelta(minutes=2)
    # terminal-but-not-done loops stay due: their result is still to be made
    await ledger.apply_loop_update(update("loop-o2-1", "Completed"))
    assert "o2" in [r.request_id for r in await ledger.due_for_check(now, 10)]


async def test_open_loops_by_flow(ledger: Ledger) -> None:
    await opened(ledger, "a1", flow=FLOW_A, created=T0 + timedelta(minutes=3))
    await opened(ledger, "a2", flow=FLOW_A, created=T0 + timedelta(minutes=1))
    await opened(ledger, "a3", flow=FLOW_A, created=T0)
    await opened(ledger, "b1", flow=FLOW_B, created=T0 + timedelta(minutes=7))
    await starting(ledger, "s1", flow=FLOW_B)  # not open yet
    await ledger.apply_loop_update(update("loop-a3-1", "Completed"))  # no longer open
    assert await ledger.open_loops_by_flow() == {
        FLOW_A: (2, T0 + timedelta(minutes=1)),
        FLOW_B: (1, T0 + timedelta(minutes=7)),
    }
    records = await ledger.open_records_for_flow(FLOW_A, 10)
    assert [r.request_id for r in records] == ["a2", "a1"]
    assert [r.request_id for r in await ledger.open_records_for_flow(FLOW_A, 1)] == ["a2"]
    assert await ledger.open_records_for_flow("arn:none", 10) == []


async def test_count_by_phase(ledger: Ledger) -> None:
    await received(ledger, "r")
    await starting(ledger, "s")
    await opened(ledger, "o1")
    await opened(ledger, "o2")
    await ledger.store_result("o2", expected=[Phase.OPEN], result={}, result_id="x")
    assert await ledger.count_by_phase() == {
        Phase.RECEIVED: 1,
        Phase.STARTING: 1,
        Phase.OPEN: 1,
        Phase.DONE: 1,
        Phase.PUBLISHED: 0,
    }


async def test_live_counts_from_the_sparse_indexes(ledger: Ledger) -> None:
    """What the gauges show: in progress, unpublished, open loops by flow with the oldest."""
    await received(ledger, "r")  # not counted: no index holds it
    await starting(ledger, "s", flow=FLOW_B)
    await opened(ledger, "a1", flow=FLOW_A, created=T0 + timedelta(minutes=3))
    await opened(ledger, "a2", flow=FLOW_A, created=T0 + timedelta(minutes=1))
    await opened(ledger, "b1", flow=FLOW_B, created=T0 + timedelta(minutes=7))
    await opened(ledger, "done", flow=FLOW_B, created=T0)
    await ledger.store_result("done", expected=[Phase.OPEN], result={}, result_id="x")
    counts = await ledger.live_counts({FLOW_A, FLOW_B, "arn:none"})
    assert counts.in_progress == 4  # s, a1, a2, b1
    assert counts.unpublished == 1
    assert counts.open_by_flow == {
        FLOW_A: (2, T0 + timedelta(minutes=1)),
        FLOW_B: (1, T0 + timedelta(minutes=7)),
        "arn:none": (0, None),
    }
    assert counts.open_loops == 3
    await ledger.mark_published("done", "x")
    assert (await ledger.live_counts(set())).unpublished == 0


# -- concurrency -----------------------------------------------------------------------


async def test_racing_claims_exactly_one_new(ledger_pair: tuple[Ledger, Ledger]) -> None:
    a, b = ledger_pair
    claims = await asyncio.gather(
        *((a if i % 2 else b).claim("r1", "fp", route=None, received_at=T0) for i in range(10))
    )
    assert sorted(c.outcome for c in claims).count(ClaimOutcome.NEW) == 1


async def test_racing_mark_starting_exactly_one_wins(ledger_pair: tuple[Ledger, Ledger]) -> None:
    a, b = ledger_pair
    await received(a, "r1")

    async def attempt(led: Ledger, i: int) -> bool:
        return await led.mark_starting(
            "r1",
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name=f"loop-{i}",
            decision=None,
            context=None,
            payload=payload(),
            next_check_at=T0,
        )

    wins = await asyncio.gather(*(attempt(a if i % 2 else b, i) for i in range(8)))
    assert wins.count(True) == 1
    rec = await b.get("r1")
    assert rec is not None
    assert rec.loop_name == f"loop-{wins.index(True)}"
    assert rec.version == 2


async def test_racing_results_exactly_one_stored(ledger_pair: tuple[Ledger, Ledger]) -> None:
    a, b = ledger_pair
    await opened(a, "r1")
    wins = await asyncio.gather(
        *(
            (a if i % 2 else b).store_result(
                "r1", expected=[Phase.OPEN], result={"i": i}, result_id=f"res-{i}"
            )
            for i in range(8)
        )
    )
    assert wins.count(True) == 1
    rec = await a.get("r1")
    assert rec is not None
    assert rec.result_id == f"res-{wins.index(True)}"
    assert rec.result == {"i": wins.index(True)}


async def test_racing_terminal_updates_one_status_sticks(
    ledger_pair: tuple[Ledger, Ledger],
) -> None:
    a, b = ledger_pair
    await opened(a, "r1")
    statuses = ["Completed", "Stopped", "Failed", "Stopping", "InProgress"] * 2
    answers = await asyncio.gather(
        *(
            (a if i % 2 else b).apply_loop_update(update("loop-r1-1", s))
            for i, s in enumerate(statuses)
        )
    )
    terminal = [
        r for r in answers if r is not None and r.loop_status in {"Completed", "Stopped", "Failed"}
    ]
    assert len(terminal) == 1
    rec = await a.get("r1")
    assert rec is not None
    assert rec.loop_status == terminal[0].loop_status
