"""The rig of the lifecycle-pair tests (tests/unit/test_lifecycle_pairs*.py): one worker
on the in-memory fakes, its roles built by the worker's own ``build_roles``
(:class:`fakes.world.World` and :class:`~fakes.world.Process`), and the few moves the
rows of docs/lifecycle.md need. No tests here."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from a2i_emulator.store import Loop
from a2i_worker.ledger.protocol import LedgerRecord, LoopUpdate
from a2i_worker.naming import loop_name
from a2i_worker.routes import Budget, BudgetPolicy, Route, RouteMode, Routes
from a2i_worker.settings import Settings
from a2i_worker.sqs_types import SqsMessage
from a2i_worker.sweeper import SweepReport
from fakes import StoredMessage, client_error
from fakes.world import Process, World

__all__ = [
    "FLOW",
    "SETTINGS",
    "Recorder",
    "Rig",
    "budget_routes",
    "review_body",
]

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/pairs"
SETTINGS = Settings(
    overdue_after_seconds=900,
    sweep_interval_seconds=60,
    sweep_list_threshold=20,
    max_receives=4,
    output_tries=3,
    max_attempts=2,
    start_timeout_seconds=3600,
    stopping_timeout_seconds=1800,
    start_wait_seconds=60,
    visibility_timeout_seconds=120,
)
ROUTES = Routes(
    {"main": Route("main", FLOW), "shadow": Route("shadow", FLOW, mode=RouteMode.SHADOW)}
)


def budget_routes(policy: BudgetPolicy = BudgetPolicy.DEFER, per_hour: int = 1) -> Routes:
    """``main`` plus ``budgeted``: ``per_hour`` loops an hour, ``policy`` once spent."""
    return Routes(
        {
            "main": Route("main", FLOW),
            "budgeted": Route("budgeted", FLOW, budget=Budget(per_hour, None, policy)),
        }
    )


def review_body(rid: str, route: str = "main", **fields: Any) -> str:
    msg: dict[str, Any] = {"version": 1, "type": "review", "request_id": rid, "route": route}
    if "input_s3_uri" not in fields:
        msg["input"] = {"text": f"hello {rid}"}
    msg.update(fields)
    return json.dumps(msg)


class Recorder:
    """A structlog logger stand-in: keeps (method, event, keywords) of every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def bind(self, **_: Any) -> Recorder:
        return self

    def events(self, method: str | None = None) -> list[str]:
        return [e for m, e, _ in self.calls if method is None or m == method]

    def __getattr__(self, method: str) -> Callable[..., None]:
        def record(event: str = "", *_: Any, **kw: Any) -> None:
            self.calls.append((method, event, kw))

        return record


