"""The lifecycle's defects, each as a named case against the in-memory fakes.

The ledger is the real SQLite ledger on a temp file (no network); SQS, S3 and the A2I
runtime (behind the real gateway) are tests/fakes, the publisher is the real one, and the
clock is a :class:`~fakes.ManualClock`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError

from a2i_worker.a2i import A2IGateway
from a2i_worker.classify import ErrorKind, classify
from a2i_worker.finisher import Finisher, FinisherConfig
from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import LoopUpdate, Phase, StartPayload
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.messages import CancelRequest
from a2i_worker.request.canceller import Canceller
from a2i_worker.request.rejecter import Rejecter
from a2i_worker.request.starter import StartConfig, Starter, StartResult
from a2i_worker.results import Publisher
from a2i_worker.routes import Routes
from a2i_worker.sqs_types import SqsMessage, Verdict
from fakes import FakeA2IRuntime, FakeGate, FakeLimiter, FakeS3, FakeSqs, ManualClock, client_error

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"


def _client_error(code: str, status: int) -> ClientError:
    return client_error(code, "x", status=status)


@dataclass
class Seams:
    """The roles' seams, from tests/fakes: SQS (with a requests DLQ and a results
    queue), S3, the A2I runtime behind the real gateway, and the real publisher."""

    clock: ManualClock
    sqs: FakeSqs = field(init=False)
    s3: FakeS3 = field(default_factory=FakeS3)
    a2i: FakeA2IRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.sqs = FakeSqs(self.clock)
        self.dlq = self.sqs.add_queue("requests-dlq")
        self.results = self.sqs.add_queue("results")
        self.a2i = FakeA2IRuntime(self.clock, s3=self.s3)
        self.a2i.add_flow(FLOW)
        self.gateway = A2IGateway(
            cast(Any, self.a2i), FakeLimiter(), FakeGate(), transient_attempts=1
        )

    def publisher(self, ledger: Any) -> Publisher:
        return Publisher(ledger, cast(Any, self.sqs), self.results)

    async def published(self, publisher: Publisher, ledger: Any) -> list[dict[str, Any]]:
        for rec in await ledger.unpublished(100):
            publisher.notify(rec)
        await publisher.flush()
        return [json.loads(m.body) for m in self.sqs.queue(self.results).sent]


@pytest.fixture
async def ledger(tmp_path: Path) -> Any:
    clock = ManualClock()
    led = SqliteLedger(tmp_path / "l.db", clock=clock)
    await led.open()
    led.test_clock = clock  # type: ignore[attr-defined]
    yield led
    await led.close()


async def _open_record(ledger: SqliteLedger, rid: str = "r-1") -> None:
    now = ledger.test_clock()  # type: ignore[attr-defined]
    await ledger.claim(rid, "fp", route=None, received_at=now)
    await ledger.mark_starting(
        rid,
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name=f"{rid}-loop",
        decision={"activated": True, "fired": []},
        context={"request_id": rid},
        payload=StartPayload(FLOW, '{"a":1}'),
        next_check_at=now,
    )
    await ledger.mark_open(
        rid, loop_name=f"{rid}-loop", loop_arn="arn", loop_created_at=now, next_check_at=now
    )


def _starter(ledger: Any, seams: Seams, pub: Publisher) -> Starter:
    clock = ledger.test_clock
    rejecter = Rejecter(
        ledger=ledger, sqs=cast(Any, seams.sqs), publisher=pub, dlq_url=seams.dlq, clock=clock
    )
    return Starter(
        ledger=ledger,
        gateway=seams.gateway,
        rejecter=rejecter,
        publisher=pub,
        config=StartConfig(),
        clock=clock,
    )


def test_an_exception_that_is_not_an_aws_error_is_a_bug() -> None:
    assert classify(KeyError("x")).kind is ErrorKind.BUG
    assert classify(TypeError("x")).kind is ErrorKind.BUG
    assert classify(_client_error("InternalServerError", 500)).kind is ErrorKind.TRANSIENT


async def test_a2i_unavailable_during_a_sweep_is_not_a_bug(ledger: Any) -> None:
    """Regression (found by the lifecycle model): the gateway's TransientError, raised
    when A2I answers 500 beyond its retries, was classified as a bug, so a sweep of a
    STARTING record logged a traceback and counted unexpected_errors_total."""
    from a2i_worker.errors import TransientError
    from a2i_worker.failures import report_failure
    from a2i_worker.metrics import Metrics

    assert classify(TransientError("DescribeHumanLoop failed: 500")).kind is ErrorKind.TRANSIENT
    clock = ledger.test_clock
    await ledger.claim("r-3", "fp", route=None, received_at=clock.now)
    await ledger.mark_starting(
        "r-3",
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="r-3-loop",
        decision=None,
        context=None,
        payload=StartPayload(FLOW, "{}"),
        next_check_at=clock.now,
    )
    seams, m = Seams(clock), Metrics()
    seams.a2i.answer_next("DescribeHumanLoop", "InternalServerException")
    starter = _starter(ledger, seams, seams.publisher(ledger))
    with pytest.raises(TransientError) as caught:
        await starter.resume(await ledger.get("r-3"), _Log())
    seen = _Log()
    report_failure(seen, caught.value, "resolving", role="sweeper", metrics=m)
    total = m.registry.get_sample_value("a2i_worker_unexpected_errors_total", {"role": "sweeper"})
    assert not total
    assert [c["args"][0] for c in seen.calls] == ["resolving failed"]


def test_validation_is_classified_by_code_never_by_message_text() -> None:
    err = ClientError(
        {"Error": {"Code": "ValidationException", "Message": "name already exists"}}, "Start"
    )
    assert classify(err).kind is ErrorKind.INVALID


async def test_a_stopping_loop_is_timed_from_when_it_entered_stopping(ledger: Any) -> None:
    await _open_record(ledger)
    clock = ledger.test_clock
    clock.now += timedelta(hours=1)
    await ledger.apply_loop_update(LoopUpdate("r-1-loop", "Stopping", clock.now))
    entered = clock.now
    for _ in range(120):  # two simulated hours of reschedules
        clock.now += timedelta(minutes=1)
        await ledger.reschedule("r-1", clock.now + timedelta(minutes=1))
    rec = await ledger.get("r-1")
    assert rec.phase_since == entered
    assert rec.updated_at > entered


async def test_a_missing_output_ends_failed_after_the_configured_tries(ledger: Any) -> None:
    await _open_record(ledger)
    clock = ledger.test_clock
    await ledger.apply_loop_update(
        LoopUpdate("r-1-loop", "Completed", clock.now, output_uri="s3://b/out.json")
    )
    seams = Seams(clock)
    seams.s3.put("b", "other.json", b"{}")  # the bucket exists; output.json does not
    pub = seams.publisher(ledger)
    finisher = Finisher(
        ledger=ledger,
        gateway=seams.gateway,
        s3=cast(Any, seams.s3),
        publisher=pub,
        routes=Routes({}),
        config=FinisherConfig(output_tries=3),
        clock=clock,
    )
    for _ in range(2):
        await finisher.finish(await ledger.get("r-1"))
        assert (await ledger.get("r-1")).phase is Phase.OPEN
    await finisher.finish(await ledger.get("r-1"))
    rec = await ledger.get("r-1")
    assert rec.phase is Phase.DONE
    assert rec.result["outcome"] == "failed"
    assert rec.result["failure_code"] == "output_missing"
    assert [r["outcome"] for r in await seams.published(pub, ledger)] == ["failed"]


async def test_a2i_refusing_a_start_rejects_once_with_one_dlq_copy(ledger: Any) -> None:
    await _open_record(ledger)
    clock = ledger.test_clock
    await ledger.apply_loop_update(
        LoopUpdate("r-1-loop", "Failed", clock.now, failure_code="Expired")
    )
    await ledger.mark_starting(
        "r-1",
        expected=[Phase.OPEN],
        attempt=2,
        loop_name="r-1-loop-2",
        decision=None,
        context={"request_id": "r-1"},
        payload=StartPayload(FLOW, '{"a":1}'),
        next_check_at=clock.now,
    )
    seams = Seams(clock)
    denied = ("AccessDeniedException",) * 2  # A2I refuses every time (a bad IAM policy)
    seams.a2i.answer_next("StartHumanLoop", *denied, message="AWS says: input 'secret'")
    pub = seams.publisher(ledger)
    starter = _starter(ledger, seams, pub)
    rec = await ledger.get("r-1")
    seen = _Log()
    assert await starter.start(rec, seen) is StartResult.REJECTED
    assert await starter.start(rec, _Log()) is StartResult.REJECTED  # e.g. a second sweep
    # AWS's message may echo the input: it is in the result, never in the log.
    assert all("secret" not in repr(kw) for kw in seen.calls)
    assert any(kw.get("code") == "a2i_access_denied" for kw in seen.calls)
    final = await ledger.get("r-1")
    assert final.result["outcome"] == "rejected"
    assert final.dlq_copied_at is not None
    dlq = seams.sqs.queue(seams.dlq).sent
    assert len(dlq) == 1
    attrs = dlq[0].attributes
    assert attrs["a2i_worker_rejection_code"]["StringValue"] == "a2i_access_denied"
    assert [r["outcome"] for r in await seams.published(pub, ledger)] == ["rejected"]
    assert len(seams.a2i.store) == 0  # no loop ever


async def test_a_cancel_before_the_request_arrives_means_no_loop_ever(ledger: Any) -> None:
    seams = Seams(ledger.test_clock)
    pub = seams.publisher(ledger)
    starter = _starter(ledger, seams, pub)
    canceller = Canceller(ledger=ledger, starter=starter, publisher=pub, clock=ledger.test_clock)
    msg = SqsMessage("q", "m-1", "h", "{}", 1, None)
    verdict = await canceller.cancel(msg, CancelRequest(type="cancel", request_id="r-9"))
    assert verdict == Verdict.DELETE
    rec = await ledger.get("r-9")
    assert rec.phase is Phase.DONE
    assert rec.result["outcome"] == "stopped"
    assert Canceller.is_tombstone(rec)


async def test_a_cancel_while_starting_stops_the_loop_once_it_exists(ledger: Any) -> None:
    clock = ledger.test_clock
    await ledger.claim("r-2", "fp", route=None, received_at=clock.now)
    await ledger.mark_starting(
        "r-2",
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="r-2-loop",
        decision=None,
        context=None,
        payload=StartPayload(FLOW, "{}"),
        next_check_at=clock.now,
    )
    seams = Seams(clock)
    pub = seams.publisher(ledger)
    starter = _starter(ledger, seams, pub)
    canceller = Canceller(ledger=ledger, starter=starter, publisher=pub, clock=clock)
    msg = SqsMessage("q", "m-2", "h", "{}", 1, None)
    assert await canceller.cancel(msg, CancelRequest(type="cancel", request_id="r-2")) == "delete"
    rec = await ledger.get("r-2")
    assert rec.cancel_requested_at is not None
    assert await starter.start(rec, _Log()) is StartResult.ENDED
    assert "StartHumanLoop" not in seams.a2i.calls  # the cancel came first: no loop at all
    assert (await ledger.get("r-2")).result["outcome"] == "stopped"


def test_a_new_stage_resets_tries_and_phase_since() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rec = transitions.new_record("r", "f", route=None, received_at=now)
    assert rec.phase_since == now
    later = now + timedelta(seconds=5)
    started = transitions.start(
        rec,
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="l",
        decision=None,
        context=None,
        payload=StartPayload(FLOW, "{}"),
        next_check_at=later,
        now=later,
    )
    assert started is not None
    assert started.phase_since == later
    tried = transitions.note_try(started, later, now=later + timedelta(seconds=1))
    assert tried is not None
    assert tried.tries == 1
    assert tried.phase_since == later


class _Log:
    """A bound logger that keeps the keyword arguments of every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def bind(self, **_: Any) -> _Log:
        return self

    def __getattr__(self, _: str) -> Any:
        def record(*args: Any, **kw: Any) -> None:
            self.calls.append({"args": args, **kw})

        return record


def test_a_bug_is_logged_with_its_traceback_and_counted() -> None:
    from a2i_worker.failures import report_failure
    from a2i_worker.metrics import Metrics

    calls: list[str] = []

    class Log:
        def exception(self, *_: Any, **__: Any) -> None:
            calls.append("exception")

        def warning(self, *_: Any, **__: Any) -> None:
            calls.append("warning")

    m = Metrics()
    report_failure(Log(), KeyError("k"), "doing x", role="sweeper", metrics=m)
    report_failure(Log(), _client_error("InternalError", 500), "doing x", role="sweeper", metrics=m)
    assert calls == ["exception", "warning"]
    total = m.registry.get_sample_value("a2i_worker_unexpected_errors_total", {"role": "sweeper"})
    assert total == 1
