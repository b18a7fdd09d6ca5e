"""The emulated services without HTTP: the call pipeline, counters and the control API.

:class:`Emulator` composes the A2I runtime (:class:`~a2i_emulator.runtime.HumanLoops`) and the
SageMaker subset (:class:`~a2i_emulator.sagemaker.SageMakerOps`) of one account and region.
:meth:`Emulator.call` runs one API call of either service with the fault, throttling and
counting rules, in the order the services apply them: injected latency/5xx, then throttling,
then validation against the model, then semantics and quotas. An error code the model does
not declare for the operation is an emulator bug: it is logged and answered as the
service's internal error, never sent as if it were modeled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import structlog

from a2i_emulator.errors import ApiError
from a2i_emulator.faults import FaultConfig
from a2i_emulator.flows import FlowDefinition
from a2i_emulator.model import A2I_RUNTIME, ALL_OPERATIONS, declared_errors, service_of
from a2i_emulator.publisher import Publisher
from a2i_emulator.quotas import Quotas
from a2i_emulator.reviewers import ReviewerSpec
from a2i_emulator.runtime import FinishError, HumanLoops
from a2i_emulator.sagemaker import SageMakerOps
from a2i_emulator.store import LoopStore
from a2i_emulator.tokens import TokenCodec
from a2i_emulator.validation import RequestValidationError, parse_request

__all__ = ["ControlError", "Emulator", "EmulatorSettings", "OperationCounters"]

log = structlog.get_logger(__name__)

_ERROR_COUNTER = {
    "ValidationException": "validation_errors",
    "ResourceNotFoundException": "not_found",
    "ResourceNotFound": "not_found",
    "ConflictException": "conflicts",
    "ResourceInUse": "in_use",
    "ServiceQuotaExceededException": "quota_rejected",
    "ResourceLimitExceeded": "quota_rejected",
    "ThrottlingException": "throttled",
    "InternalServerException": "injected_errors",
    "InternalFailure": "injected_errors",
}


def internal_error_code(operation: str) -> str:
    """The code of a 500 answer of ``operation``'s service."""
    return "InternalServerException" if service_of(operation) == A2I_RUNTIME else "InternalFailure"