class Rig:
    """One world (queues, A2I, S3, ledger, clock) and the process working on it."""

    def __init__(
        self, *, settings: Settings = SETTINGS, routes: Routes = ROUTES, max_receives: int = 4
    ) -> None:
        self.w = World(settings, routes, FLOW, random.Random(0), max_receive_count=max_receives)
        self.p = Process(self.w)

    # -- the world ----------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.w.settings

    def advance(self, seconds: float) -> None:
        self.w.clock.advance(seconds)

    def restart(self) -> None:
        """kill -9 and start again: the process's memory is gone, the world stays."""
        self.p = Process(self.w)

    def record(self, rid: str) -> LedgerRecord:
        recs = {r.request_id: r for r in self.w.ledger.records()}
        return recs[rid]

    def loop(self, rid: str, attempt: int = 1) -> Loop | None:
        return self.w.a2i.loop(loop_name(FLOW, rid, attempt))

    def calls(self, op: str) -> int:
        return self.w.a2i.calls.count(op)

    def dlq(self) -> list[StoredMessage]:
        return self.w.dlq()

    def live_requests(self) -> list[StoredMessage]:
        return self.w.sqs.queue(self.w.queues.requests).live()

    def message(self, message_id: str) -> StoredMessage:
        return self.w.sqs.queue(self.w.queues.requests).messages[message_id]

    # -- moves --------------------------------------------------------------------------

    async def send(self, body: str) -> str:
        sent = await self.w.sqs.send_message(QueueUrl=self.w.queues.requests, MessageBody=body)
        return str(sent["MessageId"])

    async def review(self, rid: str, route: str = "main", **fields: Any) -> str:
        return await self.send(review_body(rid, route, **fields))

    async def cancel(self, rid: str) -> str:
        return await self.send(json.dumps({"version": 1, "type": "cancel", "request_id": rid}))

    async def deliver(self) -> int:
        """One receive of the requests queue, settled as the intake settles it."""
        return await self.p.request()

    async def drain(self) -> None:
        """Every visible request message, until none is left."""
        while await self.p.request():
            pass

    async def handle(self, body: str, receive_count: int = 1) -> str:
        """The handler's verdict on one message held in hand (not from the queue)."""
        msg = SqsMessage(self.w.queues.requests, "m-hand", "rh", body, receive_count, None)
        return await self.p.roles.processor.handle(msg)

    async def emit(self, body: str | None, times: int = 1) -> None:
        """A status event (as EventBridge sends it), delivered ``times`` and handled."""
        assert body is not None
        for _ in range(times):
            await self.w.sqs.send_message(QueueUrl=self.w.queues.events, MessageBody=body)
        while await self.p.event():
            pass

    async def reviewer(self, rid: str, outcome: Any, attempt: int = 1, **kw: Any) -> None:
        """A reviewer (or A2I) ends the loop; its status event arrives once."""
        await self.emit(self.w.a2i.finish(loop_name(FLOW, rid, attempt), outcome, **kw))

    async def update(self, rid: str, status: str, attempt: int = 1, **kw: Any) -> None:
        """A loop status observation applied as the event handler applies one."""
        name = loop_name(FLOW, rid, attempt)
        await self.p.roles.events.apply(
            LoopUpdate(name, status, self.w.clock.now, **kw), kind="status"
        )

    async def sweep(self) -> SweepReport:
        return await self.p.roles.sweeper.sweep_once()

    async def publish(self) -> list[dict[str, Any]]:
        await self.p.publish()
        return self.w.results()

    async def opened(self, rid: str, route: str = "main") -> LedgerRecord:
        """A request whose loop is open (InProgress): sent, delivered, started."""
        await self.review(rid, route)
        await self.drain()
        rec = self.record(rid)
        assert rec.loop_status == "InProgress", rec
        return rec

    def fail_s3(self, op: str, exc: BaseException) -> None:
        """Every later ``op`` (``head_object``/``get_object``) of S3 raises ``exc``."""

        async def failing(**_: Any) -> Any:
            raise exc

        setattr(self.w.s3, op, failing)

    def on_start(self, hook: Callable[[str, bool], Awaitable[None]]) -> None:
        """``hook(loop name, started)`` runs right before A2I gets every StartHumanLoop
        (``False``) and right after it answered with a new loop (``True``): a crash or a
        concurrent step exactly there."""
        real = self.w.a2i.start_human_loop

        async def start(**kw: Any) -> dict[str, Any]:
            await hook(kw["HumanLoopName"], False)
            out = await real(**kw)
            await hook(kw["HumanLoopName"], True)
            return out

        setattr(self.w.a2i, "start_human_loop", start)  # noqa: B010

    def fail_results_queue(self, times: int) -> None:
        """The next ``times`` SendMessageBatch calls to the results queue answer 500."""
        real = self.w.sqs.send_message_batch
        left = [times]

        async def send_batch(**kw: Any) -> Any:
            if kw["QueueUrl"] == self.w.queues.results and left[0] > 0:
                left[0] -= 1
                raise client_error("InternalError", "down", status=500)
            return await real(**kw)

        setattr(self.w.sqs, "send_message_batch", send_batch)  # noqa: B010
