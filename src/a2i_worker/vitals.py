"""What the health endpoint and the gauges report: dependency checks and live gauges.

``DependencyChecks`` holds the readiness rule for SQS and A2I: a failing receive makes
the worker not ready at once (a successful one clears it); the periodic checks ask each
service something cheap and side-effect free. ``Gauges`` copies the limiter's, the
gate's and the intake's state into the metrics every two seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from a2i_worker.health import Readiness
    from a2i_worker.intake import QueueConsumer
    from a2i_worker.limiting import AdaptiveLimiter, QuotaGate
    from a2i_worker.metrics import Metrics

__all__ = ["DependencyChecks", "Gauges"]

#: A loop name that cannot exist: Describe of it proves A2I answers, with no side effect.
_PROBE_LOOP = "a2i-worker-readiness-probe"


class DependencyChecks:
    def __init__(
        self, *, sqs: Any, a2i: Any, requests_queue_url: str, readiness: Readiness, metrics: Metrics
    ) -> None:
        self._sqs = sqs
        self._a2i = a2i
        self._queue = requests_queue_url
        self._readiness = readiness
        self._metrics = metrics

    def receive_failed(self, code: str) -> None:
        """Not ready at once (not only at the next periodic check): a failing receive is
        the clearest sign that SQS is unreachable."""
        self._metrics.dependency_errors.labels(dependency="sqs").inc()
        self._readiness.failures["sqs"] = code or "unreachable"

    def receive_ok(self) -> None:
        self._readiness.failures.pop("sqs", None)

    async def check_sqs(self) -> None:
        await self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])

    async def check_a2i(self) -> None:
        try:
            await self._a2i.describe_human_loop(HumanLoopName=_PROBE_LOOP)
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if status >= 500 or status in (401, 403):
                raise


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
