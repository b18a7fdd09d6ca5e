"""The emulated service without HTTP: operations, reviewers, quotas, faults, counters.

:class:`Emulator` owns the store, the quotas, the scheduler and the publisher. Its operation
methods take the validated input dict of :mod:`a2i_emulator.validation` and return the output
dict (or raise :class:`~a2i_emulator.errors.ApiError`); :meth:`Emulator.call` wraps one API
call with the fault, throttling and counting rules, in the order the service applies them:
injected latency/5xx, then throttling, then validation, then semantics and quotas.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import structlog

from a2i_emulator.errors import ApiError
from a2i_emulator.faults import FaultConfig
from a2i_emulator.publisher import Publisher, output_key, split_s3_uri
from a2i_emulator.quotas import Quotas
from a2i_emulator.reviewers import ReviewerSpec
from a2i_emulator.scheduler import Scheduler
from a2i_emulator.store import (
    ACTIVE_STATUSES,
    ConflictError,
    Loop,
    LoopStore,
    NameReusedError,
    NotFoundError,
    NotTerminalError,
    TokenError,
)
from a2i_emulator.validation import OPERATIONS, RequestValidationError, parse_request

__all__ = ["ControlError", "Emulator", "EmulatorSettings", "FlowDefinition", "OperationCounters"]

log = structlog.get_logger(__name__)

_FLOW_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*\Z")
_FAILURES = {
    "Expired": "The human loop expired before a worker completed the task.",
    "InternalError": "An internal error occurred while processing the human loop.",
}
_ERROR_COUNTER = {
    "ValidationException": "validation_errors",
    "ResourceNotFoundException": "not_found",
    "ConflictException": "conflicts",
    "ServiceQuotaExceededException": "quota_rejected",
    "ThrottlingException": "throttled",
    "InternalServerException": "injected_errors",
}


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


@dataclass
class OperationCounters:
    calls: int = 0
    accepted: int = 0
    throttled: int = 0
    quota_rejected: int = 0
    conflicts: int = 0
    validation_errors: int = 0
    not_found: int = 0
    injected_errors: int = 0

    def to_json(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class FlowDefinition:
    name: str
    arn: str
    output_s3_uri: str
    bucket: str
    prefix: str
    reviewers: ReviewerSpec | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "output_s3_uri": self.output_s3_uri,
            "reviewers": None if self.reviewers is None else self.reviewers.to_json(),
        }


@dataclass(frozen=True, slots=True)
class _Due:
    kind: str  # "finish" | "stopped"
    name: str
    seq: int
    outcome: str = ""


@dataclass
class _Pending:
    """A Completed loop whose output.json is being written."""

    future: asyncio.Future[Loop]


class Emulator:
    """One emulated account+region of A2I runtime."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        token_key = (
            secrets.token_bytes(32) if settings.seed is None else f"{settings.seed}".encode()
        )
        self.store = LoopStore(settings.region, settings.account_id, token_key)
        self.quotas = Quotas()
        self.faults = FaultConfig()
        self.default_reviewers = ReviewerSpec()
        self.flows: dict[str, FlowDefinition] = {}
        self._flows_by_arn: dict[str, FlowDefinition] = {}
        self._flow_arn_prefix = (
            f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:flow-definition/"
        )
        self.counters = {op: OperationCounters() for op in OPERATIONS}
        self._pending: dict[str, _Pending] = {}
        self.scheduler: Scheduler[_Due] = Scheduler(self._on_due)
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
        )
        self._scheduler_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.publisher.start()
        self._scheduler_task = asyncio.create_task(self.scheduler.run(), name="emulator-sched")

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

        Raises :class:`ApiError` for every modeled error answer; counts everything.
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
                raise ApiError("InternalServerException", "Injected internal server error.")
        try:
            result = self._admit_and_run(operation, path_params, query, body)
        except ApiError as exc:
            name = _ERROR_COUNTER[exc.code]
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
        return self._dispatch(operation, params)

    def _dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartHumanLoop":
            return self.start_human_loop(params)
        if operation == "DescribeHumanLoop":
            return self.describe_human_loop(params)
        if operation == "StopHumanLoop":
            return self.stop_human_loop(params)
        if operation == "DeleteHumanLoop":
            return self.delete_human_loop(params)
        return self.list_human_loops(params)

    # -- operations ----------------------------------------------------------------------------

    def start_human_loop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name: str = params["HumanLoopName"]
        flow_arn: str = params["FlowDefinitionArn"]
        input_content: str = params["HumanLoopInput"]["InputContent"]
        attrs = params.get("DataAttributes")
        classifiers = None if attrs is None else tuple(attrs["ContentClassifiers"])
        flow = self._flows_by_arn.get(flow_arn)
        if flow is None:
            raise ApiError(
                "ValidationException",
                f"Flow definition {flow_arn} does not exist in this account and region.",
            )
        try:
            json.loads(input_content)
        except ValueError:
            raise ApiError(
                "ValidationException", "HumanLoopInput.InputContent must be a valid JSON string."
            ) from None
        existing = self.store.peek(name)
        if existing is None and self.quotas.over_cap(self.store.open_loops):
            raise ApiError(
                "ServiceQuotaExceededException",
                f"You have reached the maximum number of active human loops "
                f"({self.quotas.max_in_progress}).",
            )
        try:
            loop, created = self.store.start(
                name, flow_arn, input_content, classifiers, time.time()
            )
        except ConflictError as exc:
            raise ApiError("ConflictException", exc.message) from None
        except NameReusedError as exc:
            raise ApiError("ValidationException", exc.message) from None
        if created:
            spec = flow.reviewers or self.default_reviewers
            if spec.mode == "auto":
                delay = spec.sample_delay(self.rng)
                outcome = spec.sample_outcome(self.rng)
                self.scheduler.push(delay, _Due("finish", name, loop.seq, outcome))
        return {"HumanLoopArn": loop.arn}

    def _get(self, name: str) -> Loop:
        try:
            return self.store.get(name)
        except NotFoundError as exc:
            raise ApiError("ResourceNotFoundException", exc.message) from None

    def describe_human_loop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return describe_json(self._get(params["HumanLoopName"]))

    def stop_human_loop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        loop = self._get(params["HumanLoopName"])
        if self.store.stop(loop.name):
            spec = self._spec_for(loop)
            if spec.stop_delay <= 0:
                self._finish_stopped(loop)
            else:
                self.scheduler.push(spec.stop_delay, _Due("stopped", loop.name, loop.seq))
        return {}

    def delete_human_loop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params["HumanLoopName"]
        self._get(name)
        try:
            self.store.delete(name)
        except NotTerminalError as exc:
            raise ApiError("ValidationException", exc.message) from None
        return {}

    def list_human_loops(self, params: Mapping[str, Any]) -> dict[str, Any]:
        flow_arn: str = params["FlowDefinitionArn"]
        if flow_arn not in self._flows_by_arn:
            raise ApiError(
                "ResourceNotFoundException", f"Flow definition {flow_arn} does not exist."
            )
        after: dt.datetime | None = params.get("CreationTimeAfter")
        before: dt.datetime | None = params.get("CreationTimeBefore")
        try:
            page = self.store.list(
                flow_arn,
                creation_time_after=None if after is None else _epoch(after),
                creation_time_before=None if before is None else _epoch(before),
                sort_order=params.get("SortOrder", "Descending"),
                max_results=params.get("MaxResults", 100),
                next_token=params.get("NextToken"),
            )
        except TokenError as exc:
            raise ApiError("ValidationException", exc.message) from None
        out: dict[str, Any] = {"HumanLoopSummaries": [summary_json(lp) for lp in page.loops]}
        if page.next_token is not None:
            out["NextToken"] = page.next_token
        return out

    # -- reviewers -----------------------------------------------------------------------------

    def _spec_for(self, loop: Loop) -> ReviewerSpec:
        flow = self._flows_by_arn.get(loop.flow_definition_arn)
        return (flow.reviewers if flow is not None else None) or self.default_reviewers

    def _on_due(self, due: _Due) -> None:
        loop = self.store.peek(due.name)
        if loop is None or loop.seq != due.seq:
            return  # forgotten by a reset
        if due.kind == "stopped":
            if loop.status == "Stopping":
                self._finish_stopped(loop)
        elif loop.status == "InProgress" and loop.name not in self._pending:
            self._finish(loop, due.outcome, None)

    def _finish_stopped(self, loop: Loop) -> None:
        if self.store.finish(loop.name, "Stopped") is not None:
            self.publisher.emit(loop)

    def _finish(
        self, loop: Loop, outcome: str, answers: Mapping[str, Any] | None
    ) -> asyncio.Future[Loop]:
        future: asyncio.Future[Loop] = asyncio.get_running_loop().create_future()
        if outcome != "Completed":
            self.store.finish(
                loop.name,
                "Failed",
                failure_code=outcome,
                failure_reason=_FAILURES[outcome],
                allowed_from=frozenset({"InProgress"}),
            )
            self.publisher.emit(loop)
            future.set_result(loop)
            return future
        flow = self._flows_by_arn[loop.flow_definition_arn]
        spec = flow.reviewers or self.default_reviewers
        input_obj = json.loads(loop.input_content)
        document = {
            "flowDefinitionArn": loop.flow_definition_arn,
            "humanLoopName": loop.name,
            "inputContent": input_obj,
            "humanAnswers": spec.human_answers(
                input_obj,
                created=loop.creation_time,
                finished=max(time.time(), loop.creation_time),
                rng=self.rng,
                answer_override=answers,
            ),
        }
        key = output_key(flow.prefix, flow.name, loop.name, loop.creation_time)
        uri = f"s3://{flow.bucket}/{key}"
        self._pending[loop.name] = _Pending(future)
        seq = loop.seq

        def on_done(ok: bool) -> None:
            self._pending.pop(loop.name, None)
            current = self.store.peek(loop.name)
            if current is not loop or current.seq != seq:
                if not future.done():
                    future.set_result(loop)
                return
            if ok:
                done = self.store.finish(
                    loop.name,
                    "Completed",
                    output_s3_uri=uri,
                    allowed_from=frozenset({"InProgress"}),
                )
            else:
                done = self.store.finish(
                    loop.name,
                    "Failed",
                    failure_code="InternalError",
                    failure_reason="The human loop output could not be written to Amazon S3.",
                    allowed_from=frozenset({"InProgress"}),
                )
            if done is not None:
                self.publisher.emit(loop)
            if not future.done():
                future.set_result(loop)

        self.publisher.write_output(flow.bucket, key, json.dumps(document).encode(), on_done)
        return future

    # -- control API ---------------------------------------------------------------------------

    def register_flow(self, name: Any, output_s3_uri: Any, reviewers: Any = None) -> FlowDefinition:
        if not isinstance(name, str) or not 1 <= len(name) <= 63 or not _FLOW_NAME.match(name):
            raise ControlError(400, "name must match ^[a-z0-9](-*[a-z0-9])*$ (1-63 chars)")
        if not isinstance(output_s3_uri, str):
            raise ControlError(400, "output_s3_uri must be an s3:// URI")
        try:
            bucket, prefix = split_s3_uri(output_s3_uri)
            spec = None if reviewers is None else ReviewerSpec.from_json(reviewers)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        flow = FlowDefinition(
            name, self._flow_arn_prefix + name, output_s3_uri, bucket, prefix, spec
        )
        self.flows[name] = flow
        self._flows_by_arn[flow.arn] = flow
        return flow

    def set_flow_reviewers(self, name: str, patch: Any) -> ReviewerSpec:
        flow = self.flows.get(name)
        if flow is None:
            raise ControlError(404, f"no flow definition {name}")
        try:
            flow.reviewers = ReviewerSpec.from_json(patch, flow.reviewers or self.default_reviewers)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        return flow.reviewers

    def set_default_reviewers(self, patch: Any) -> ReviewerSpec:
        try:
            self.default_reviewers = ReviewerSpec.from_json(patch, self.default_reviewers)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        return self.default_reviewers

    def update_quotas(self, patch: Any) -> dict[str, Any]:
        if not isinstance(patch, Mapping):
            raise ControlError(400, "quotas must be an object")
        try:
            self.quotas.update(patch, OPERATIONS)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        return self.quotas.to_json(OPERATIONS)

    def update_faults(self, patch: Any) -> dict[str, Any]:
        try:
            self.faults = self.faults.merged(patch, OPERATIONS)
        except (ValueError, TypeError) as exc:
            raise ControlError(400, str(exc)) from None
        return self.faults.to_json(OPERATIONS)

    async def finish_by_hand(self, name: str, outcome: Any, answers: Any = None) -> dict[str, Any]:
        """Finish a loop now: Completed/Expired/InternalError (InProgress) or Stopped (active).

        Returns the loop as Describe shows it once finished (after output.json is written).
        """
        if outcome not in ("Completed", "Expired", "InternalError", "Stopped"):
            raise ControlError(400, "outcome must be Completed, Expired, InternalError or Stopped")
        if answers is not None and not isinstance(answers, Mapping):
            raise ControlError(400, "answers must be an object")
        loop = self.store.peek(name)
        if loop is None or loop.deleted:
            raise ControlError(404, f"no human loop {name}")
        if name in self._pending:
            raise ControlError(409, f"human loop {name} is already finishing")
        if outcome == "Stopped":
            if loop.status not in ACTIVE_STATUSES:
                raise ControlError(409, f"human loop {name} is {loop.status}")
            if loop.status == "InProgress":
                self.store.stop(name)
            self._finish_stopped(loop)
            return describe_json(loop)
        if loop.status != "InProgress":
            raise ControlError(409, f"human loop {name} is {loop.status}, not InProgress")
        done = await asyncio.wait_for(self._finish(loop, outcome, answers), timeout=30)
        return describe_json(done)

    def reset(self, everything: bool = False) -> None:
        self.store.clear()
        self.scheduler.clear()
        self.publisher.discard_delayed()
        self.publisher.counters.reset()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()
        self._pending.clear()
        self.counters = {op: OperationCounters() for op in OPERATIONS}
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
            "scheduled": len(self.scheduler),
            # tokens in each rate-limited operation's bucket, read with the counters above
            "rate_tokens": {
                op: round(tokens, 3)
                for op in OPERATIONS
                if (tokens := self.quotas.tokens(op)) is not None
            },
        }
        out["operations"]["StartHumanLoop"]["idempotent_repeats"] = store.idempotent_repeats
        if detail:
            out["starts_per_name"] = dict(store.starts_per_name)
        return out


