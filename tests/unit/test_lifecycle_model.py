"""The lifecycle's promises, checked by a model: random interleavings of everything that
can happen to requests, driven through the real roles (built by ``build_roles``) on the
in-memory fakes of their seams (tests/fakes), including crashes between and inside steps.

After every step: one distinct result per request; never two live loops for a request;
a cancel acknowledged before any loop existed means no loop ever; every unfinished
request has its next step (a message in the queue, or a sweeper check); SQS never had
to redrive a message (nothing retried without bound). At the end the clock runs forward,
faults cleared, until everything is quiet: then every request has exactly its one
result, and every rejection its DLQ copy. docs/lifecycle.md, "The model test".
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from a2i_worker.ledger.protocol import Phase
from a2i_worker.naming import loop_name
from a2i_worker.routes import Budget, BudgetPolicy, Route, Routes
from a2i_worker.settings import Settings
from fakes.world import Crash, Process, World, only_crashes

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/model-flow"
ROUTES = Routes(
    {
        "main": Route("main", FLOW),
        "budgeted": Route("budgeted", FLOW, budget=Budget(1, None, BudgetPolicy.DEFER)),
    }
)
SETTINGS = Settings(
    overdue_after_seconds=900,
    sweep_interval_seconds=60,
    max_receives=6,
    output_tries=3,
    max_attempts=2,
    start_timeout_seconds=6 * 3600,
    stopping_timeout_seconds=1800,
    start_wait_seconds=60,
    visibility_timeout_seconds=120,
)
#: Request ids and what each one is: the route, and where its input is.
REQUESTS = {
    "r0": ("main", "inline"),
    "r1": ("budgeted", "inline"),
    "r2": ("main", "s3"),
    "r3": ("budgeted", "inline"),
    "r4": ("main", "s3-missing"),
}
RIDS = sorted(REQUESTS)
LOOPS = {loop_name(FLOW, rid, a): rid for rid in RIDS for a in (1, 2)}
JUMPS = [1, 5, 30, 61, 300, 1000, 3700, 7 * 3600, 25 * 3600]
START_ANSWERS = [
    ("ThrottlingException",),
    ("ThrottlingException",) * 4,
    ("ServiceQuotaExceededException",),
    ("ValidationException",),
    ("AccessDeniedException",),
    ("InternalServerException",),
]
MAX_CRASHES = 2


def _body(rid: str) -> str:
    route, where = REQUESTS[rid]
    msg: dict[str, Any] = {"version": 1, "type": "review", "request_id": rid, "route": route}
    if where == "inline":
        msg["input"] = {"text": f"hello {rid}"}
    else:
        msg["input_s3_uri"] = f"s3://inputs/{rid}.json"
    return json.dumps(msg)


class LifecycleModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world: World | None = None
        self.proc: Process | None = None
        self.sent: set[str] = set()
        self.cancel_before_loop: set[str] = set()
        self.crashes = 0
        self.crash_in: int | None = None

    # -- plumbing ---------------------------------------------------------------------

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @property
    def p(self) -> Process:
        assert self.proc is not None
        return self.proc

    def _run(self, coro: Any) -> Any:
        try:
            return self.loop.run_until_complete(coro)
        except BaseException as exc:
            if not only_crashes(exc):
                raise
            self._restart()
            return None

    def _restart(self) -> None:
        self.crash_in = None
        self.proc = Process(self.w)

    def _hook(self, _what: str) -> None:
        if self.crash_in is None:
            return
        self.crash_in -= 1
        if self.crash_in <= 0:
            self.crash_in = None
            self.crashes += 1
            raise Crash

    def _loops_of(self, rid: str) -> list[Any]:
        loops = (self.w.a2i.loop(name) for name, owner in LOOPS.items() if owner == rid)
        return [lp for lp in loops if lp is not None]

    async def _send(self, body: str) -> None:
        await self.w.sqs.send_message(QueueUrl=self.w.queues.requests, MessageBody=body)

    async def _emit(self, body: str | None, fate: str) -> None:
        if body is None or fate == "lost":
            return
        for _ in range(2 if fate == "twice" else 1):
            await self.w.sqs.send_message(QueueUrl=self.w.queues.events, MessageBody=body)

    # -- rules ------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1), first=st.sets(st.sampled_from(RIDS), min_size=1))
    def start_world(self, seed: int, first: set[str]) -> None:
        """A fresh world (the SQS receive order drawn from ``seed``) and a few requests."""
        self.world = World(SETTINGS, ROUTES, FLOW, random.Random(seed))
        self.world.s3.put("inputs", "r2.json", b'{"text": "from s3"}')
        self.world.ledger.before_call = self._hook
        self.proc = Process(self.world)
        for rid in sorted(first):
            self.new_request(rid)

    @rule(rid=st.sampled_from(RIDS))
    def new_request(self, rid: str) -> None:
        """A request message (a second one for the same id is a duplicate delivery)."""
        self.sent.add(rid)
        self._run(self._send(_body(rid)))

    @rule(rid=st.sampled_from(RIDS))
    def cancel(self, rid: str) -> None:
        self._run(self._send(json.dumps({"version": 1, "type": "cancel", "request_id": rid})))

    @rule()
    def deliver_request(self) -> None:
        q = self.w.sqs.queue(self.w.queues.requests)
        before = {m.message_id for m in q.live()}
        records = {r.request_id: r for r in self.w.ledger.records()}
        # before any loop: no loop in A2I, and the request not finished (or not seen) yet
        unstarted = {
            rid
            for rid in RIDS
            if not self._loops_of(rid)
            and (rid not in records or records[rid].phase in (Phase.RECEIVED, Phase.STARTING))
        }
        self._run(self.p.request())
        for m in q.messages.values():
            if m.message_id in before and m.deleted:
                body = json.loads(m.body)
                rid = body.get("request_id")
                if body.get("type") == "cancel" and rid in unstarted:
                    self.cancel_before_loop.add(rid)

    @rule()
    def deliver_event(self) -> None:
        self._run(self.p.event())

    @rule(
        pick=st.integers(0, 20),
        outcome=st.sampled_from(["Completed", "Completed", "Expired", "InternalError"]),
        output=st.sampled_from(["present", "present", "missing", "unreadable", "denied"]),
        fate=st.sampled_from(["once", "once", "twice", "lost"]),
    )
    def reviewer_finishes(self, pick: int, outcome: Any, output: Any, fate: str) -> None:
        live = [n for n in LOOPS if (lp := self.w.a2i.loop(n)) and lp.status == "InProgress"]
        if live:
            body = self.w.a2i.finish(live[pick % len(live)], outcome, output=output)
            self._run(self._emit(body, fate))

    @rule(pick=st.integers(0, 20), fate=st.sampled_from(["once", "twice", "lost"]))
    def stop_settles(self, pick: int, fate: str) -> None:
        stopping = [n for n in LOOPS if (lp := self.w.a2i.loop(n)) and lp.status == "Stopping"]
        if stopping:
            body = self.w.a2i.finish(stopping[pick % len(stopping)], "Stopped")
            self._run(self._emit(body, fate))

    @rule(codes=st.sampled_from(START_ANSWERS))
    def a2i_answers_starts(self, codes: tuple[str, ...]) -> None:
        self.w.a2i.answer_next("StartHumanLoop", *codes)

    @rule(code=st.sampled_from(["ThrottlingException", "InternalServerException"]))
    def a2i_answers_describe(self, code: str) -> None:
        self.w.a2i.answer_next("DescribeHumanLoop", code)

    @rule(cap=st.sampled_from([None, 1, 2]))
    def a2i_quota(self, cap: int | None) -> None:
        self.w.a2i.max_in_progress = cap

    @rule()
    def sweep(self) -> None:
        self._run(self.p.roles.sweeper.sweep_once())

    @rule()
    def publish(self) -> None:
        self._run(self.p.publish())

    @rule(seconds=st.sampled_from(JUMPS))
    def time_passes(self, seconds: int) -> None:
        self.w.clock.advance(seconds)
        if seconds >= 60:
            self.p.gate.reopen()  # the real gate probes again after a while

    @rule()
    def restart(self) -> None:
        """Crash between two steps: the process's memory is gone, the world stays."""
        self._restart()

    @rule(calls=st.integers(1, 12))
    @precondition(lambda self: self.crashes < MAX_CRASHES)
    def crash_soon(self, calls: int) -> None:
        """Crash inside a later step: at the ``calls``-th ledger call from now."""
        self.crash_in = calls

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def one_result_per_request(self) -> None:
        if self.world is None:
            return
        ids: dict[str, set[str]] = {}
        for res in self.w.results():
            ids.setdefault(res["request_id"], set()).add(res["result_id"])
        many = {rid: r for rid, r in ids.items() if len(r) > 1}
        assert not many, f"more than one result: {many}"

    @invariant()
    def never_two_live_loops(self) -> None:
        if self.world is None:
            return
        for rid in RIDS:
            live = [
                lp.name for lp in self._loops_of(rid) if lp.status in ("InProgress", "Stopping")
            ]
            assert len(live) <= 1, f"{rid} has two live loops: {live}"
        assert not self.w.a2i.store.names_started_more_than_once

    @invariant()
    def cancel_before_a_loop_means_no_loop(self) -> None:
        if self.world is None:
            return
        for rid in self.cancel_before_loop:
            assert not self._loops_of(rid), f"{rid} was cancelled before it had a loop"

    @invariant()
    def every_unfinished_request_has_a_next_step(self) -> None:
        if self.world is None:
            return
        live = [json.loads(m.body) for m in self.w.sqs.queue(self.w.queues.requests).live()]
        waiting = {b.get("request_id") for b in live if b.get("type") == "review"}
        results = {r["request_id"] for r in self.w.results()}
        records = {r.request_id: r for r in self.w.ledger.records()}
        for rid in self.sent:
            rec = records.get(rid)
            if rec is None or rec.phase is Phase.RECEIVED:
                assert rid in waiting or rid in results or _rejected(records, rid), (
                    f"{rid} ({rec.phase if rec else 'no record'}) has no message and no result"
                )
            elif rec.phase in (Phase.STARTING, Phase.OPEN):
                assert rec.next_check_at is not None, f"{rid} is {rec.phase} with no check"

    @invariant()
    def no_message_retried_without_bound(self) -> None:
        if self.world is None:
            return
        for url in (self.w.queues.requests, self.w.queues.events):
            q = self.w.sqs.queue(url)
            assert not q.redriven, f"SQS had to redrive {[m.body for m in q.redriven]}"

    @invariant()
    def no_role_met_a_bug(self) -> None:
        """Every failure the fakes inject is an AWS answer: none may be taken for a bug."""
        if self.proc is not None:
            assert not self.p.bugs(), f"taken for a bug (traceback, counted): {self.p.bugs()}"

    # -- the end ----------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if self.world is not None:
                self._quiesce()
        finally:
            self.loop.close()

    def _quiesce(self) -> None:
        w = self.w
        w.a2i.max_in_progress = None
        w.a2i.clear_script()
        self.crash_in = None
        for _ in range(300):
            if self._quiet():
                break
            self._run(self._drain())
            self._run(self.p.roles.sweeper.sweep_once())
            self._run(self.p.publish())
            w.clock.advance(600)
            self.p.gate.reopen()
        assert self._quiet(), self._why_not_quiet()
        self.one_result_per_request()
        self.no_message_retried_without_bound()
        results: dict[str, list[dict[str, Any]]] = {}
        for res in w.results():
            results.setdefault(res["request_id"], []).append(res)
        assert set(results) >= self.sent, f"no result for {self.sent - set(results)}"
        for rid in self.cancel_before_loop:
            assert {r["outcome"] for r in results[rid]} == {"stopped"}, results[rid]
        for outcome in sorted({r["outcome"] for rs in results.values() for r in rs}):
            event(f"outcome {outcome}")
        event(f"crashes {self.crashes}")
        event(f"cancelled before a loop: {bool(self.cancel_before_loop)}")
        event(f"loops started: {min(3, len(w.a2i.store))}")
        copies: dict[str, int] = {}
        for m in w.dlq():
            rid_attr = m.attributes.get("a2i_worker_result_id", {}).get("StringValue")
            assert rid_attr, f"a DLQ message without a rejection: {m.body}"
            copies[rid_attr] = copies.get(rid_attr, 0) + 1
        for rs in results.values():
            for r in rs:
                if r["outcome"] == "rejected":
                    n = copies.get(r["result_id"], 0)
                    assert 1 <= n <= 1 + self.crashes, f"{n} DLQ copies of {r['result_id']}"

    async def _drain(self) -> None:
        w, p = self.w, self.p
        while await p.request() or await p.event():
            pass
        for name in LOOPS:
            lp = w.a2i.loop(name)
            if lp is not None and lp.status == "InProgress":
                await self._emit(w.a2i.finish(name, "Completed"), "once")
        while await p.event():
            pass

    def _quiet(self) -> bool:
        w = self.w
        if w.sqs.queue(w.queues.requests).live() or w.sqs.queue(w.queues.events).live():
            return False
        if not self.sent <= {r["request_id"] for r in w.results()}:
            return False
        return all(r.phase is Phase.PUBLISHED for r in w.ledger.records())

    def _why_not_quiet(self) -> str:
        return f"not quiet after the clock ran on: {self.w.describe()}"


def _rejected(records: dict[str, Any], rid: str) -> bool:
    return any(
        (r.result or {}).get("request_id") == rid and r.phase is not Phase.RECEIVED
        for r in records.values()
    )


_QUICK = settings(  # max_examples: the profile's, at least 200
    max_examples=max(200, settings().max_examples), stateful_step_count=50, deadline=None
)

TestLifecycleModel = LifecycleModel.TestCase
TestLifecycleModel.settings = _QUICK  # the default suite: quick


@pytest.mark.chaos
@pytest.mark.timeout(1800)
def test_lifecycle_model_long() -> None:
    """``make chaos``: many more and longer interleavings."""
    run = settings(_QUICK, max_examples=2000, stateful_step_count=100)
    run_state_machine_as_test(LifecycleModel, settings=run)
