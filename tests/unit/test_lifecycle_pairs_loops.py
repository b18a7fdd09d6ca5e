"""docs/lifecycle.md, one test per row: the stages *starting* and *open*.

Same rig and naming as test_lifecycle_pairs.py (``test_<stage>__<event>__<outcome>``);
*stopping*, *finishing* and *final* are in test_lifecycle_pairs_end.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from test_lifecycle_pairs_rig import FLOW, SETTINGS, Rig, review_body

from a2i_worker.ledger.protocol import Phase
from a2i_worker.messages import Outcome
from a2i_worker.naming import loop_name
from a2i_worker.results import make_result
from a2i_worker.sqs_types import SqsMessage, Verdict
from fakes import client_error
from fakes.world import Crash

REFUSALS = [
    ("ValidationException", "a2i_validation"),
    ("AccessDeniedException", "a2i_access_denied"),
]
#: What keeps a start from happening within start_wait: three throttles in a row (the
#: limiter then holds it back), a quota answer (the gate closes), a 500.
HELD_BACK = [
    ("ThrottlingException",) * 3,
    ("ServiceQuotaExceededException",),
    ("InternalServerException",),
]


def _attr(msg: Any, name: str) -> str:
    return str(msg.attributes[f"a2i_worker_{name}"]["StringValue"])


def _cancel_msg(rig: Rig, rid: str) -> SqsMessage:
    body = json.dumps({"version": 1, "type": "cancel", "request_id": rid})
    return SqsMessage(rig.w.queues.requests, f"cancel-{rid}", "rh", body, 1, None)


async def test_starting__a2i_accepted__open_and_a_cancel_noted_meanwhile_stops_it() -> None:
    rig = Rig()
    rec = await rig.opened("r-1")
    loop = rig.loop("r-1")
    assert loop is not None
    assert rec.phase is Phase.OPEN
    assert rec.loop_arn == loop.arn
    assert rec.loop_created_at is not None
    assert rec.next_check_at == rec.loop_created_at + timedelta(
        seconds=SETTINGS.overdue_after_seconds
    )
    verdicts: list[str] = []

    async def cancel_while_starting(name: str, started: bool) -> None:
        if started and name == loop_name(FLOW, "r-2", 1):
            verdicts.append(await rig.p.roles.processor.handle(_cancel_msg(rig, "r-2")))

    rig.on_start(cancel_while_starting)
    await rig.review("r-2")
    await rig.deliver()
    assert verdicts == [Verdict.DELETE]  # the cancel was noted while the loop was starting
    rec2 = rig.record("r-2")
    assert rec2.phase is Phase.OPEN
    assert rec2.loop_status == "Stopping"
    assert rig.loop("r-2").status == "Stopping"  # type: ignore[union-attr]
    assert rig.calls("StopHumanLoop") == 1


async def _held_back_at_intake(rig: Rig, rid: str, codes: tuple[str, ...]) -> None:
    rig.w.a2i.answer_next("StartHumanLoop", *codes)
    await rig.review(rid)
    await rig.deliver()
    assert rig.record(rid).phase is Phase.STARTING


@pytest.mark.parametrize(("code", "rejection"), REFUSALS)
@pytest.mark.parametrize("where", ["intake", "resubmission", "sweep"])
async def test_starting__a2i_refused__rejected_with_one_dlq_copy(
    where: str, code: str, rejection: str
) -> None:
    rig = Rig()
    body = review_body("r-1")
    if where == "intake":
        rig.w.a2i.answer_next("StartHumanLoop", code)
        mid = await rig.send(body)
        await rig.deliver()
    elif where == "resubmission":
        await rig.opened("r-1")
        rig.w.a2i.answer_next("StartHumanLoop", code)
        await rig.reviewer("r-1", "Expired")  # attempt 2 is refused
    else:
        await _held_back_at_intake(rig, "r-1", HELD_BACK[0])
        rig.w.a2i.answer_next("StartHumanLoop", code)
        rig.advance(31)
        await rig.sweep()
        await rig.sweep()  # a second sweep finds a final record: nothing more
    rec = rig.record("r-1")
    assert rec.result is not None
    assert (rec.result["outcome"], rec.result["rejection_code"]) == ("rejected", rejection)
    assert rec.dlq_copied_at is not None
    [copy] = rig.dlq()
    assert _attr(copy, "rejection_code") == rejection
    if where == "intake":
        assert copy.body == body
        assert _attr(copy, "source_message_id") == mid
    else:  # no message in hand: a review request rebuilt from the record
        rebuilt = json.loads(copy.body)
        assert rebuilt == json.loads(body)
    assert [r["outcome"] for r in await rig.publish()] == ["rejected"]
    assert rig.calls("StartHumanLoop") == (2 if where == "resubmission" else 1) + (
        3 if where == "sweep" else 0
    )


async def test_starting__a2i_refused_in_a_sweep_while_the_dlq_is_down__retried_not_lost() -> None:
    """No message in hand to redeliver it: the copy goes before the result, so a DLQ that
    refuses the copy leaves the request starting for the next sweep, never a published
    rejection whose copy nobody sends."""
    rig = Rig()
    await _held_back_at_intake(rig, "r-1", HELD_BACK[0])
    real = rig.w.sqs.send_message
    down = [1]

    async def send(**kw: Any) -> Any:
        if kw["QueueUrl"] == rig.w.queues.requests_dlq and down[0] > 0:
            down[0] -= 1
            raise client_error("InternalError", "SQS is down", status=500)
        return await real(**kw)

    setattr(rig.w.sqs, "send_message", send)  # noqa: B010
    rig.w.a2i.answer_next("StartHumanLoop", "AccessDeniedException", "AccessDeniedException")
    rig.advance(31)
    await rig.sweep()
    rec = rig.record("r-1")
    assert (rec.phase, rig.dlq(), await rig.publish()) == (Phase.STARTING, [], [])
    assert rec.next_check_at is not None
    rig.advance((rec.next_check_at - rig.w.clock.now).total_seconds())
    await rig.sweep()
    rec = rig.record("r-1")
    assert rec.result is not None
    assert (rec.result["outcome"], rec.result["rejection_code"]) == (
        "rejected",
        "a2i_access_denied",
    )
    assert rec.dlq_copied_at is not None
    [copy] = rig.dlq()
    assert _attr(copy, "rejection_code") == "a2i_access_denied"
    assert [r["outcome"] for r in await rig.publish()] == ["rejected"]


async def test_starting__validation_for_a_name_in_use__describe_decides() -> None:
    rig = Rig()
    name = loop_name(FLOW, "r-1", 1)
    content = json.dumps({"text": "hello r-1"}, separators=(",", ":"))
    # The loop exists already and is finished (started before a crash): A2I answers
    # ValidationException for its name, as it does for a bad input.
    await rig.w.a2i.start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=FLOW, HumanLoopInput={"InputContent": content}
    )
    rig.w.a2i.finish(name, "Completed", answers={"label": "cat"})
    await rig.review("r-1")
    await rig.deliver()
    rec = rig.record("r-1")
    assert rec.phase is Phase.OPEN
    assert rec.loop_status == "Completed"
    await rig.sweep()  # the loop was found finished: the sweeper finishes it now
    # No loop of that name: the same answer is a refusal.
    rig.w.a2i.answer_next("StartHumanLoop", "ValidationException")
    await rig.review("r-2")
    await rig.deliver()
    results = {r["request_id"]: r for r in await rig.publish()}
    assert results["r-1"]["outcome"] == "completed"
    assert results["r-1"]["human_answers"][0]["answerContent"] == {"label": "cat"}
    assert (results["r-2"]["outcome"], results["r-2"]["rejection_code"]) == (
        "rejected",
        "a2i_validation",
    )
    assert [_attr(m, "rejection_code") for m in rig.dlq()] == ["a2i_validation"]


@pytest.mark.parametrize("codes", HELD_BACK)
async def test_starting__throttled_quota_or_unavailable__stays_starting_and_the_sweeper_retries(
    codes: tuple[str, ...],
) -> None:
    rig = Rig()
    await _held_back_at_intake(rig, "r-1", codes)
    rec = rig.record("r-1")
    assert rec.tries == 1
    assert rec.next_check_at == rig.w.clock.now + timedelta(seconds=30)
    assert not rig.live_requests()  # the message is deleted: the sweeper owns the record
    rig.advance(29)
    await rig.sweep()  # the first sweep of this process: it takes every STARTING record
    rig.p.gate.reopen()  # the real gate probes again after a while
    rig.advance(31)
    await rig.sweep()
    assert rig.record("r-1").phase is Phase.OPEN
    assert rig.loop("r-1") is not None


async def test_starting__longer_than_the_start_timeout__failed_start_timed_out() -> None:
    rig = Rig()
    rig.w.a2i.max_in_progress = 0  # A2I's quota is taken by others: no start ever happens
    await rig.review("r-1")
    await rig.deliver()
    entered = rig.record("r-1").phase_since
    assert entered is not None
    while rig.record("r-1").phase is Phase.STARTING:
        assert rig.w.clock.now - entered < timedelta(seconds=SETTINGS.start_timeout_seconds + 61)
        rig.advance(60)
        await rig.sweep()
    rec = rig.record("r-1")
    assert rig.w.clock.now - entered >= timedelta(seconds=SETTINGS.start_timeout_seconds)
    assert rec.result is not None
    assert (rec.result["outcome"], rec.result["failure_code"]) == ("failed", "start_timed_out")
    assert rig.loop("r-1") is None


async def test_starting__duplicate_message_after_a_crash__describe_decides_one_loop() -> None:
    rig = Rig()

    async def crash_once_started(name: str, started: bool) -> None:
        if started and rig.calls("StartHumanLoop") == 1:
            raise Crash

    rig.on_start(crash_once_started)
    await rig.review("r-1")
    with pytest.raises(Crash):
        await rig.deliver()  # A2I has the loop; the ledger still says STARTING
    assert rig.record("r-1").phase is Phase.STARTING
    rig.restart()
    rig.advance(SETTINGS.visibility_timeout_seconds + 1)
    await rig.deliver()  # the same message again
    assert rig.record("r-1").phase is Phase.OPEN
    assert rig.calls("StartHumanLoop") == 1
    assert rig.calls("DescribeHumanLoop") == 1
    assert not rig.live_requests()


async def test_starting__restart__first_sweep_records_loops_starts_the_rest_when_due() -> None:
    rig = Rig()
    # r-1: killed once A2I had its loop; r-2: killed just before its StartHumanLoop
    kill = {(loop_name(FLOW, "r-1", 1), True), (loop_name(FLOW, "r-2", 1), False)}

    async def crash(name: str, started: bool) -> None:
        if (name, started) in kill:
            kill.discard((name, started))
            raise Crash

    rig.on_start(crash)
    for rid in ("r-1", "r-2"):
        await rig.review(rid)
        with pytest.raises(Crash):
            await rig.deliver()
        rig.restart()
    recs = [rig.record(rid) for rid in ("r-1", "r-2")]
    assert all(r.phase is Phase.STARTING for r in recs)
    assert all(r.next_check_at > rig.w.clock.now for r in recs)  # type: ignore[operator]
    starts = rig.calls("StartHumanLoop")
    report = await rig.sweep()  # at once: not when they fall due
    assert report.due == 2
    # the loop A2I has is recorded now; the missing one may be another replica's start in
    # flight, so it is not started before its record falls due
    assert [rig.record(rid).phase for rid in ("r-1", "r-2")] == [Phase.OPEN, Phase.STARTING]
    assert rig.calls("StartHumanLoop") == starts
    due_at = rig.record("r-2").next_check_at
    assert due_at is not None
    rig.advance((due_at - rig.w.clock.now).total_seconds())
    await rig.sweep()
    assert rig.record("r-2").phase is Phase.OPEN
    assert rig.calls("StartHumanLoop") == starts + 1
    assert not rig.w.a2i.store.names_started_more_than_once


async def test_starting__request_became_final_meanwhile__the_orphan_loop_is_stopped() -> None:
    rig = Rig()

    async def ended_elsewhere(name: str, started: bool) -> None:
        if started:  # e.g. another replica timed the start out just now
            rec = await rig.w.ledger.get("r-1")
            assert rec is not None
            res_id, result = make_result(rec, Outcome.FAILED, now=rig.w.clock.now, reason="x")
            await rig.w.ledger.store_result(
                "r-1", expected=[Phase.STARTING], result=result, result_id=res_id
            )

    rig.on_start(ended_elsewhere)
    await rig.review("r-1")
    await rig.deliver()
    assert rig.loop("r-1").status == "Stopping"  # type: ignore[union-attr]
    assert rig.calls("StopHumanLoop") == 1
    assert rig.record("r-1").result["outcome"] == "failed"  # type: ignore[index]
    assert not rig.live_requests()


async def test_open__status_event__stored_duplicates_and_stale_ignored_terminal_finishes() -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.opened("r-2")
    await rig.cancel("r-2")
    await rig.deliver()  # r-2: Stopping
    stale = rig.w.a2i.event(rig.loop("r-1"))  # type: ignore[arg-type]  # InProgress
    await rig.update("r-2", "InProgress")  # older than Stopping: ignored
    assert rig.record("r-2").loop_status == "Stopping"
    await rig.reviewer("r-1", "Completed", output="missing")
    rec = rig.record("r-1")
    assert (rec.phase, rec.loop_status, rec.tries) == (Phase.OPEN, "Completed", 1)  # finishing
    await rig.emit(stale)  # a late InProgress after Completed: ignored
    assert rig.record("r-1").loop_status == "Completed"
    await rig.opened("r-3")
    body = rig.w.a2i.finish(loop_name(FLOW, "r-3", 1), "Completed")
    await rig.emit(body, times=2)  # delivered twice
    results = [r for r in await rig.publish() if r["request_id"] == "r-3"]
    assert [r["outcome"] for r in results] == ["completed"]
    # ignored: the stale r-2 and r-1 observations, the second r-3 event
    assert rig.p.roles.events.counts["status_duplicate"] == 3


async def test_open__cancel__stop_human_loop_and_stopping() -> None:
    rig = Rig()
    await rig.opened("r-1")
    rig.advance(5)
    await rig.cancel("r-1")
    await rig.deliver()
    rec = rig.record("r-1")
    assert rig.calls("StopHumanLoop") == 1
    assert rig.loop("r-1").status == "Stopping"  # type: ignore[union-attr]
    assert (rec.phase, rec.loop_status) == (Phase.OPEN, "Stopping")
    assert rec.phase_since == rig.w.clock.now  # the Stopping stage starts now
    assert rec.cancel_requested_at is not None
    assert not rig.live_requests()


@pytest.mark.parametrize(("loops", "lists"), [(3, 0), (25, 1)])
async def test_open__no_event_for_overdue_after__described_or_listed_once(
    loops: int, lists: int
) -> None:
    rig = Rig()
    for i in range(loops):
        await rig.review(f"r-{i}")
    await rig.drain()
    rig.w.a2i.finish(loop_name(FLOW, "r-0", 1), "Completed")  # its event is lost
    rig.advance(SETTINGS.overdue_after_seconds - 1)
    assert (await rig.sweep()).due == 0  # not overdue yet: nothing asked
    assert rig.calls("DescribeHumanLoop") + rig.calls("ListHumanLoops") == 0
    rig.advance(2)
    report = await rig.sweep()
    assert report.due == loops
    assert rig.calls("ListHumanLoops") == lists
    # few: each loop described; many: one List, and a Describe only for the finished one
    assert rig.calls("DescribeHumanLoop") == (loops if lists == 0 else 1)
    assert rig.record("r-0").phase is Phase.DONE
    assert rig.record("r-1").loop_status == "InProgress"
    assert rig.record("r-1").next_check_at > rig.w.clock.now  # type: ignore[operator]


async def test_open__a2i_no_longer_knows_the_loop__failed_vanished() -> None:
    rig = Rig()
    await rig.opened("r-1")
    name = loop_name(FLOW, "r-1", 1)
    rig.w.a2i.store.finish(name, "Stopped")  # stopped and deleted outside the worker,
    rig.w.a2i.store.delete(name)  # its events lost
    rig.advance(SETTINGS.overdue_after_seconds + 1)
    report = await rig.sweep()
    assert report.vanished == 1
    [result] = await rig.publish()
    assert (result["outcome"], result["failure_code"]) == ("failed", "Vanished")
