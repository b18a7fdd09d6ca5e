"""The composition root: builds every role from the settings and owns the task group.

Start order: logging → routes and rules (a bad file stops start-up) → AWS clients →
ledger → limiter and gate → roles → health endpoint → background tasks → intake.

Stop order (``stop`` event, e.g. the first SIGTERM): not ready → receivers stop after
their current long poll → in-flight messages get until the grace period to finish →
what is left is handed back (visibility 0) → deletes and results are flushed → ledger
closed. Every background task is started by name in one task group.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import structlog

from a2i_worker.a2i import A2IGateway
from a2i_worker.assembly import build_roles
from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.health import HealthServer, Readiness
from a2i_worker.intake import MessageBatcher, QueueConsumer
from a2i_worker.ledger.factory import ledger_from_url
from a2i_worker.ledger.protocol import Phase
from a2i_worker.limiter import AdaptiveLimiter, GateParams, QuotaGate, RateParams, ReceiveWindow
from a2i_worker.metrics import Metrics
from a2i_worker.results import Publisher
from a2i_worker.routes import Routes, load_routes
from a2i_worker.settings import Settings
from a2i_worker.vitals import DependencyChecks, Gauges

__all__ = ["Worker", "WorkerHooks", "run_worker"]

log = structlog.get_logger(__name__)


@dataclass
class WorkerHooks:
    """Seams for the CLI, the demo and tests: observe, never replace, behaviour."""

    on_ready: Callable[[Worker], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Worker:
    """All roles of one worker process, wired together."""

    def __init__(self, settings: Settings, routes: Routes, aws: AwsClients) -> None:
        s = settings
        self.settings = s
        self.queues = queues = s.queue_urls()
        self.routes = routes
        self.aws = aws
        self.metrics = m = Metrics()
        self.readiness = Readiness()
        self.ledger = ledger = ledger_from_url(s.ledger_url, dynamodb_client=aws.dynamodb)
        self.limiter = AdaptiveLimiter(
            start=RateParams(
                initial=s.start_rate_initial, min_rate=s.start_rate_min, max_rate=s.start_rate_max
            ),
            sweep=RateParams(
                initial=min(s.sweep_rate_max, s.sweep_rate_initial), max_rate=s.sweep_rate_max
            ),
        )
        self.gate = QuotaGate(
            GateParams(
                margin=s.quota_gate_margin,
                probe_after=s.quota_gate_probe_seconds,
                probe_jitter=s.quota_gate_probe_jitter,
                probe_step_max=s.quota_gate_probe_step_max,
            )
        )
        self.gateway = A2IGateway(aws.a2i, self.limiter, self.gate, metrics=m)
        self.publisher = Publisher(
            ledger,
            aws.sqs,
            queues.results,
            metrics=m,
            include_prediction=s.results_include_prediction,
        )
        roles = build_roles(
            s,
            routes=routes,
            aws=aws,
            queues=queues,
            ledger=ledger,
            gateway=self.gateway,
            gate=self.gate,
            publisher=self.publisher,
            m=m,
        )
        self.rejecter, self.starter = roles.rejecter, roles.starter
        self.processor, self.finisher = roles.processor, roles.finisher
        self.events, self.sweeper = roles.events, roles.sweeper
        self.checks = DependencyChecks(
            sqs=aws.sqs,
            a2i=aws.a2i,
            requests_queue_url=queues.requests,
            readiness=self.readiness,
            metrics=m,
        )
        self.batcher = MessageBatcher(aws.sqs)
        self.window = ReceiveWindow(
            lambda: self.limiter.rate("start"),
            seconds=s.receive_window_seconds,
            ceiling=s.max_in_flight,
        )
        self.limiter.watch("start", self.window.notify)
        consumer = partial(
            QueueConsumer,
            sqs=aws.sqs,
            batcher=self.batcher,
            wait_seconds=s.receive_wait_seconds,
            visibility_timeout=s.visibility_timeout_seconds,
            heartbeat_interval=s.heartbeat_interval_seconds,
            receive_backoff_max=s.receive_backoff_max_seconds,
            on_receive_error=self.checks.receive_failed,
            on_receive_ok=self.checks.receive_ok,
        )
        self.requests = consumer(
            name="requests",
            queue_url=queues.requests,
            handler=self.processor.handle,
            capacity=s.max_in_flight,
            receivers=s.receive_concurrency,
            slots=self.window,
        )
        self.events_consumer = consumer(
            name="events",
            queue_url=queues.events,
            handler=self.events.handle,
            capacity=max(100, s.max_in_flight // 4),
            receivers=max(1, s.receive_concurrency // 2),
        )
        self.gauges = Gauges(
            metrics=m,
            limiter=self.limiter,
            gate=self.gate,
            consumers=[self.requests, self.events_consumer],
        )
        self.health = HealthServer(
            host=s.health_host,
            port=s.health_port,
            metrics=m,
            readiness=self.readiness,
            checks={
                "sqs": self.checks.check_sqs,
                "a2i": self.checks.check_a2i,
                "ledger": ledger.ping,
            },
        )

    async def _learn_max_receives(self) -> None:
        """Give up on a failing message at the queue's own redrive count (if it has one)."""
        try:
            resp = await self.aws.sqs.get_queue_attributes(
                QueueUrl=self.queues.requests, AttributeNames=["RedrivePolicy"]
            )
            policy = json.loads(resp.get("Attributes", {}).get("RedrivePolicy") or "{}")
            count = int(policy.get("maxReceiveCount", 0))
        except Exception as exc:
            log.warning("could not read the requests queue's redrive policy", error=str(exc))
            return
        if count >= 1:
            self.processor.config.max_receives = count

    async def run(self, stop: anyio.Event, hooks: WorkerHooks | None = None) -> None:
        """Run until ``stop`` is set, then drain within the grace period."""
        s = self.settings
        await self.ledger.open()
        try:
            await self._learn_max_receives()
            counts = await self.ledger.count_by_phase()
            self.gate.set_in_flight(counts.get(Phase.OPEN, 0) + counts.get(Phase.STARTING, 0))
            self.metrics.set_ledger_counts({p.value: n for p, n in counts.items()})
            await self.health.start()
            try:
                await self._run_roles(stop, hooks)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.health.stop()
        finally:
            with anyio.CancelScope(shield=True):
                await self.ledger.close()
        log.info("worker stopped", grace_seconds=s.shutdown_grace_seconds)

    async def _run_roles(self, stop: anyio.Event, hooks: WorkerHooks | None) -> None:
        grace = float(self.settings.shutdown_grace_seconds)
        async with anyio.create_task_group() as background:
            background.start_soon(self.batcher.run, name="sqs-batcher")
            background.start_soon(self.publisher.run, name="publisher")
            background.start_soon(self.sweeper.run, name="sweeper")
            background.start_soon(self.health.run_checks, name="health-checks")
            background.start_soon(self.gauges.run, name="gauges")
            background.start_soon(self.requests.heartbeat_forever, name="requests-heartbeat")
            background.start_soon(self.events_consumer.heartbeat_forever, name="events-heartbeat")
            async with anyio.create_task_group() as handlers:
                self.requests.bind_handler_group(handlers)
                self.events_consumer.bind_handler_group(handlers)
                async with anyio.create_task_group() as receivers:
                    receivers.start_soon(
                        self.requests.receive_until_stopped, name="requests-intake"
                    )
                    receivers.start_soon(
                        self.events_consumer.receive_until_stopped, name="events-intake"
                    )
                    self.readiness.started = True
                    log.info("worker running", event_loop=_loop_name())
                    if hooks and hooks.on_ready:
                        hooks.on_ready(self)
                    await stop.wait()
                    deadline = anyio.current_time() + grace
                    log.info("draining", grace_seconds=grace, held=self.requests.held)
                    self.readiness.draining = True
                    self.requests.stop_receiving()
                    self.events_consumer.stop_receiving()
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time() - 1)):
                        await self._wait_receivers_done()
                    receivers.cancel_scope.cancel()
                # Receivers are done: let in-flight messages finish, within the grace.
                budget = max(0.0, deadline - anyio.current_time() - 1.5)
                idle = await self.requests.wait_idle(budget)
                idle = await self.events_consumer.wait_idle(0.5) and idle
                if not idle:
                    log.warning(
                        "grace period over; handing back unfinished messages",
                        held=self.requests.held + self.events_consumer.held,
                    )
                handlers.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                returned = await self.requests.hand_back() + await self.events_consumer.hand_back()
                await self.batcher.flush()
                with anyio.move_on_after(max(0.5, deadline - anyio.current_time())):
                    await self.publisher.flush()
            log.info("drained", handed_back=returned)
            background.cancel_scope.cancel()

    async def _wait_receivers_done(self) -> None:
        # Receivers exit after their current long poll (never cut short: a cancelled
        # poll could leave messages invisible that nobody holds).
        await self.requests.wait_receivers_done()
        await self.events_consumer.wait_receivers_done()


async def run_worker(
    settings: Settings,
    *,
    stop: anyio.Event,
    hooks: WorkerHooks | None = None,
    environ: dict[str, str] | None = None,
) -> None:
    """Load routes, open the clients and run one worker until ``stop`` is set.

    ``environ`` (tests, the demo) replaces the process environment for the AWS region
    and the ``AWS_ENDPOINT_URL[_<SERVICE>]`` variables; production leaves it ``None``
    and botocore reads the real environment.
    """
    routes = load_routes(settings.routes_file) if settings.routes_file else Routes({})
    endpoints = endpoints_from_environ(environ) if environ is not None else {}
    aws_settings = AwsClientSettings(
        max_pool_connections=settings.aws_max_pool_connections, endpoint_urls=endpoints
    )
    async with AwsClients(aws_settings, environ=environ) as aws:
        worker = Worker(settings, routes, aws)
        # Everything built so far (modules, botocore models, clients) lives as long as the
        # process: freeze it out of the cyclic GC. Measured: the collection at interpreter
        # exit took over a second after SIGTERM (beyond the grace period) without this.
        gc.freeze()
        await worker.run(stop, hooks)


def _loop_name() -> str:
    """``uvloop`` or ``asyncio``: which event loop implementation runs the worker."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"
