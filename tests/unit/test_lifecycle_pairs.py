"""docs/lifecycle.md, one test per row: the stages before a loop exists (none, received,
deferred) and the rows of any stage (transient trouble, bugs).

Each test drives the real roles (``build_roles``, as the worker builds them) on the
in-memory fakes (tests/fakes) through :class:`~test_lifecycle_pairs_rig.Rig`, and is
named ``test_<stage>__<event>__<outcome>`` after its row. The stages from *starting*
on are in test_lifecycle_pairs_loops.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_lifecycle_pairs_rig import Recorder, Rig, budget_routes, review_body

from a2i_worker.ledger.protocol import Phase
from a2i_worker.request.inputs import INPUT_CONTENT_LIMIT
from a2i_worker.request.rejecter import rejection_key
from a2i_worker.routes import BudgetPolicy
from a2i_worker.sqs_types import Verdict
from fakes import client_error
from fakes.world import Crash


def _attr(msg: Any, name: str) -> str:
    return str(msg.attributes[f"a2i_worker_{name}"]["StringValue"])


async def _deferred(rig: Rig, rid: str = "r-1") -> str:
    """``r-0`` spends the route's budget; ``rid`` is deferred (RECEIVED, message kept)."""
    await rig.review("r-0", "budgeted")
    await rig.deliver()
    mid = await rig.review(rid, "budgeted")
    await rig.deliver()
    assert rig.record(rid).phase is Phase.RECEIVED
    return mid


# -- none: no record yet ---------------------------------------------------------------


async def test_none__review_message__decided_and_stored_in_one_write() -> None:
    rig = Rig()
    await rig.review("r-1")
    await rig.deliver()
    rec = rig.record("r-1")
    # one write stored the decided record as STARTING, one more marked it open
    assert rig.w.ledger.writes == 2
    assert rec.phase is Phase.OPEN
    assert rec.decision is not None
    assert rec.decision["activated"] is True
    await rig.review("r-2", "shadow")
    await rig.deliver()
    shadow = rig.record("r-2")
    assert rig.w.ledger.writes == 3  # the shadow request: stored final at once
    assert shadow.phase is Phase.DONE
    assert shadow.result is not None
    assert shadow.result["outcome"] == "not_activated"
    assert rig.calls("StartHumanLoop") == 1
    assert not rig.live_requests()


@pytest.mark.parametrize("body", ["{not json", review_body("r-1", "nowhere")])
async def test_none__unparsable_or_unknown_route__rejected_under_a_body_key_with_one_dlq_copy(
    body: str,
) -> None:
    rig = Rig()
    mid = await rig.send(body)
    await rig.deliver()
    unparsable = body.startswith("{not")
    key = rejection_key("msg", body) if unparsable else rejection_key("req", "r-1", body)
    rec = rig.record(key)
    assert rec.result is not None
    assert rec.result["outcome"] == "rejected"
    assert rec.source_message_id == mid
    assert rec.dlq_copied_at is not None
    assert "r-1" not in {r.request_id for r in rig.w.ledger.records()}
    assert not rig.live_requests()
    await rig.send(body)  # the same message again (a producer's retry)
    await rig.deliver()
    assert [_attr(m, "source_message_id") for m in rig.dlq()] == [mid]
    assert [m.body for m in rig.dlq()] == [body]
    assert [r["outcome"] for r in await rig.publish()] == ["rejected"]


async def test_none__cancel__tombstone_stopped_and_the_request_never_starts() -> None:
    rig = Rig()
    await rig.cancel("r-1")
    await rig.deliver()
    rec = rig.record("r-1")
    assert rec.phase is Phase.DONE
    assert rec.result is not None
    assert rec.result["outcome"] == "stopped"
    assert rec.result["reason"] == "cancelled before the request arrived"
    await rig.review("r-1")  # SQS does not keep order: the request comes after its cancel
    await rig.deliver()
    assert not rig.live_requests()
    assert rig.calls("StartHumanLoop") == 0
    assert [r["outcome"] for r in await rig.publish()] == ["stopped"]