class ControlError(Exception):
    """A refused control-API request (``status`` 400/404/409)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class EmulatorSettings:
    """What :class:`Emulator` needs from ``EmulatorConfig`` (kept free of server concerns)."""

    region: str = "us-east-1"
    account_id: str = "123456789012"
    s3_endpoint_url: str | None = None
    events_endpoint_url: str | None = None
    event_bus_name: str = "default"
    seed: int | None = None
    aws_access_key_id: str = "testing"
    aws_secret_access_key: str = "testing"  # noqa: S105 - dummy credentials for moto
    flow_activation_seconds: float = 0.1
    flow_deletion_seconds: float = 0.1


@dataclass
class OperationCounters:
    calls: int = 0
    accepted: int = 0
    throttled: int = 0
    quota_rejected: int = 0
    conflicts: int = 0
    in_use: int = 0
    validation_errors: int = 0
    not_found: int = 0
    injected_errors: int = 0

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_Handler = Callable[[Mapping[str, Any]], dict[str, Any]]


class Emulator:
    """One emulated account+region of A2I runtime and the SageMaker flow-definition API."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        token_key = (
            secrets.token_bytes(32) if settings.seed is None else f"{settings.seed}".encode()
        )
        self.quotas = Quotas()
        self.faults = FaultConfig()
        self.default_reviewers = ReviewerSpec()
        self.counters = {op: OperationCounters() for op in ALL_OPERATIONS}
        self.publisher = Publisher(
            region=settings.region,
            account_id=settings.account_id,
            s3_endpoint_url=settings.s3_endpoint_url,
            events_endpoint_url=settings.events_endpoint_url,
            event_bus_name=settings.event_bus_name,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            rng=self.rng,
            event_faults=lambda: self.faults.events,
            output_faults=lambda: self.faults.outputs,
        )
        store = LoopStore(settings.region, settings.account_id, token_key)
        self.sagemaker = SageMakerOps(
            region=settings.region,
            account_id=settings.account_id,
            quotas=lambda: self.quotas,
            open_loops_of=lambda arn: self.loops.open_loops_of(arn),
            clock=time.time,
            tokens=TokenCodec(token_key),
            activation_seconds=settings.flow_activation_seconds,
            deletion_seconds=settings.flow_deletion_seconds,
        )
        self.loops = HumanLoops(
            store=store,
            flows=self.sagemaker.flows,
            quotas=lambda: self.quotas,
            default_reviewers=lambda: self.default_reviewers,
            publisher=self.publisher,
            rng=self.rng,
        )
        self._handlers: dict[str, _Handler] = {
            **self.loops.handlers(),
            **self.sagemaker.handlers(),
        }
        self._scheduler_task: asyncio.Task[None] | None = None

    @property
    def store(self) -> LoopStore:
        return self.loops.store

    async def start(self) -> None:
        await self.publisher.start()
        self._scheduler_task = asyncio.create_task(
            self.loops.scheduler.run(), name="emulator-sched"
        )

    async def stop(self) -> None:
        if self._scheduler_task is not None:
            self._scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler_task
            self._scheduler_task = None
        await self.publisher.stop()

    # -- the API call pipeline -----------------------------------------------------------------

    async def call(
        self,
        operation: str,
        *,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any] | int:
        """Run one API call. Returns the output dict, or 503 for an injected bare 503.

        Raises :class:`ApiError` for every error answer; counts everything.
        """
        counters = self.counters[operation]
        counters.calls += 1
        op_faults = self.faults.for_operation(operation)
        if not op_faults.inactive:
            decision = op_faults.decide(self.rng)
            if decision.latency_seconds > 0:
                await asyncio.sleep(decision.latency_seconds)
            if decision.status == 503:
                counters.injected_errors += 1
                return 503
            if decision.status == 500:
                counters.injected_errors += 1
                if op_faults.error_code is not None:
                    raise ApiError(op_faults.error_code, f"Injected {op_faults.error_code}.")
                raise ApiError(internal_error_code(operation), "Injected internal server error.")
        try:
            result = self._admit_and_run(operation, path_params, query, body)
        except ApiError as exc:
            if exc.code not in declared_errors(operation):
                log.error("emulator_undeclared_error", operation=operation, code=exc.code)
                raise ApiError(
                    internal_error_code(operation),
                    f"emulator bug: {exc.code} is not an error of {operation}",
                ) from None
            name = _ERROR_COUNTER.get(exc.code)
            if name is not None:
                setattr(counters, name, getattr(counters, name) + 1)
            raise
        counters.accepted += 1
        return result

    def _admit_and_run(
        self,
        operation: str,
        path_params: Mapping[str, str],
        query: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        if not self.quotas.allow(operation):
            raise ApiError("ThrottlingException", "Rate exceeded.")
        try:
            params = parse_request(operation, path_params=path_params, query=query, body=body)
        except RequestValidationError as exc:
            raise ApiError("ValidationException", exc.message) from None
        return self._handlers[operation](params)

    # -- control API ---------------------------------------------------------------------------

    def add_flow(
        self, name: str, output_s3_uri: str, reviewers: ReviewerSpec | None = None
    ) -> FlowDefinition:
        """An Active flow definition at once (``a2i-emulator serve --flow``)."""
        role = f"arn:aws:iam::{self.settings.account_id}:role/a2i-emulator"
        return self.sagemaker.add_flow(
            name, output_s3_uri, role, reviewers=reviewers, active_now=True
        )

    def _flow(self, name: str) -> FlowDefinition:
        flow = self.sagemaker.flows.find(name)
        if flow is None:
            raise ControlError(404, f"no flow definition {name}")
        return flow

    def flow_reviewers(self, name: str) -> dict[str, Any]:
        flow = self._flow(name)
        own = flow.reviewers is not None
        return {"own": own, **(flow.reviewers or self.default_reviewers).to_json()}

    def set_flow_reviewers(self, name: str, patch: Any) -> ReviewerSpec:
        flow = self._flow(name)
        flow.reviewers = self._parse(
            lambda: ReviewerSpec.from_json(patch, flow.reviewers or self.default_reviewers)
        )
        return flow.reviewers

    def set_default_reviewers(self, patch: Any) -> ReviewerSpec:
        self.default_reviewers = self._parse(
            lambda: ReviewerSpec.from_json(patch, self.default_reviewers)
        )
        return self.default_reviewers

    def update_quotas(self, patch: Any) -> dict[str, Any]:
        if not isinstance(patch, Mapping):
            raise ControlError(400, "quotas must be an object")
        self._parse(lambda: self.quotas.update(patch, ALL_OPERATIONS))
        return self.quotas.to_json(ALL_OPERATIONS)

    def update_faults(self, patch: Any) -> dict[str, Any]:
        faults: FaultConfig = self._parse(lambda: self.faults.merged(patch, ALL_OPERATIONS))
        for op, op_faults in faults.operations.items():
            code = op_faults.error_code
            if code is not None and code not in declared_errors(op):
                known = ", ".join(sorted(declared_errors(op)))
                raise ControlError(400, f"{op} cannot answer {code}; it may answer: {known}")
        self.faults = faults
        return self.faults.to_json(ALL_OPERATIONS)

    @staticmethod
    def _parse(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None

    async def finish_by_hand(self, name: str, outcome: Any, answers: Any = None) -> dict[str, Any]:
        try:
            return await self.loops.finish_by_hand(name, outcome, answers)
        except FinishError as exc:
            raise ControlError(exc.status, exc.message) from None

    def reset(self, everything: bool = False) -> None:
        """Forget loops and counters (flow definitions stay); ``everything``: also quotas,
        faults and the default reviewers."""
        self.loops.clear()
        self.publisher.discard_delayed()
        self.publisher.counters.reset()
        self.counters = {op: OperationCounters() for op in ALL_OPERATIONS}
        if everything:
            self.quotas = Quotas()
            self.faults = FaultConfig()
            self.default_reviewers = ReviewerSpec()

    def counters_json(self, detail: bool = False) -> dict[str, Any]:
        store = self.store
        out: dict[str, Any] = {
            "operations": {op: c.to_json() for op, c in self.counters.items()},
            "loops_by_status": dict(store.status_counts),
            "loops_total": len(store),
            "loops_deleted": store.deleted,
            "idempotent_repeats": store.idempotent_repeats,
            "max_starts_per_name": store.max_starts_per_name,
            "names_started_more_than_once": list(store.names_started_more_than_once),
            "events": self.publisher.counters.events_json(),
            "outputs_written": self.publisher.counters.outputs_written,
            "output_errors": self.publisher.counters.output_errors,
            "outputs_skipped": self.publisher.counters.outputs_skipped,
            "scheduled": len(self.loops.scheduler),
            "flow_definitions": len(self.sagemaker.flows),
            "human_task_uis": len(self.sagemaker.task_uis),
            # tokens in each rate-limited operation's bucket, read with the counters above
            "rate_tokens": {
                op: round(tokens, 3)
                for op in ALL_OPERATIONS
                if (tokens := self.quotas.tokens(op)) is not None
            },
        }
        out["operations"]["StartHumanLoop"]["idempotent_repeats"] = store.idempotent_repeats
        if detail:
            out["starts_per_name"] = dict(store.starts_per_name)
        return out
