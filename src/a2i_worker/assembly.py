"""Building the roles of the request path and of loop following from the settings.

The composition root (:mod:`a2i_worker.worker`) calls :func:`build_roles` once; every
role gets its collaborators here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from a2i_worker.event_handler import EventHandler
from a2i_worker.finisher import Finisher, FinisherConfig
from a2i_worker.intake import MessageBatcher, QueueConsumer
from a2i_worker.request.budget_step import BudgetStep
from a2i_worker.request.canceller import Canceller
from a2i_worker.request.handler import HandlerConfig, RequestHandler
from a2i_worker.request.rejecter import Rejecter
from a2i_worker.request.starter import StartConfig, Starter
from a2i_worker.sweeper import SweepConfig, Sweeper

if TYPE_CHECKING:
    from a2i_worker.a2i import A2IGateway
    from a2i_worker.aws import AwsClients
    from a2i_worker.ledger.protocol import Ledger
    from a2i_worker.limiting import QuotaGate, ReceiveWindow
    from a2i_worker.metrics import Metrics
    from a2i_worker.queue_urls import QueueUrls
    from a2i_worker.results import Publisher
    from a2i_worker.routes import Routes
    from a2i_worker.settings import Settings
    from a2i_worker.vitals import DependencyChecks

__all__ = ["Consumers", "Roles", "build_consumers", "build_roles"]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Roles:
    rejecter: Rejecter
    starter: Starter
    processor: RequestHandler
    finisher: Finisher
    events: EventHandler
    sweeper: Sweeper


def build_roles(
    s: Settings,
    *,
    routes: Routes,
    aws: AwsClients,
    queues: QueueUrls,
    ledger: Ledger,
    gateway: A2IGateway,
    gate: QuotaGate,
    publisher: Publisher,
    m: Metrics,
    clock: Callable[[], datetime] = _now,
) -> Roles:
    """Every role of the request path and of loop following. ``clock``: the one time
    source of them all (tests drive it by hand; the worker leaves the wall clock)."""
    rejecter = Rejecter(
        ledger=ledger,
        sqs=aws.sqs,
        publisher=publisher,
        dlq_url=queues.requests_dlq,
        clock=clock,
        metrics=m,
    )
    starter = Starter(
        ledger=ledger,
        gateway=gateway,
        rejecter=rejecter,
        publisher=publisher,
        config=StartConfig(
            overdue_after=timedelta(seconds=s.overdue_after_seconds),
            start_wait=timedelta(seconds=s.start_wait_seconds),
            retry_after=timedelta(seconds=min(30.0, s.sweep_interval_seconds)),
            start_timeout=timedelta(seconds=s.start_timeout_seconds),
        ),
        clock=clock,
        metrics=m,
    )
    processor = RequestHandler(
        ledger=ledger,
        routes=routes,
        s3=aws.s3,
        starter=starter,
        rejecter=rejecter,
        canceller=Canceller(ledger=ledger, starter=starter, publisher=publisher, clock=clock),
        budget=BudgetStep(ledger=ledger, sqs=aws.sqs, clock=clock, metrics=m),
        publisher=publisher,
        clock=clock,
        config=HandlerConfig(max_receives=s.max_receives),
        metrics=m,
    )
    finisher = Finisher(
        ledger=ledger,
        gateway=gateway,
        s3=aws.s3,
        publisher=publisher,
        routes=routes,
        config=FinisherConfig(
            max_attempts=s.max_attempts,
            delete_finished_loops=s.delete_finished_loops,
            output_tries=s.output_tries,
            retry_after=timedelta(seconds=min(30.0, s.sweep_interval_seconds)),
        ),
        clock=clock,
        metrics=m,
    )
    finisher.use_starter(starter)
    events = EventHandler(
        ledger=ledger,
        finisher=finisher,
        gate=gate,
        sqs=aws.sqs,
        events_dlq_url=queues.events_dlq,
        metrics=m,
    )
    sweeper = Sweeper(
        ledger=ledger,
        gateway=gateway,
        events=events,
        starter=starter,
        config=SweepConfig(
            interval=timedelta(seconds=s.sweep_interval_seconds),
            list_threshold=s.sweep_list_threshold,
            stopping_timeout=timedelta(seconds=s.stopping_timeout_seconds),
        ),
        metrics=m,
        clock=clock,
    )
    return Roles(rejecter, starter, processor, finisher, events, sweeper)


@dataclass(frozen=True)
class Consumers:
    requests: QueueConsumer
    events: QueueConsumer


def build_consumers(
    s: Settings,
    *,
    aws: AwsClients,
    queues: QueueUrls,
    batcher: MessageBatcher,
    roles: Roles,
    window: ReceiveWindow,
    checks: DependencyChecks,
) -> Consumers:
    """The requests consumer (held messages sized by the receive window) and the events one."""

    consumer = partial(
        QueueConsumer,
        sqs=aws.sqs_no_retries,  # the consumers retry receives themselves (backoff.py)
        batcher=batcher,
        wait_seconds=s.receive_wait_seconds,
        visibility_timeout=s.visibility_timeout_seconds,
        heartbeat_interval=s.heartbeat_interval_seconds,
        receive_backoff_max=s.receive_backoff_max_seconds,
        on_receive_error=checks.receive_failed,
        on_receive_ok=checks.receive_ok,
    )
    return Consumers(
        requests=consumer(
            name="requests",
            queue_url=queues.requests,
            handler=roles.processor.handle,
            capacity=s.max_in_flight,
            receivers=s.receive_concurrency,
            slots=window,
        ),
        events=consumer(
            name="events",
            queue_url=queues.events,
            handler=roles.events.handle,
            capacity=max(100, s.max_in_flight // 4),
            receivers=max(1, s.receive_concurrency // 2),
        ),
    )