def _epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _ts(epoch: float) -> float:
    """Timestamps go out as epoch seconds with millisecond precision (REST-JSON numbers)."""
    return round(epoch, 3)


def describe_json(loop: Loop) -> dict[str, Any]:
    """DescribeHumanLoop's answer for ``loop`` (absent members omitted)."""
    out: dict[str, Any] = {
        "CreationTime": _ts(loop.creation_time),
        "HumanLoopStatus": loop.status,
        "HumanLoopName": loop.name,
        "HumanLoopArn": loop.arn,
        "FlowDefinitionArn": loop.flow_definition_arn,
    }
    if loop.failure_reason is not None:
        out["FailureReason"] = loop.failure_reason
    if loop.failure_code is not None:
        out["FailureCode"] = loop.failure_code
    if loop.status == "Completed" and loop.output_s3_uri is not None:
        out["HumanLoopOutput"] = {"OutputS3Uri": loop.output_s3_uri}
    return out


def summary_json(loop: Loop) -> dict[str, Any]:
    """One HumanLoopSummary of ListHumanLoops."""
    out: dict[str, Any] = {
        "HumanLoopName": loop.name,
        "HumanLoopStatus": loop.status,
        "CreationTime": _ts(loop.creation_time),
        "FlowDefinitionArn": loop.flow_definition_arn,
    }
    if loop.failure_reason is not None:
        out["FailureReason"] = loop.failure_reason
    return out
