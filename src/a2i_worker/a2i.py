"""The one seam to the A2I runtime: every call goes through the limiter and the gate.

``A2IGateway`` turns botocore answers into values the roles act on. Throttling and
quota answers are retried here (they never count against a request) with no pause of
their own: the limiter and the gate pace them. 5xx and network errors are retried under
:data:`a2i_worker.backoff.A2I_TRANSIENT`; the client has botocore retries off, so those
are the only retries. Conflict and "name already used" are answered with
DescribeHumanLoop, never with a second loop.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import structlog

from a2i_worker.backoff import A2I_TRANSIENT, Backoff
from a2i_worker.classify import Classified, ErrorKind, classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.ledger.protocol import StartPayload

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker_a2i_runtime.client import AugmentedAIRuntimeClient

__all__ = [
    "A2IGateway",
    "GateLike",
    "LimiterLike",
    "LoopInfo",
    "LoopSummary",
]

log = structlog.get_logger(__name__)

#: Answers that passed the service's rate bucket (it throttles before it validates): each
#: is an answered call of its class and feeds the limiter like a success. Not 5xx or
#: network errors (no answer about rate) and not access errors (refused at the door).
_ADMITTED = frozenset(
    {
        ErrorKind.QUOTA,
        ErrorKind.CONFLICT,
        ErrorKind.ALREADY_EXISTS,
        ErrorKind.NOT_FOUND,
        ErrorKind.INVALID,
    }
)


class LimiterLike(Protocol):
    def acquire(self, cls: str) -> Any: ...  # async context manager
    def on_success(self, cls: str) -> None: ...
    def on_throttle(self, cls: str) -> None: ...


class GateLike(Protocol):
    """The quota gate. ``wait_open`` reserves a slot; ``confirm`` (right before sending)
    may take it back; otherwise every reservation ends in exactly one of
    ``on_start_succeeded``, ``on_quota_exceeded`` or ``on_start_failed``."""

    async def wait_open(self) -> None: ...
    def confirm(self) -> bool: ...
    def on_start_succeeded(self) -> None: ...
    def on_quota_exceeded(self, in_flight: int | None = None) -> None: ...
    def on_start_failed(self) -> None: ...
    def on_loop_finished(self, n: int = 1) -> None: ...


@dataclass(frozen=True)
class LoopInfo:
    """DescribeHumanLoop, as values."""

    name: str
    arn: str
    status: str
    created_at: datetime | None
    failure_code: str | None
    failure_reason: str | None
    output_uri: str | None
    flow_definition_arn: str | None


@dataclass(frozen=True)
class LoopSummary:
    name: str
    status: str
    created_at: datetime | None
    failure_reason: str | None


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


class A2IGateway:
    """Rate-limited, classified access to ``sagemaker-a2i-runtime``."""

    def __init__(
        self,
        client: AugmentedAIRuntimeClient,
        limiter: LimiterLike,
        gate: GateLike,
        *,
        transient_attempts: int = 4,
        metrics: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._gate = gate
        self._transient = A2I_TRANSIENT.tries(transient_attempts)
        self._metrics = metrics
        self._rng = rng or random.Random()

    # -- StartHumanLoop -------------------------------------------------------------

    async def start(self, name: str, payload: StartPayload) -> LoopInfo:
        """Start loop ``name`` (idempotently). Returns its description.

        Retries throttling and quota answers until it succeeds or the caller is
        cancelled; retries transient errors a few times, then raises TransientError.
        Raises PermanentError when A2I refuses the request itself.
        """
        transient = Backoff(self._transient, rng=self._rng)
        while True:
            await self._gate.wait_open()
            settled = False
            try:
                async with self._limiter.acquire("start"):
                    if not self._gate.confirm():
                        # A cap learned while we waited for a rate token: the gate took
                        # the reservation back; wait for the gate again, send nothing.
                        settled = True
                        continue
                    kwargs: dict[str, Any] = {
                        "HumanLoopName": name,
                        "FlowDefinitionArn": payload.flow_definition_arn,
                        "HumanLoopInput": {"InputContent": payload.input_content},
                    }
                    if payload.content_classifiers:
                        kwargs["DataAttributes"] = {
                            "ContentClassifiers": list(payload.content_classifiers)
                        }
                    t0 = anyio.current_time()
                    try:
                        # Shielded: once sent, the answer is waited for (bounded by the
                        # client's read timeout) so a shutdown never half-records a start.
                        with anyio.CancelScope(shield=True):
                            resp = await self._client.start_human_loop(**kwargs)
                    except Exception as exc:
                        c = classify(exc)
                        self._count("StartHumanLoop", c)
                        if c.kind is ErrorKind.BUG:
                            raise  # a defect: the caller logs its traceback
                        if c.kind in _ADMITTED:
                            self._limiter.on_success("start")
                    else:
                        self._limiter.on_success("start")
                        self._gate.on_start_succeeded()
                        settled = True
                        self._observe_start(anyio.current_time() - t0)
                        return LoopInfo(
                            name=name,
                            arn=resp["HumanLoopArn"],
                            status="InProgress",
                            created_at=None,
                            failure_code=None,
                            failure_reason=None,
                            output_uri=None,
                            flow_definition_arn=payload.flow_definition_arn,
                        )
                if c.kind is ErrorKind.QUOTA:
                    self._gate.on_quota_exceeded()
                    settled = True
            finally:
                if not settled:
                    self._gate.on_start_failed()
            if c.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle("start")
                continue
            if c.kind is ErrorKind.QUOTA:
                continue
            if c.kind in (ErrorKind.CONFLICT, ErrorKind.ALREADY_EXISTS):
                existing = await self.describe(name)
                if existing is not None:
                    log.info("loop already existed; using it", loop_name=name, code=c.code)
                    return existing
                if c.kind is ErrorKind.CONFLICT:
                    # Conflict but Describe says it's gone (deleted in between): retry.
                    continue
                raise PermanentError(
                    "loop_name_unavailable",
                    f"A2I refused loop name {name}: {c.message}",
                )
            if c.kind is ErrorKind.TRANSIENT:
                if not await transient.retry():
                    raise TransientError(f"StartHumanLoop failed: {c.code}: {c.message}")
                continue
            if c.kind is ErrorKind.INVALID:
                # A2I answers ValidationException for a name already used by a loop: the
                # code cannot tell that from a bad input, so Describe decides.
                existing = await self.describe(name)
                if existing is not None:
                    log.info("loop already existed; using it", loop_name=name, code=c.code)
                    return existing
            raise _permanent("StartHumanLoop", c)

    # -- DescribeHumanLoop ----------------------------------------------------------

    async def describe(self, name: str) -> LoopInfo | None:
        """Describe ``name``; None if A2I doesn't know it (ResourceNotFound)."""
        resp = await self._call("DescribeHumanLoop", HumanLoopName=name)
        if resp is None:
            return None
        output = resp.get("HumanLoopOutput") or {}
        return LoopInfo(
            name=resp.get("HumanLoopName", name),
            arn=resp.get("HumanLoopArn", ""),
            status=resp.get("HumanLoopStatus", ""),
            created_at=_as_utc(resp.get("CreationTime")),
            failure_code=resp.get("FailureCode"),
            failure_reason=resp.get("FailureReason"),
            output_uri=output.get("OutputS3Uri"),
            flow_definition_arn=resp.get("FlowDefinitionArn"),
        )

    async def stop(self, name: str) -> bool:
        """StopHumanLoop; False if the loop is unknown."""
        return await self._call("StopHumanLoop", HumanLoopName=name) is not None

    async def delete(self, name: str) -> bool:
        return await self._call("DeleteHumanLoop", HumanLoopName=name) is not None

    async def list_loops(
        self,
        flow_definition_arn: str,
        *,
        created_after: datetime | None,
        max_pages: int,
    ) -> AsyncIterator[list[LoopSummary]]:
        """Pages of ListHumanLoops (ascending creation time), at most ``max_pages``."""
        token: str | None = None
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {
                "FlowDefinitionArn": flow_definition_arn,
                "SortOrder": "Ascending",
                "MaxResults": 100,
            }
            if created_after is not None:
                kwargs["CreationTimeAfter"] = created_after
            if token:
                kwargs["NextToken"] = token
            resp = await self._call("ListHumanLoops", **kwargs)
            if resp is None:
                return
            yield [
                LoopSummary(
                    name=s["HumanLoopName"],
                    status=s.get("HumanLoopStatus", ""),
                    created_at=_as_utc(s.get("CreationTime")),
                    failure_reason=s.get("FailureReason"),
                )
                for s in resp.get("HumanLoopSummaries", [])
            ]
            token = resp.get("NextToken")
            if not token:
                return

    async def _call(self, op: str, **kwargs: Any) -> dict[str, Any] | None:
        """A sweep-class call with throttle/transient retries; None on ResourceNotFound."""
        method = {
            "DescribeHumanLoop": self._client.describe_human_loop,
            "StopHumanLoop": self._client.stop_human_loop,
            "DeleteHumanLoop": self._client.delete_human_loop,
            "ListHumanLoops": self._client.list_human_loops,
        }[op]
        transient = Backoff(self._transient, rng=self._rng)
        while True:
            async with self._limiter.acquire("sweep"):
                try:
                    resp: dict[str, Any] = await method(**kwargs)  # type: ignore[operator]
                except Exception as exc:
                    c = classify(exc)
                    self._count(op, c)
                    if c.kind is ErrorKind.BUG:
                        raise  # a defect: the caller logs its traceback
                    if c.kind in _ADMITTED:
                        # "not found" too: after a restart every half-started request
                        # is asked about first, and the sweep rate must grow on those
                        self._limiter.on_success("sweep")
                else:
                    self._limiter.on_success("sweep")
                    self._count(op, None)
                    return resp
            if c.kind is ErrorKind.THROTTLED:
                self._limiter.on_throttle("sweep")
                continue
            if c.kind is ErrorKind.NOT_FOUND:
                return None
            if c.kind is ErrorKind.TRANSIENT:
                if not await transient.retry():
                    raise TransientError(f"{op} failed: {c.code}: {c.message}")
                continue
            raise _permanent(op, c)

    def _count(self, op: str, c: Classified | None) -> None:
        if self._metrics is not None:
            self._metrics.a2i_call(op, c.kind.value if c else "ok")

    def _observe_start(self, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.a2i_call("StartHumanLoop", "ok")
            self._metrics.start_latency.observe(seconds)


def _permanent(op: str, c: Classified) -> PermanentError:
    code = "a2i_access_denied" if c.kind is ErrorKind.ACCESS else "a2i_validation"
    return PermanentError(
        code, f"{op} was refused by A2I ({c.code}): {c.message}", quotes_service=True
    )
