"""Prometheus metrics, defined in one place, on a registry of their own.

Label values are always from closed sets (outcome, operation, error kind, phase,
status, event kind): never request ids, inputs or answers.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "a2i_worker_requests", "Review requests by final outcome", ["outcome"], registry=r
        )
        self.rejections = Counter(
            "a2i_worker_rejections", "Rejected messages by reason code", ["code"], registry=r
        )
        self.unexpected_errors = Counter(
            "a2i_worker_unexpected_errors",
            "Exceptions that are neither AWS nor network errors (bugs), by role",
            ["role"],
            registry=r,
        )
        self.loops_started = Counter(
            "a2i_worker_loops_started", "Human loops started (including resubmissions)", registry=r
        )
        self.start_latency = Histogram(
            "a2i_worker_start_latency_seconds",
            "StartHumanLoop call latency",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.receive_to_start = Histogram(
            "a2i_worker_receive_to_start_seconds",
            "From SQS receive to StartHumanLoop acknowledged",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.a2i_calls = Counter(
            "a2i_worker_a2i_calls",
            "A2I runtime calls by operation and result",
            ["op", "result"],
            registry=r,
        )
        self.limiter_rate = Gauge(
            "a2i_worker_limiter_rate",
            "Current adaptive rate (calls/s), by call class: start (StartHumanLoop) or sweep",
            ["cls"],
            registry=r,
        )
        self.gate_level = Gauge(
            "a2i_worker_quota_gate_level",
            "Learned cap on loops in flight (-1 = none learned)",
            registry=r,
        )
        self.gate_open = Gauge("a2i_worker_quota_gate_open", "1 if starts may go", registry=r)
        self.in_flight_loops = Gauge(
            "a2i_worker_loops_in_flight", "Loops started and not yet finished", registry=r
        )
        self.throttles = Counter(
            "a2i_worker_throttles",
            "ThrottlingException answers, by call class: start or sweep",
            ["cls"],
            registry=r,
        )
        self.quota_rejections = Counter(
            "a2i_worker_quota_rejections", "ServiceQuotaExceededException answers", registry=r
        )
        self.ledger_phase = Gauge(
            "a2i_worker_ledger_records",
            "Ledger records by phase, at the ledger's last count",
            ["phase"],
            registry=r,
        )
        self.open_loops = Gauge(
            "a2i_worker_open_loops",
            "Loops not yet finished, by status: starting (name fixed, start not confirmed) "
            "or open (the loop exists in A2I); from the ledger's last count",
            ["status"],
            registry=r,
        )
        self.events = Counter(
            "a2i_worker_events", "Events from the events queue by kind", ["kind"], registry=r
        )
        self.sweep_calls = Counter(
            "a2i_worker_sweep_calls", "Sweeper calls by operation", ["op"], registry=r
        )
        self.results_published = Counter(
            "a2i_worker_results_published", "Results accepted by the results queue", registry=r
        )
        self.queue_lag = Gauge(
            "a2i_worker_queue_lag_seconds",
            "Age of the last received request message when received",
            registry=r,
        )
        self.messages_held = Gauge(
            "a2i_worker_messages_held", "SQS messages held in memory", ["queue"], registry=r
        )
        self.dependency_errors = Counter(
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

    def set_ledger_counts(self, counts: Mapping[str, int]) -> None:
        """Publish a ledger count by phase: records by phase and open loops by status."""
        for phase, n in counts.items():
            self.ledger_phase.labels(phase=phase).set(n)
        for status in ("starting", "open"):
            self.open_loops.labels(status=status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
