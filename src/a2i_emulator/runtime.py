"""The five A2I runtime operations and the simulated reviewers that finish loops.

:class:`HumanLoops` owns the loop store, the scheduler of due finishes/stops and the loops
whose output.json is being written. Operations take the input validated against the
``sagemaker-a2i-runtime`` model and return the output ``dict`` (timestamps as epoch
seconds; :mod:`a2i_emulator.wire` writes them as the model says), or raise
:class:`ApiError` with a code the model declares for the operation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from a2i_emulator.errors import ApiError
from a2i_emulator.flows import FlowDefinition, FlowRegistry
from a2i_emulator.publisher import Publisher, output_key
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

__all__ = ["FinishError", "HumanLoops", "describe_json", "summary_json"]

_FAILURES = {
    "Expired": "The human loop expired before a worker completed the task.",
    "InternalError": "An internal error occurred while processing the human loop.",
}


class FinishError(Exception):
    """A finish-by-hand that cannot happen (``status`` 400/404/409 for the control API)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class _Due:
    kind: str  # "finish" | "stopped"
    name: str
    seq: int
    outcome: str = ""


def _epoch(value: dt.datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def describe_json(loop: Loop) -> dict[str, Any]:
    """DescribeHumanLoop's answer for ``loop`` (absent members omitted)."""
    out: dict[str, Any] = {
        "CreationTime": loop.creation_time,
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
        "CreationTime": loop.creation_time,
        "FlowDefinitionArn": loop.flow_definition_arn,
    }
    if loop.failure_reason is not None:
        out["FailureReason"] = loop.failure_reason
    return out


class HumanLoops:
    """Loops of one emulated account and region, and their reviewers."""

    def __init__(
        self,
        *,
        store: LoopStore,
        flows: FlowRegistry,
        quotas: Callable[[], Quotas],
        default_reviewers: Callable[[], ReviewerSpec],
        publisher: Publisher,
        rng: random.Random,
    ) -> None:
        self.store = store
        self._flows = flows
        self._quotas = quotas
        self._default_reviewers = default_reviewers
        self._publisher = publisher
        self._rng = rng
        self._pending: dict[str, asyncio.Future[Loop]] = {}
        self.scheduler: Scheduler[_Due] = Scheduler(self._on_due)

    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        return {
            "StartHumanLoop": self.start_human_loop,
            "DescribeHumanLoop": self.describe_human_loop,
            "StopHumanLoop": self.stop_human_loop,
            "DeleteHumanLoop": self.delete_human_loop,
            "ListHumanLoops": self.list_human_loops,
        }

    # -- operations ----------------------------------------------------------------------------

    def start_human_loop(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name: str = params["HumanLoopName"]
        flow_arn: str = params["FlowDefinitionArn"]
        input_content: str = params["HumanLoopInput"]["InputContent"]
        attrs = params.get("DataAttributes")
        classifiers = None if attrs is None else tuple(attrs["ContentClassifiers"])
        flow = self._flows.by_arn(flow_arn)
        if flow is None:
            raise ApiError(
                "ValidationException",
                f"Flow definition {flow_arn} does not exist in this account and region.",
            )
        status = self._flows.status(flow)
        if status != "Active":
            raise ApiError(
                "ValidationException",
                f"Flow definition {flow.name} is {status}; human loops start only on an "
                "Active flow definition.",
            )
        try:
            json.loads(input_content)
        except ValueError:
            raise ApiError(
                "ValidationException", "HumanLoopInput.InputContent must be a valid JSON string."
            ) from None
        existing = self.store.peek(name)
        quotas = self._quotas()
        if existing is None and quotas.over_cap(self.store.open_loops):
            raise ApiError(
                "ServiceQuotaExceededException",
                f"You have reached the maximum number of active human loops "
                f"({quotas.max_in_progress}).",
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
            spec = flow.reviewers or self._default_reviewers()
            if spec.mode == "auto":
                delay = spec.sample_delay(self._rng)
                outcome = spec.sample_outcome(self._rng)
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
        if self._flows.by_arn(flow_arn) is None:
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

    def _flow_of(self, loop: Loop) -> FlowDefinition | None:
        return self._flows.by_arn(loop.flow_definition_arn)

    def _spec_for(self, loop: Loop) -> ReviewerSpec:
        flow = self._flow_of(loop)
        return (flow.reviewers if flow is not None else None) or self._default_reviewers()

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
            self._publisher.emit(loop)

    def _fail(self, loop: Loop, code: str, reason: str) -> None:
        done = self.store.finish(
            loop.name,
            "Failed",
            failure_code=code,
            failure_reason=reason,
            allowed_from=frozenset({"InProgress"}),
        )
        if done is not None:
            self._publisher.emit(loop)

    def _finish(
        self, loop: Loop, outcome: str, answers: Mapping[str, Any] | None
    ) -> asyncio.Future[Loop]:
        future: asyncio.Future[Loop] = asyncio.get_running_loop().create_future()
        flow = self._flow_of(loop)
        if outcome != "Completed" or flow is None:
            if outcome == "Completed":
                outcome = "InternalError"  # its flow definition was deleted under it
            self._fail(loop, outcome, _FAILURES[outcome])
            future.set_result(loop)
            return future
        spec = flow.reviewers or self._default_reviewers()
        input_obj = json.loads(loop.input_content)
        document = {
            "flowDefinitionArn": loop.flow_definition_arn,
            "humanLoopName": loop.name,
            "inputContent": input_obj,
            "humanAnswers": spec.human_answers(
                input_obj,
                created=loop.creation_time,
                finished=max(time.time(), loop.creation_time),
                rng=self._rng,
                answer_override=answers,
            ),
        }
        key = output_key(flow.prefix, flow.name, loop.name, loop.creation_time)
        uri = f"s3://{flow.bucket}/{key}"
        self._pending[loop.name] = future
        seq = loop.seq

        def on_done(ok: bool) -> None:
            self._pending.pop(loop.name, None)
            current = self.store.peek(loop.name)
            if current is loop and current.seq == seq:
                if not ok:
                    self._fail(
                        loop,
                        "InternalError",
                        "The human loop output could not be written to Amazon S3.",
                    )
                elif self.store.finish(
                    loop.name,
                    "Completed",
                    output_s3_uri=uri,
                    allowed_from=frozenset({"InProgress"}),
                ):
                    self._publisher.emit(loop)
            if not future.done():
                future.set_result(loop)

        self._publisher.write_output(flow.bucket, key, json.dumps(document).encode(), on_done)
        return future

    async def finish_by_hand(self, name: str, outcome: Any, answers: Any = None) -> dict[str, Any]:
        """Finish a loop now: Completed/Expired/InternalError (InProgress) or Stopped (active).

        Returns the loop as Describe shows it once finished (after output.json is written).
        """
        if outcome not in ("Completed", "Expired", "InternalError", "Stopped"):
            raise FinishError(400, "outcome must be Completed, Expired, InternalError or Stopped")
        if answers is not None and not isinstance(answers, Mapping):
            raise FinishError(400, "answers must be an object")
        loop = self.store.peek(name)
        if loop is None or loop.deleted:
            raise FinishError(404, f"no human loop {name}")
        if name in self._pending:
            raise FinishError(409, f"human loop {name} is already finishing")
        if outcome == "Stopped":
            if loop.status not in ACTIVE_STATUSES:
                raise FinishError(409, f"human loop {name} is {loop.status}")
            if loop.status == "InProgress":
                self.store.stop(name)
            self._finish_stopped(loop)
            return describe_json(loop)
        if loop.status != "InProgress":
            raise FinishError(409, f"human loop {name} is {loop.status}, not InProgress")
        done = await asyncio.wait_for(self._finish(loop, outcome, answers), timeout=30)
        return describe_json(done)

    def open_loops_of(self, flow_arn: str) -> int:
        """Open (InProgress/Stopping) loops of one flow definition."""
        return sum(
            1
            for loop in self.store
            if loop.flow_definition_arn == flow_arn and loop.status in ACTIVE_STATUSES
        )

    def clear(self) -> None:
        """Forget every loop and due action; pending finishes are cancelled."""
        self.store.clear()
        self.scheduler.clear()
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
