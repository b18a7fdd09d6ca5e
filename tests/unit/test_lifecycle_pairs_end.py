"""docs/lifecycle.md, one test per row: the stages *stopping*, *finishing* and *final*.

Same rig and naming as test_lifecycle_pairs.py (``test_<stage>__<event>__<outcome>``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_lifecycle_pairs_rig import FLOW, SETTINGS, Recorder, Rig

from a2i_worker.ledger.protocol import Phase
from a2i_worker.naming import loop_name
from fakes import client_error
from fakes.world import Crash


async def _stopping(rig: Rig, rid: str = "r-1") -> str:
    """An open loop that was cancelled: Stopping in A2I and in the ledger."""
    await rig.opened(rid)
    await rig.cancel(rid)
    await rig.deliver()
    assert rig.record(rid).loop_status == "Stopping"
    return loop_name(FLOW, rid, 1)


def _output(rig: Rig, name: str, answers: dict[str, Any]) -> str:
    """An output.json as A2I writes it for ``name``; its URI."""
    key = f"a2i/{name}/output.json"
    doc = {"humanLoopName": name, "humanAnswers": [{"answerContent": answers}]}
    rig.w.s3.put("outputs", key, json.dumps(doc).encode())
    return f"s3://outputs/{key}"


async def _result(rig: Rig, rid: str = "r-1") -> dict[str, Any]:
    [result] = [r for r in await rig.publish() if r["request_id"] == rid]
    return result


# -- stopping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("Stopped", "stopped"), ("Completed", "completed"), ("Failed", "failed")],
)
async def test_stopping__stopped_completed_or_failed__finishing_then_its_result(
    status: str, outcome: str
) -> None:
    rig = Rig()
    name = await _stopping(rig)
    store = rig.w.a2i.store
    if status == "Completed":  # a reviewer submitted while the stop was in flight
        store.finish(name, "Completed", output_s3_uri=_output(rig, name, {"label": "cat"}))
    elif status == "Failed":
        store.finish(name, "Failed", failure_code="InternalError", failure_reason="A2I failed")
    else:
        store.finish(name, "Stopped")
    await rig.emit(rig.w.a2i.event(store.get(name)))
    result = await _result(rig)
    assert result["outcome"] == outcome
    if status == "Completed":
        assert result["human_answers"] == [{"answerContent": {"label": "cat"}}]


async def test_stopping__longer_than_the_stopping_timeout__stopped_with_the_reason() -> None:
    rig = Rig()
    await _stopping(rig)
    entered = rig.w.clock.epoch()
    while rig.record("r-1").phase is Phase.OPEN:
        rig.advance(60)
        await rig.sweep()  # Describe: still Stopping; rescheduled (updated_at moves on)
        waited = rig.w.clock.epoch() - entered
        assert waited < SETTINGS.stopping_timeout_seconds + 61
    assert waited >= SETTINGS.stopping_timeout_seconds
    result = await _result(rig)
    assert result["outcome"] == "stopped"
    assert "stuck in Stopping" in result["reason"]


async def test_stopping__cancel__acknowledged_and_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig()
    await _stopping(rig)
    seen = Recorder()
    monkeypatch.setattr("a2i_worker.request.canceller.log", seen)
    await rig.cancel("r-1")
    await rig.deliver()
    assert not rig.live_requests()
    assert rig.calls("StopHumanLoop") == 1  # not stopped again
    assert seen.events("info") == ["cancel while the loop is ending; nothing to stop"]
    assert rig.record("r-1").loop_status == "Stopping"


# -- finishing: the loop is terminal, no result yet -------------------------------------


async def test_finishing__completed_with_output__completed_with_the_human_answers() -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.reviewer("r-1", "Completed", answers={"label": "dog"})
    result = await _result(rig)
    assert result["outcome"] == "completed"
    assert [a["answerContent"] for a in result["human_answers"]] == [{"label": "dog"}]
    assert rig.record("r-1").phase is Phase.PUBLISHED


@pytest.mark.parametrize(
    ("output", "code", "tries"),
    [
        ("missing", "output_missing", 3),
        ("denied", "output_access_denied", 3),
        ("unreadable", "output_unreadable", 3),
        ("network", "output_unavailable", 9),  # network trouble: 3 x the tries
    ],
)
async def test_finishing__output_missing_forbidden_or_unreadable__bounded_tries_then_failed(
    output: str, code: str, tries: int
) -> None:
    rig = Rig()
    await rig.opened("r-1")
    if output == "network":
        rig.fail_s3("get_object", client_error("InternalError", "S3 is down", status=500))
    await rig.reviewer("r-1", "Completed", output="present" if output == "network" else output)
    pauses = []
    while (rec := rig.record("r-1")).phase is Phase.OPEN:
        assert rec.next_check_at is not None
        pause = rec.next_check_at.timestamp() - rig.w.clock.epoch()
        pauses.append(pause)
        rig.advance(pause)
        await rig.sweep()
    # one pause per failed try, doubling (capped at 15 minutes)
    assert pauses == [min(900, 30 * 2**i) for i in range(tries - 1)]
    result = await _result(rig)
    assert (result["outcome"], result["failure_code"]) == ("failed", code)


async def test_finishing__expired_with_attempts_left__starting_the_next_attempt() -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.reviewer("r-1", "Expired")
    rec = rig.record("r-1")
    assert (rec.attempt, rec.loop_name) == (2, loop_name(FLOW, "r-1", 2))
    assert rec.phase is Phase.OPEN
    assert rig.loop("r-1", attempt=2).status == "InProgress"  # type: ignore[union-attr]
    assert rig.calls("StartHumanLoop") == 2
    assert await rig.publish() == []


async def test_finishing__expired_with_a_cancel_noted__stopped_without_resubmission() -> None:
    rig = Rig()
    name = await _stopping(rig)
    store = rig.w.a2i.store
    store.finish(name, "Failed", failure_code="Expired", failure_reason="expired")
    await rig.emit(rig.w.a2i.event(store.get(name)))
    result = await _result(rig)
    assert result["outcome"] == "stopped"
    assert result["reason"].startswith("cancelled")
    assert rig.loop("r-1", attempt=2) is None
    assert rig.calls("StartHumanLoop") == 1


async def test_finishing__expired_on_the_last_attempt__expired() -> None:
    rig = Rig()
    await rig.opened("r-1")
    for attempt in range(1, SETTINGS.max_attempts + 1):
        await rig.reviewer("r-1", "Expired", attempt=attempt)
    result = await _result(rig)
    assert (result["outcome"], result["attempt"]) == ("expired", SETTINGS.max_attempts)
    assert rig.calls("StartHumanLoop") == SETTINGS.max_attempts


@pytest.mark.parametrize(("how", "outcome"), [("Stopped", "stopped"), ("InternalError", "failed")])
async def test_finishing__stopped_or_other_failure__stopped_or_failed(
    how: str, outcome: str
) -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.reviewer("r-1", how)  # stopped outside the worker, or failed in A2I
    result = await _result(rig)
    assert result["outcome"] == outcome
    assert rig.calls("StartHumanLoop") == 1


# -- final: done or published -----------------------------------------------------------


async def test_final__duplicate_message__acknowledged_without_a_second_loop_or_result() -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.reviewer("r-1", "Completed")
    await rig.publish()
    await rig.review("r-1")  # redelivered after the result
    await rig.deliver()
    assert not rig.live_requests()
    assert rig.calls("StartHumanLoop") == 1
    assert [r["outcome"] for r in await rig.publish()] == ["completed"]


async def test_final__duplicate_of_a_rejection_without_its_dlq_copy__gets_it_now() -> None:
    rig = Rig()
    real = rig.w.sqs.send_message
    kills = [1]

    async def send(**kw: Any) -> Any:
        if kw["QueueUrl"] == rig.w.queues.requests_dlq and kills[0]:
            kills[0] -= 1
            raise Crash  # killed after the rejection was stored, before its copy
        return await real(**kw)

    setattr(rig.w.sqs, "send_message", send)  # noqa: B010
    rig.w.a2i.answer_next("StartHumanLoop", "AccessDeniedException")
    mid = await rig.review("r-1")
    with pytest.raises(Crash):
        await rig.deliver()
    rec = rig.record("r-1")
    assert rec.phase is Phase.DONE
    assert rec.dlq_copied_at is None
    rig.restart()
    rig.advance(SETTINGS.visibility_timeout_seconds + 1)
    await rig.deliver()  # the message again: the record is final, its copy missing
    assert [m.attributes["a2i_worker_source_message_id"]["StringValue"] for m in rig.dlq()] == [mid]
    assert rig.record("r-1").dlq_copied_at is not None
    assert not rig.live_requests()
    rig.advance(1)
    await rig.review("r-1")  # and once more: the mark says it was sent
    await rig.deliver()
    assert len(rig.dlq()) == 1


async def test_final__cancel__acknowledged_and_logged_as_after_the_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = Rig()
    await rig.opened("r-1")
    await rig.reviewer("r-1", "Completed")
    seen = Recorder()
    monkeypatch.setattr("a2i_worker.request.canceller.log", seen)
    await rig.cancel("r-1")
    await rig.deliver()
    assert not rig.live_requests()
    assert seen.events("info") == ["cancel after the request finished; nothing to stop"]
    assert rig.calls("StopHumanLoop") == 0
    assert [r["outcome"] for r in await rig.publish()] == ["completed"]


async def test_final__results_queue_down__stays_done_and_is_published_once_sqs_accepts() -> None:
    rig = Rig()
    await rig.opened("r-1")
    rig.fail_results_queue(times=2)
    await rig.reviewer("r-1", "Completed")
    for _ in range(2):
        assert await rig.publish() == []  # the outbox scan tries again
        assert rig.record("r-1").phase is Phase.DONE
    assert [r["outcome"] for r in await rig.publish()] == ["completed"]
    assert rig.record("r-1").phase is Phase.PUBLISHED
    assert [r["outcome"] for r in await rig.publish()] == ["completed"]  # sent once


async def test_finishing__duplicate_event_while_output_unreadable__waits_for_the_pause() -> None:
    """A repeated or stale status event does not read output.json again before the
    finisher's pause is over (it would use up one of the bounded tries); once the pause
    is over, it finishes the request as a sweep would."""
    rig = Rig()
    await rig.opened("r-1")
    name = loop_name(FLOW, "r-1", 1)
    body = rig.w.a2i.finish(name, "Completed", output="missing")
    await rig.emit(body)
    rec = rig.record("r-1")
    assert (rec.phase, rec.tries) == (Phase.OPEN, 1)
    await rig.emit(body, times=2)  # EventBridge delivered it again, twice
    await rig.update("r-1", "InProgress")  # and a stale one came late
    assert rig.record("r-1").tries == 1
    assert rec.next_check_at is not None
    rig.advance(rec.next_check_at.timestamp() - rig.w.clock.epoch())
    await rig.emit(body)  # the pause is over: this one may try again
    assert rig.record("r-1").tries == 2