# -- received (deferred: received with its message delayed by a budget) -----------------


async def test_received__duplicate_message_after_a_crash__decided_again_and_started() -> None:
    # one loop an hour: the redelivered message must find its own take, not a spent budget
    rig = Rig(routes=budget_routes(per_hour=1))
    calls: list[str] = []

    def crash_at_the_first_write(what: str) -> None:
        calls.append(what)
        if what == "write" and calls.count("write") == 1:
            raise Crash

    rig.w.ledger.before_call = crash_at_the_first_write
    await rig.review("r-1", "budgeted")
    with pytest.raises(Crash):
        await rig.deliver()  # claimed (RECEIVED), then killed before the decision was stored
    assert rig.record("r-1").phase is Phase.RECEIVED
    rig.restart()
    rig.advance(rig.settings.visibility_timeout_seconds + 1)
    await rig.deliver()  # the same message, redelivered
    rec = rig.record("r-1")
    assert rec.phase is Phase.OPEN
    assert rec.decision is not None
    assert rig.loop("r-1") is not None
    assert rig.calls("StartHumanLoop") == 1
    assert not rig.live_requests()
    assert set(rig.w.ledger.budgets.used.values()) == {1}  # counted once


async def test_received__conflicting_message__rejected_under_its_own_key_request_untouched() -> (
    None
):
    rig = Rig(routes=budget_routes())
    await _deferred(rig)
    before = rig.record("r-1")
    other = review_body("r-1", "budgeted", input={"text": "something else"})
    await rig.send(other)
    await rig.deliver()
    key = rejection_key("dup", "r-1", "duplicate_request_id", other)
    rejected = rig.record(key)
    assert rejected.result is not None
    assert rejected.result["outcome"] == "rejected"
    assert rejected.result["rejection_code"] == "duplicate_request_id"
    assert rejected.result["request_id"] == "r-1"
    assert [_attr(m, "rejection_code") for m in rig.dlq()] == ["duplicate_request_id"]
    assert [m.body for m in rig.dlq()] == [other]
    assert rig.record("r-1") == before  # the deferred request goes on as it was


async def test_received__cancel__stopped_and_its_delayed_message_never_starts_a_loop() -> None:
    rig = Rig(routes=budget_routes())
    mid = await _deferred(rig)
    await rig.cancel("r-1")
    await rig.drain()
    rec = rig.record("r-1")
    assert rec.phase is Phase.DONE
    assert rec.result is not None
    assert rec.result["outcome"] == "stopped"
    rig.advance(3601)  # the budget's window opens: the deferred message comes back
    await rig.drain()
    assert rig.message(mid).deleted
    assert rig.loop("r-1") is None
    assert {r["request_id"]: r["outcome"] for r in await rig.publish()}["r-1"] == "stopped"


async def test_received_or_deferred__budget_granted__starting_then_open() -> None:
    rig = Rig(routes=budget_routes())
    await _deferred(rig)
    assert rig.record("r-0").phase is Phase.OPEN  # the budget was granted at once
    assert rig.loop("r-1") is None
    rig.advance(3601)  # the next hour's budget
    await rig.drain()
    rec = rig.record("r-1")
    assert rec.phase is Phase.OPEN
    assert rig.loop("r-1") is not None
    assert not rig.live_requests()


