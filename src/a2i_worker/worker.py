"""The composition root: builds every role from the settings and owns the task group.

Start order: logging → routes and rules (a bad file stops start-up) → AWS clients →
ledger → every dependency checked (:mod:`a2i_worker.preflight`; a wrong one stops
start-up) → limiter and gate → roles → health endpoint → background tasks → intake.

Stop order (``stop`` event, e.g. the first SIGTERM): the intake drains within the grace
period (:mod:`a2i_worker.drain`), then the health endpoint and the ledger close.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from a2i_worker.a2i import A2IGateway
from a2i_worker.assembly import build_consumers, build_roles
from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.drain import Intake
from a2i_worker.health import HealthServer, Readiness
from a2i_worker.intake import MessageBatcher
from a2i_worker.ledger.factory import ledger_from_url
from a2i_worker.limits import limits_from_settings
from a2i_worker.metrics import Metrics
from a2i_worker.preflight import build_dependencies, verify_at_start
from a2i_worker.queue_urls import max_receive_count, queue_urls
from a2i_worker.results import Publisher
from a2i_worker.routes import Routes, load_routes
from a2i_worker.settings import Settings
from a2i_worker.vitals import DependencyChecks, Gauges, LedgerGauges

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
        self.queues = queues = queue_urls(s)
        self.routes = routes
        self.aws = aws
        self.metrics = m = Metrics()
        self.readiness = Readiness()
        self.ledger = ledger = ledger_from_url(s.ledger_url, dynamodb_client=aws.dynamodb)
        limits = limits_from_settings(s)
        self.limiter, self.gate, self.window = limits.limiter, limits.gate, limits.window
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
        self.checks = DependencyChecks(readiness=self.readiness, metrics=m)
        self.dependencies = build_dependencies(
            aws=aws, queues=queues, routes=routes, ledger=ledger, metrics=m
        )
        self.batcher = MessageBatcher(aws.sqs_no_retries)
        consumers = build_consumers(
            s,
            aws=aws,
            queues=queues,
            batcher=self.batcher,
            roles=roles,
            window=self.window,
            checks=self.checks,
        )
        self.requests, self.events_consumer = consumers.requests, consumers.events
        self.sweeper.use_events_backlog(self.events_consumer.backlogged)
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
            checks={d.key: d.verify for d in self.dependencies},
        )
        self.ledger_gauges = LedgerGauges(
            ledger=ledger,
            metrics=m,
            routes=routes,
            on_in_flight=self.gate.set_in_flight,
            every=s.sweep_interval_seconds,
        )
        self.intake = Intake(
            requests=self.requests,
            events=self.events_consumer,
            batcher=self.batcher,
            publisher=self.publisher,
            readiness=self.readiness,
            grace=float(s.shutdown_grace_seconds),
        )

    async def run(self, stop: anyio.Event, hooks: WorkerHooks | None = None) -> None:
        """Run until ``stop`` is set, then drain within the grace period."""
        s, queues = self.settings, self.queues
        await self.ledger.open()
        try:
            # give up on a failing message at the queue's own redrive count, if it has one
            if (count := await max_receive_count(self.aws.sqs, queues.requests)) is not None:
                self.processor.config.max_receives = count
            await verify_at_start(self.dependencies, self.readiness)
            await self.ledger_gauges.update()  # also the gate's loops in flight
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
        def ready() -> None:
            log.info("worker running", event_loop=_loop_name())
            if hooks and hooks.on_ready:
                hooks.on_ready(self)

        background = [
            ("sqs-batcher", self.batcher.run),
            ("publisher", self.publisher.run),
            ("sweeper", self.sweeper.run),
            ("health-checks", self.health.run_checks),
            ("gauges", self.gauges.run),
            ("ledger-gauges", self.ledger_gauges.run),
        ]
        await self.intake.run(stop, background, ready)


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
