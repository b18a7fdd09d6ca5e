"""Prometheus metrics, defined in one place, on a registry of their own.

Label values are always from closed sets (outcome, operation, error kind, phase,
status, event kind, configured route names, configured queues): never request ids,
inputs or answers. A route label is a configured route's name, ``(unrouted)`` for a
request that named a flow definition no route uses, or ``(other)`` for any other value
(an unknown route a producer sent must not create a series).

The registry also carries ``process_*`` (CPU, memory, open files), ``python_info`` and
``python_gc_*``; counters have no ``_created`` series (``disable_created_metrics``).
Gauges that age (queue lag, oldest open loop) are computed when scraped, so they keep
growing while the worker is stuck instead of freezing at their last value.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

if TYPE_CHECKING:
    from a2i_worker.ledger.protocol import LedgerRecord, LiveCounts

__all__ = ["UNROUTED", "MetricDoc", "Metrics", "QueueLag"]

#: Route label of requests addressed by flow definition ARN with no route.
UNROUTED = "(unrouted)"
_OTHER = "(other)"

# Counters and histograms without the ``_created`` twin of every series.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

#: Review duration buckets: one minute to a week (reviewers take minutes to days).
_REVIEW_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800)


@dataclass(frozen=True)
class MetricDoc:
    """One metric as exposed: ``name`` with its ``_total`` for a counter."""

    name: str
    kind: str
    labels: tuple[str, ...]
    documentation: str


_Metric = TypeVar("_Metric", Counter, Gauge, Histogram)
_KINDS = {Counter: "counter", Gauge: "gauge", Histogram: "histogram"}


def _declare(
    into: list[MetricDoc],
    cls: type[_Metric],
    name: str,
    documentation: str,
    labelnames: Sequence[str] = (),
    **kwargs: Any,
) -> _Metric:
    """Create a metric and note what it is (prometheus_client keeps that private)."""
    shown = name + ("_total" if cls is Counter else "")
    into.append(MetricDoc(shown, _KINDS[cls], tuple(labelnames), documentation))
    return cls(name, documentation, labelnames, **kwargs)


class QueueLag:
    """Estimated age of the oldest request waiting in the requests queue, when scraped.

    At a receive it is the received message's age (SentTimestamp). Between receives it
    grows with the clock while the requests queue still has visible messages (its depth
    is read by the readiness check), so a stuck worker shows a growing lag; it is 0 when
    the queue was empty at its last check.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lag = 0.0
        self._at = clock()
        self._visible: int | None = None

    def set(self, lag: float) -> None:
        """A message ``lag`` seconds old was just received."""
        self._lag, self._at = max(0.0, lag), self._clock()

    def queue_depth(self, visible: int) -> None:
        self._visible = visible

    def value(self) -> float:
        if self._visible == 0:
            return 0.0
        if self._visible is None:
            return self._lag
        return self._lag + max(0.0, self._clock() - self._at)


