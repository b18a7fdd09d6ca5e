"""One worker's world in memory: the fakes wired together, and the roles built on them by
the worker's own :func:`~a2i_worker.assembly.build_roles`.

:class:`World` is what survives a crash (clock, queues, A2I, S3, ledger);
:class:`Process` is what a crash loses (publisher's memory, limiter, gate, the roles'
own state) and is rebuilt from the world. :meth:`Process.deliver` plays the intake: one
receive, the handler's verdict applied as :mod:`a2i_worker.intake` applies it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, cast

from a2i_worker.a2i import A2IGateway
from a2i_worker.assembly import Roles, build_roles
from a2i_worker.metrics import Metrics
from a2i_worker.queue_urls import QueueUrls
from a2i_worker.results import Publisher
from a2i_worker.routes import Routes
from a2i_worker.settings import Settings
from a2i_worker.sqs_types import Handler, SqsMessage, Verdict
from fakes import FakeAws
from fakes.a2i import FakeA2IRuntime
from fakes.clock import ManualClock
from fakes.ledger import MemoryLedger
from fakes.limits import FakeGate, FakeLimiter
from fakes.s3 import FakeS3
from fakes.sqs import FakeSqs

__all__ = ["Crash", "Process", "World", "only_crashes"]

#: The intake's default visibility after a RETRY without a ``retry_after``.
RETRY_VISIBILITY = 5


class Crash(BaseException):
    """kill -9: raised from inside a seam call; nothing of the process survives (not an
    ``Exception``, so no role's ``except Exception`` can swallow it)."""


def only_crashes(exc: BaseException) -> bool:
    """True for a :class:`Crash`, or a group (a role's task group) of nothing else."""
    if isinstance(exc, Crash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(only_crashes(e) for e in exc.exceptions)
    return False


@dataclass
class World:
    settings: Settings
    routes: Routes
    flow_arn: str
    rng: random.Random
    max_receive_count: int = 6
    clock: ManualClock = field(default_factory=ManualClock)

    def __post_init__(self) -> None:
        self.sqs = FakeSqs(self.clock, rng=self.rng)
        self.s3 = FakeS3()
        self.s3.buckets["outputs"] = {}
        self.s3.buckets["inputs"] = {}
        self.a2i = FakeA2IRuntime(self.clock, s3=self.s3)
        self.a2i.add_flow(self.flow_arn, "outputs", "a2i")
        self.ledger = MemoryLedger(clock=self.clock)
        sqs, vis = self.sqs, self.settings.visibility_timeout_seconds
        req_dlq = sqs.add_queue("requests-dlq")
        ev_dlq = sqs.add_queue("events-dlq")
        self.queues = QueueUrls(
            requests=sqs.add_queue(
                "requests",
                visibility_timeout=vis,
                dlq_url=req_dlq,
                max_receive_count=self.max_receive_count,
            ),
            events=sqs.add_queue(
                "events", visibility_timeout=vis, dlq_url=ev_dlq, max_receive_count=10
            ),
            results=sqs.add_queue("results"),
            requests_dlq=req_dlq,
            events_dlq=ev_dlq,
        )

    def results(self) -> list[dict[str, Any]]:
        """Every result ever sent to the results queue (duplicates included)."""
        return [json.loads(m.body) for m in self.sqs.queue(self.queues.results).sent]

    def describe(self) -> str:
        """Where every record and live request message stands (for failure messages)."""
        recs = [
            (r.request_id, r.phase.value, r.loop_status, r.tries) for r in self.ledger.records()
        ]
        live = [m.body for m in self.sqs.queue(self.queues.requests).live()]
        return f"records={recs} live={live}"

    def dlq(self) -> list[Any]:
        assert self.queues.requests_dlq is not None
        return self.sqs.queue(self.queues.requests_dlq).sent


class Process:
    """The worker's in-memory half, rebuilt after every crash."""

    def __init__(self, world: World) -> None:
        self.world = w = world
        self.metrics = Metrics()
        self.limiter = FakeLimiter()
        self.gate = FakeGate()
        self.gateway = A2IGateway(
            cast(Any, w.a2i), self.limiter, self.gate, transient_attempts=1, metrics=None
        )
        self.publisher = Publisher(w.ledger, cast(Any, w.sqs), w.queues.results)
        self.roles: Roles = build_roles(
            w.settings,
            routes=w.routes,
            aws=cast(Any, FakeAws(w.sqs, w.s3, w.a2i)),
            queues=w.queues,
            ledger=w.ledger,
            gateway=self.gateway,
            gate=cast(Any, self.gate),
            publisher=self.publisher,
            m=self.metrics,
            clock=w.clock,
        )
        self.roles.processor.config.max_receives = w.max_receive_count

    async def deliver(self, queue_url: str, handler: Handler) -> int:
        """Receive one message (if one is visible) and settle it as the intake does."""
        w = self.world
        resp = await w.sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=1,
            VisibilityTimeout=w.settings.visibility_timeout_seconds,
            MessageSystemAttributeNames=["All"],
        )
        raws = resp.get("Messages", [])
        for raw in raws:
            attrs = raw.get("Attributes", {})
            msg = SqsMessage(
                queue_url=queue_url,
                message_id=raw["MessageId"],
                receipt_handle=raw["ReceiptHandle"],
                body=raw["Body"],
                receive_count=int(attrs.get("ApproximateReceiveCount", "1")),
                sent_timestamp_ms=int(attrs["SentTimestamp"]),
            )
            verdict = await handler(msg)
            if verdict == Verdict.DELETE:
                await w.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg.receipt_handle)
            elif verdict == Verdict.RETRY and not msg.done:
                await w.sqs.change_message_visibility(
                    QueueUrl=queue_url,
                    ReceiptHandle=msg.receipt_handle,
                    VisibilityTimeout=msg.retry_after or RETRY_VISIBILITY,
                )
        return len(raws)

    def bugs(self) -> list[tuple[dict[str, str], float]]:
        """``a2i_worker_unexpected_errors_total`` samples above zero: errors a role took
        for a bug (logged with a traceback)."""
        return [
            (s.labels, s.value)
            for metric in self.metrics.registry.collect()
            if metric.name == "a2i_worker_unexpected_errors"
            for s in metric.samples
            if s.name.endswith("_total") and s.value
        ]

    async def request(self) -> int:
        return await self.deliver(self.world.queues.requests, self.roles.processor.handle)

    async def event(self) -> int:
        return await self.deliver(self.world.queues.events, self.roles.events.handle)

    async def publish(self) -> None:
        """The publisher's outbox scan (what its ``run`` does on start and every poll)."""
        for rec in await self.world.ledger.unpublished(500):
            self.publisher.notify(rec)
        await self.publisher.flush()