async def test_received__budget_spent__deferred_then_requeued_as_a_fresh_delayed_copy() -> None:
    rig = Rig(routes=budget_routes())
    mid = await _deferred(rig)
    held = rig.message(mid)
    assert not held.deleted
    assert held.visible_at - rig.w.clock.epoch() == pytest.approx(3600, abs=2)  # the window
    body = review_body("r-1", "budgeted")
    assert await rig.handle(body, receive_count=3) == Verdict.DELETE
    copies = [m for m in rig.live_requests() if m.message_id != mid]
    assert [m.body for m in copies] == [body]
    assert copies[0].visible_at - rig.w.clock.epoch() == 900  # SQS's longest delay
    assert rig.record("r-1").phase is Phase.RECEIVED


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [(BudgetPolicy.REJECT, "rejected"), (BudgetPolicy.SAMPLE, "not_activated")],
)
async def test_received__budget_spent__rejected_or_not_activated_per_policy(
    policy: BudgetPolicy, outcome: str
) -> None:
    rig = Rig(routes=budget_routes(policy))
    await rig.review("r-0", "budgeted")
    await rig.review("r-1", "budgeted")
    await rig.drain()
    results = {r["request_id"]: r for r in await rig.publish()}
    assert results["r-1"]["outcome"] == outcome
    assert rig.loop("r-1") is None
    assert not rig.live_requests()
    if outcome == "rejected":
        assert results["r-1"]["rejection_code"] == "budget_exhausted"
        assert [_attr(m, "rejection_code") for m in rig.dlq()] == ["budget_exhausted"]
    else:
        assert "budget" in results["r-1"]["reason"]
        assert not rig.dlq()


@pytest.mark.parametrize(
    ("stored", "code"),
    [
        (None, "input_not_found"),
        (b"secret", "input_access_denied"),
        (b"{not json", "input_not_json"),
        (json.dumps({"t": "x" * INPUT_CONTENT_LIMIT}).encode(), "input_too_large"),
    ],
)
async def test_received__input_missing_unreadable_or_too_large__rejected_with_one_dlq_copy(
    stored: bytes | None, code: str
) -> None:
    rig = Rig()
    if stored is not None:
        rig.w.s3.put("inputs", "r-1.json", stored)
    if code == "input_access_denied":
        rig.w.s3.deny("inputs", "r-1.json")
    mid = await rig.review("r-1", input_s3_uri="s3://inputs/r-1.json")
    await rig.deliver()
    rec = rig.record("r-1")
    assert rec.result is not None
    assert rec.result["outcome"] == "rejected"
    assert rec.result["rejection_code"] == code
    assert [(_attr(m, "rejection_code"), _attr(m, "source_message_id")) for m in rig.dlq()] == [
        (code, mid)
    ]
    assert not rig.live_requests()
    assert rig.calls("StartHumanLoop") == 0


async def _fail_until_the_last_receive(rig: Rig) -> list[float]:
    """Deliver until the message is gone; the visibility each RETRY set."""
    delays = []
    while rig.live_requests():
        rig.advance(600)
        await rig.deliver()
        for m in rig.live_requests():
            delays.append(m.visible_at - rig.w.clock.epoch())
    return delays


async def test_received__transient_error__handed_back_doubling_then_retries_exhausted() -> None:
    rig = Rig()
    rig.fail_s3("head_object", client_error("InternalError", "S3 is down", status=500))
    await rig.review("r-1", input_s3_uri="s3://inputs/r-1.json")
    assert await _fail_until_the_last_receive(rig) == [5, 10, 20]  # receives 1-3 of 4
    results = await rig.publish()
    assert [(r["request_id"], r["outcome"], r["rejection_code"]) for r in results] == [
        ("r-1", "rejected", "retries_exhausted")
    ]
    assert [_attr(m, "rejection_code") for m in rig.dlq()] == ["retries_exhausted"]
    assert not rig.w.sqs.queue(rig.w.queues.requests).redriven
    assert rig.p.bugs() == []


async def test_any__bug__logged_with_traceback_counted_backed_off_then_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = Recorder()
    monkeypatch.setattr("a2i_worker.request.handler.log", seen)
    rig = Rig()
    rig.fail_s3("head_object", KeyError("a bug"))
    await rig.review("r-1", input_s3_uri="s3://inputs/r-1.json")
    assert await _fail_until_the_last_receive(rig) == [5, 10, 20]
    assert seen.events("exception") == ["unexpected error handling a request (a bug)"] * 4
    assert rig.p.bugs() == [({"role": "requests"}, 4.0)]
    results = await rig.publish()
    assert [(r["request_id"], r["rejection_code"]) for r in results] == [("r-1", "internal_error")]
    assert [_attr(m, "rejection_code") for m in rig.dlq()] == ["internal_error"]