def _age_since(born: datetime | None, wall: Callable[[], float]) -> Callable[[], float]:
    """Seconds since ``born`` at each scrape (0 when nothing is open)."""
    start = None if born is None else born.timestamp()
    return lambda: 0.0 if start is None else max(0.0, wall() - start)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        #: Route names that may appear as labels (set from the routes file at start).
        self.routes: frozenset[str] = frozenset()
        #: What each metric is (name, kind, labels, help): the docs' metrics table.
        self.declared: list[MetricDoc] = []
        m = partial(_declare, self.declared)
        self.requests = m(
            Counter,
            "a2i_worker_requests",
            "Review requests by final outcome (counted when the result is published), by route",
            ["outcome", "route"],
            registry=r,
        )
        self.review_duration = m(
            Histogram,
            "a2i_worker_review_duration_seconds",
            "From the loop's creation in A2I to its result published, by route and outcome",
            ["route", "outcome"],
            buckets=_REVIEW_BUCKETS,
            registry=r,
        )
        self.rejections = m(
            Counter,
            "a2i_worker_rejections",
            "Rejected messages by reason code",
            ["code"],
            registry=r,
        )
        self.unexpected_errors = m(
            Counter,
            "a2i_worker_unexpected_errors",
            "Exceptions that are neither AWS nor network errors (bugs), by role",
            ["role"],
            registry=r,
        )
        self.loops_started = m(
            Counter,
            "a2i_worker_loops_started",
            "Human loops started (including resubmissions)",
            registry=r,
        )
        self.start_latency = m(
            Histogram,
            "a2i_worker_start_latency_seconds",
            "StartHumanLoop call latency",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.receive_to_start = m(
            Histogram,
            "a2i_worker_receive_to_start_seconds",
            "From SQS receive to StartHumanLoop acknowledged",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.a2i_calls = m(
            Counter,
            "a2i_worker_a2i_calls",
            "A2I runtime calls by operation and result",
            ["op", "result"],
            registry=r,
        )
        self.limiter_rate = m(
            Gauge,
            "a2i_worker_limiter_rate",
            "Current adaptive rate (calls/s), by call class: start (StartHumanLoop) or sweep",
            ["cls"],
            registry=r,
        )
        self.gate_level = m(
            Gauge,
            "a2i_worker_quota_gate_level",
            "Learned cap on loops in flight (-1 = none learned)",
            registry=r,
        )
        self.gate_open = m(Gauge, "a2i_worker_quota_gate_open", "1 if starts may go", registry=r)
        self.in_flight_loops = m(
            Gauge, "a2i_worker_loops_in_flight", "Loops started and not yet finished", registry=r
        )
        self.throttles = m(
            Counter,
            "a2i_worker_throttles",
            "ThrottlingException answers, by call class: start or sweep",
            ["cls"],
            registry=r,
        )
        self.quota_rejections = m(
            Counter,
            "a2i_worker_quota_rejections",
            "ServiceQuotaExceededException answers",
            registry=r,
        )
        self.ledger_phase = m(
            Gauge,
            "a2i_worker_ledger_records",
            "Ledger records in progress, by phase: starting (loop being started, or finished "
            "and its result being read), open (open in A2I), done (result stored, not yet "
            "published); from the ledger's sparse indexes at its last count",
            ["phase"],
            registry=r,
        )
        self.open_loops = m(
            Gauge,
            "a2i_worker_open_loops",
            "Loops open in A2I (started, not finished), by route; at the ledger's last count",
            ["route"],
            registry=r,
        )
        self.oldest_open_loop_age = m(
            Gauge,
            "a2i_worker_oldest_open_loop_age_seconds",
            "Age of the oldest loop open in A2I, by route (0: none open); grows between counts",
            ["route"],
            registry=r,
        )
        self.ledger_counted_at = m(
            Gauge,
            "a2i_worker_ledger_count_timestamp_seconds",
            "Unix time of the ledger's last successful count (stale gauges show here)",
            registry=r,
        )
        self.events = m(
            Counter,
            "a2i_worker_events",
            "Events from the events queue by kind",
            ["kind"],
            registry=r,
        )
        self.sweep_calls = m(
            Counter, "a2i_worker_sweep_calls", "Sweeper calls by operation", ["op"], registry=r
        )
        self.results_published = m(
            Counter,
            "a2i_worker_results_published",
            "Results accepted by the results queue",
            registry=r,
        )
        self.queue_lag = QueueLag()
        self.queue_lag_gauge = m(
            Gauge,
            "a2i_worker_queue_lag_seconds",
            "Estimated age of the oldest waiting request: the last received message's age, "
            "growing while the requests queue has visible messages; 0 when it is empty",
            registry=r,
        )
        self.queue_lag_gauge.set_function(self.queue_lag.value)
        self.queue_messages = m(
            Gauge,
            "a2i_worker_queue_messages",
            "Messages in each configured queue (requests, events, results, DLQs) at the last "
            "readiness check, by state: visible or in_flight",
            ["queue", "state"],
            registry=r,
        )
        self.messages_held = m(
            Gauge, "a2i_worker_messages_held", "SQS messages held in memory", ["queue"], registry=r
        )
        self.dependency_errors = m(
            Counter,
            "a2i_worker_dependency_errors",
            "Failed calls by dependency",
            ["dependency"],
            registry=r,
        )

    def a2i_call(self, op: str, result: str) -> None:
        self.a2i_calls.labels(op=op, result=result).inc()
        if result == "throttled":
            self.throttles.labels(cls="start" if op == "StartHumanLoop" else "sweep").inc()
        elif result == "quota":
            self.quota_rejections.inc()
        if op in ("DescribeHumanLoop", "ListHumanLoops") and result == "ok":
            self.sweep_calls.labels(op=op).inc()

    def route_label(self, route: str | None) -> str:
        """``route`` as a label value from a closed set (see the module docstring)."""
        if route is None:
            return UNROUTED
        return route if route in self.routes else _OTHER

    def result_published(self, record: LedgerRecord, now: datetime | None = None) -> None:
        """Count one published result: requests by outcome and route, review duration."""
        result = record.result or {}
        outcome = str(result.get("outcome", ""))
        route = self.route_label(record.route)
        self.requests.labels(outcome=outcome, route=route).inc()
        if record.loop_created_at is not None:
            seconds = ((now or datetime.now(UTC)) - record.loop_created_at).total_seconds()
            self.review_duration.labels(route=route, outcome=outcome).observe(max(0.0, seconds))

    def queue_depth(self, queue: str, visible: int, in_flight: int) -> None:
        self.queue_messages.labels(queue=queue, state="visible").set(visible)
        self.queue_messages.labels(queue=queue, state="in_flight").set(in_flight)
        if queue == "requests":
            self.queue_lag.queue_depth(visible)

    def set_live_counts(
        self,
        counts: LiveCounts,
        route_of_flow: Callable[[str], str | None],
        all_routes: Iterable[str] = (),
        wall: Callable[[], float] = time.time,
    ) -> None:
        """Publish a ledger count: records by phase, open loops and oldest age by route."""
        open_total = counts.open_loops
        self.ledger_phase.labels(phase="starting").set(max(0, counts.in_progress - open_total))
        self.ledger_phase.labels(phase="open").set(open_total)
        self.ledger_phase.labels(phase="done").set(counts.unpublished)
        by_route: dict[str, tuple[int, datetime | None]] = {
            self.route_label(name): (0, None) for name in all_routes
        }
        for flow, (n, oldest) in counts.open_by_flow.items():
            label = self.route_label(route_of_flow(flow))
            total, first = by_route.get(label, (0, None))
            if oldest is not None and (first is None or oldest < first):
                first = oldest
            by_route[label] = (total + n, first)
        for label, (n, oldest) in by_route.items():
            self.open_loops.labels(route=label).set(n)
            self.oldest_open_loop_age.labels(route=label).set_function(_age_since(oldest, wall))
        self.ledger_counted_at.set(wall())

    def render(self) -> bytes:
        return generate_latest(self.registry)
