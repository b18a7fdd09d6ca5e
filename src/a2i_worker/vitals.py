"""What the health endpoint and the gauges report: receive failures and live gauges.

``DependencyChecks`` holds the readiness rule for receiving: a failing receive makes the
worker not ready at once (a successful one clears it). The periodic dependency checks
themselves are :mod:`a2i_worker.preflight`'s. ``Gauges`` copies the limiter's, the gate's
and the intake's state into the metrics every two seconds; ``LedgerGauges`` counts the
ledger's sparse indexes (never a table Scan) every sweep interval and feeds the quota
gate's in-flight count from the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import structlog

from a2i_worker.classify import classify

if TYPE_CHECKING:
    from a2i_worker.health import Readiness
    from a2i_worker.intake import QueueConsumer
    from a2i_worker.ledger.protocol import Ledger, LiveCounts
    from a2i_worker.limiting import AdaptiveLimiter, QuotaGate
    from a2i_worker.metrics import Metrics
    from a2i_worker.routes import Routes

__all__ = ["DependencyChecks", "Gauges", "LedgerGauges"]

log = structlog.get_logger(__name__)


class DependencyChecks:
    def __init__(self, *, readiness: Readiness, metrics: Metrics) -> None:
        self._readiness = readiness
        self._metrics = metrics

    def receive_failed(self, code: str) -> None:
        """Not ready at once (not only at the next periodic check): a failing receive is
        the clearest sign that SQS is unreachable."""
        self._metrics.dependency_errors.labels(dependency="sqs").inc()
        self._readiness.failures["sqs"] = code or "unreachable"

    def receive_ok(self) -> None:
        self._readiness.failures.pop("sqs", None)


class Gauges:
    def __init__(
        self,
        *,
        metrics: Metrics,
        limiter: AdaptiveLimiter,
        gate: QuotaGate,
        consumers: list[QueueConsumer],
        every: float = 2.0,
    ) -> None:
        self._m = metrics
        self._limiter = limiter
        self._gate = gate
        self._consumers = consumers
        self._every = every

    def update(self) -> None:
        snap = self._limiter.snapshot()
        self._m.limiter_rate.labels(cls="start").set(snap.start.rate)
        self._m.limiter_rate.labels(cls="sweep").set(snap.sweep.rate)
        gsnap = self._gate.snapshot()
        self._m.gate_level.set(gsnap.cap if gsnap.cap is not None else -1)
        self._m.gate_open.set(1 if gsnap.is_open else 0)
        self._m.in_flight_loops.set(gsnap.in_flight)
        for c in self._consumers:
            self._m.messages_held.labels(queue=c.name).set(c.held)

    async def run(self) -> None:
        while True:
            self.update()
            await anyio.sleep(self._every)


class LedgerGauges:
    """Open loops, records in progress and the oldest open loop, from the ledger.

    Cost per count: SQLite, three COUNTs over partial indexes; DynamoDB, ``Select=COUNT``
    Queries of the sparse ``due``/``done`` indexes (every shard) and of ``open`` per
    configured flow definition: proportional to the records in progress, never to the
    table, and no Scan. Every replica counts (each is scraped on its own; alert on
    ``max``), at the sweep interval.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        metrics: Metrics,
        routes: Routes,
        on_in_flight: Callable[[int], None] | None = None,
        every: float = 60.0,
    ) -> None:
        self._ledger = ledger
        self._m = metrics
        self._routes = routes
        self._on_in_flight = on_in_flight
        self._every = every
        self._flows = {r.flow_definition_arn for r in routes.values() if not r.shadow}
        self._route_by_flow: dict[str, str] = {}
        for name, r in routes.items():  # the first route on a flow definition names it
            self._route_by_flow.setdefault(r.flow_definition_arn, name)
        metrics.routes = frozenset(routes)
        self.last: LiveCounts | None = None

    def _route_of(self, flow: str) -> str | None:
        return self._route_by_flow.get(flow)

    async def update(self) -> LiveCounts:
        counts = await self._ledger.live_counts(self._flows)
        if self._on_in_flight is not None:
            self._on_in_flight(counts.in_progress)
        active = [n for n, r in self._routes.items() if not r.shadow]
        self._m.set_live_counts(counts, self._route_of, active)
        self.last = counts
        return counts

    async def run(self) -> None:
        while True:
            await anyio.sleep(self._every)
            try:
                await self.update()
            except Exception as exc:
                log.warning("counting the ledger failed; will try again", error=classify(exc).code)
