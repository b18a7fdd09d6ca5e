"""The pure ledger state machine: examples, then a Hypothesis stateful model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from a2i_worker.ledger import transitions as tr
from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    ClaimOutcome,
    LedgerRecord,
    LoopUpdate,
    Phase,
    StartPayload,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAYLOAD = StartPayload("arn:flow/a", "{}")


def _start(rec: LedgerRecord, attempt: int, name: str, *expected: Phase) -> LedgerRecord | None:
    return tr.start(
        rec,
        expected=expected or (Phase.RECEIVED,),
        attempt=attempt,
        loop_name=name,
        decision=None,
        context=None,
        payload=PAYLOAD,
        next_check_at=T0,
        now=T0,
    )


def _upd(name: str, status: str) -> LoopUpdate:
    return LoopUpdate(loop_name=name, status=status, observed_at=T0)


def test_new_record_and_claim_outcomes() -> None:
    rec = tr.new_record("r", "fp", route=None, received_at=T0)
    assert (rec.phase, rec.version, rec.received_at) == (Phase.RECEIVED, 1, T0)
    assert tr.claim_outcome(rec, "fp") is ClaimOutcome.EXISTING
    assert tr.claim_outcome(rec, "other") is ClaimOutcome.MISMATCH


def test_start_refuses_what_could_duplicate_a_loop() -> None:
    rec = tr.new_record("r", "fp", route=None, received_at=T0)
    assert _start(rec, 0, "l0") is None  # attempts count from 1
    s = _start(rec, 1, "l1")
    assert s is not None
    assert s.version == 2
    # same attempt under another name, from STARTING
    assert _start(s, 1, "other", Phase.STARTING) is None
    # retrying the same attempt and name from STARTING is allowed when asked for
    again = _start(s, 1, "l1", Phase.STARTING)
    assert again is not None
    assert again.loop_name == "l1"
    opened = tr.open_loop(
        s, loop_name="l1", loop_arn="a", loop_created_at=T0, next_check_at=T0, now=T0
    )
    assert opened[0]
    assert opened[1] is not None
    o = opened[1]
    assert _start(o, 2, "l2", Phase.OPEN) is None  # loop still InProgress
    failed = tr.apply_update(o, _upd("l1", "Failed"), now=T0)
    assert failed is not None
    assert _start(failed, 1, "l1", Phase.OPEN) is None  # same attempt cannot restart
    nxt = _start(failed, 2, "l2", Phase.OPEN)
    assert nxt is not None
    assert (nxt.phase, nxt.attempt, nxt.loop_status, nxt.loop_arn) == (
        Phase.STARTING,
        2,
        None,
        None,
    )


def test_unknown_status_and_other_loops_are_ignored() -> None:
    rec = _start(tr.new_record("r", "fp", route=None, received_at=T0), 1, "l1")
    assert rec is not None
    assert tr.apply_update(rec, _upd("l1", "Paused"), now=T0) is None
    assert tr.apply_update(rec, _upd("l0", "Completed"), now=T0) is None


def test_naive_datetimes_raise() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        tr.ensure_utc(datetime(2026, 1, 1))


def test_reschedule_only_while_watched() -> None:
    rec = tr.new_record("r", "fp", route=None, received_at=T0)
    assert tr.reschedule(rec, T0, now=T0) is None
    s = _start(rec, 1, "l1")
    assert s is not None
    assert tr.reschedule(s, T0, now=T0) is None  # unchanged
    moved = tr.reschedule(s, T0 + timedelta(1), now=T0)
    assert moved is not None
    assert moved.next_check_at == T0 + timedelta(1)


STATUSES = ["InProgress", "Stopping", "Completed", "Failed", "Stopped", "Weird"]
PHASE_SETS = st.sets(st.sampled_from(list(Phase)), min_size=1).map(tuple)


class LedgerMachine(RuleBasedStateMachine):
    """Random claims, starts, duplicate and out-of-order updates, results, publishes.

    The machine applies the pure transitions to records held in a dict (a perfect
    store) and checks the promises the product rests on after every step.
    """

    rids = Bundle("rids")

    def __init__(self) -> None:
        super().__init__()
        self.records: dict[str, LedgerRecord] = {}
        self.names_used: dict[str, list[str]] = {}  # rid -> loop names, in order
        self.results: dict[str, list[str]] = {}  # rid -> result_ids accepted
        self.was_done: set[str] = set()
        self.clock = T0

    def _now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _store(self, old: LedgerRecord, new: LedgerRecord | None) -> None:
        if new is None:
            return
        assert new.version == old.version + 1
        assert new.request_id == old.request_id
        # a terminal loop status never changes while it is the record's loop
        if old.loop_status in TERMINAL_LOOP_STATUSES and new.loop_name == old.loop_name:
            assert new.loop_status == old.loop_status
        # the phase only moves forward, except OPEN -> STARTING for a later attempt
        order = list(Phase)
        if order.index(new.phase) < order.index(old.phase):
            assert (old.phase, new.phase) == (Phase.OPEN, Phase.STARTING)
            assert old.loop_status in TERMINAL_LOOP_STATUSES
            assert new.attempt > old.attempt
        if old.phase in tr.FINAL_PHASES:
            assert new.phase is Phase.PUBLISHED
            assert new.result_id == old.result_id
        if new.phase is Phase.PUBLISHED:
            assert new.request_id in self.was_done
        if new.phase is Phase.DONE:
            self.was_done.add(new.request_id)
        if new.loop_name is not None and new.loop_name != old.loop_name:
            self.names_used.setdefault(new.request_id, []).append(new.loop_name)
        self.records[new.request_id] = new

    @rule(target=rids, rid=st.sampled_from(["a", "b", "c"]), fp=st.sampled_from(["f1", "f2"]))
    def claim(self, rid: str, fp: str) -> str:
        existing = self.records.get(rid)
        if existing is None:
            self.records[rid] = tr.new_record(rid, fp, route=None, received_at=self._now())
        else:
            outcome = tr.claim_outcome(existing, fp)
            assert (outcome is ClaimOutcome.EXISTING) == (existing.fingerprint == fp)
        return rid

    @rule(rid=rids, expected=PHASE_SETS, attempt=st.integers(1, 4), same_name=st.booleans())
    def start(self, rid: str, expected: tuple[Phase, ...], attempt: int, same_name: bool) -> None:
        old = self.records[rid]
        name = f"{rid}-{attempt}" if same_name else f"{rid}-{attempt}-x"
        new = _start(old, attempt, name, *expected)
        if new is not None:
            assert old.phase in expected
            assert new.phase is Phase.STARTING
            assert attempt >= old.attempt
        self._store(old, new)

    @rule(rid=rids, current=st.booleans())
    def open(self, rid: str, current: bool) -> None:
        old = self.records[rid]
        name = old.loop_name if current and old.loop_name else "someone-else"
        ok, new = tr.open_loop(
            old,
            loop_name=name,
            loop_arn="arn",
            loop_created_at=None,
            next_check_at=T0,
            now=self._now(),
        )
        if ok:
            assert old.phase in tr.ACTIVE_PHASES
        else:
            assert new is None
        self._store(old, new)

    @rule(rid=rids, status=st.sampled_from(STATUSES), which=st.integers(0, 3))
    def update(self, rid: str, status: str, which: int) -> None:
        """An update for the current loop or for an older attempt's loop (stale)."""
        old = self.records[rid]
        names = self.names_used.get(rid, [])
        if not names:
            return
        name = names[-1 - min(which, len(names) - 1)]
        new = tr.apply_update(old, _upd(name, status), now=self._now())
        if new is not None:
            assert name == old.loop_name
            assert old.loop_status not in TERMINAL_LOOP_STATUSES
            assert new.phase is Phase.OPEN
        self._store(old, new)

    @rule(rid=rids, expected=PHASE_SETS, result_id=st.sampled_from(["r1", "r2"]))
    def store_result(self, rid: str, expected: tuple[Phase, ...], result_id: str) -> None:
        old = self.records[rid]
        new = tr.store_result(
            old,
            expected=expected,
            result={"id": result_id},
            result_id=result_id,
            decision=None,
            now=self._now(),
        )
        if new is not None:
            self.results.setdefault(rid, []).append(result_id)
        self._store(old, new)

    @rule(rid=rids, result_id=st.sampled_from(["r1", "r2"]))
    def publish(self, rid: str, result_id: str) -> None:
        old = self.records[rid]
        new = tr.publish(old, result_id, now=self._now())
        if new is not None:
            assert old.phase is Phase.DONE
            assert old.result_id == result_id
        self._store(old, new)

    @precondition(lambda self: bool(self.records))
    @rule(rid=consumes(rids))
    def forget_handle(self, rid: str) -> None:
        """Drop a handle from the bundle (the record stays): keeps sequences varied."""

    @invariant()
    def one_result_per_request(self) -> None:
        for rid, ids in self.results.items():
            assert len(ids) <= 1
            assert self.records[rid].result_id == ids[0]

    @invariant()
    def published_only_after_done(self) -> None:
        for rid, rec in self.records.items():
            if rec.phase is Phase.PUBLISHED:
                assert rid in self.was_done
            if rec.phase in tr.FINAL_PHASES:
                assert rec.result_id is not None


LedgerMachine.TestCase.settings = settings(stateful_step_count=40, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
