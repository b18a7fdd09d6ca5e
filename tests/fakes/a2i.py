# ruff: noqa: N803  (the keyword arguments are AWS's parameter names)
"""An in-memory ``sagemaker-a2i-runtime`` client on the emulator's own loop semantics.

The loops live in the emulator's pure :class:`~a2i_emulator.store.LoopStore` (names
unique for ever, idempotent identical starts, Conflict on other input, stop/delete
rules), and Describe/List answers are built by the emulator's own ``describe_json`` /
``summary_json``; only HTTP, the scheduler and the simulated reviewers are left out. The
five operations take aiobotocore's keyword arguments and return its response dicts
(timestamps as aware datetimes, as botocore parses them); errors are botocore
``ClientError``\\ s with the codes and statuses of the service model.

Test side: :meth:`FakeA2IRuntime.answer_next` scripts error answers (throttling, quota,
access denied, 500s); :attr:`max_in_progress` is the open-loop quota; :meth:`finish` is
a reviewer (or A2I) ending a loop, writing output.json to a :class:`~fakes.s3.FakeS3` as
A2I does (or not: missing, unreadable, forbidden), and returns the status-change event
as EventBridge delivers it to SQS.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from a2i_emulator.publisher import DETAIL_TYPE, EVENT_SOURCE, output_key, status_change_detail
from a2i_emulator.reviewers import iso_ms
from a2i_emulator.runtime import describe_json, summary_json
from a2i_emulator.store import (
    ConflictError,
    Loop,
    LoopStore,
    NameReusedError,
    NotFoundError,
    NotTerminalError,
    TokenError,
)
from fakes.errors import client_error
from fakes.s3 import FakeS3

__all__ = ["FakeA2IRuntime", "Output"]

Output = Literal["present", "missing", "unreadable", "denied"]

_FAILURES = {
    "Expired": "The human loop expired before a worker completed the task.",
    "InternalError": "An internal error occurred while processing the human loop.",
}


class FakeA2IRuntime:
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        s3: FakeS3 | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self._clock = clock
        self._s3 = s3
        self.region, self.account_id = region, account_id
        self.store = LoopStore(region, account_id, b"fake-a2i-token-key")
        #: flow definition ARN -> (output bucket, output prefix)
        self.flows: dict[str, tuple[str, str]] = {}
        self.max_in_progress: int | None = None
        self._script: dict[str, list[tuple[str, str]]] = {}
        self.calls: list[str] = []

    # -- test side --------------------------------------------------------------------

    def add_flow(self, arn: str, bucket: str = "out", prefix: str = "a2i") -> None:
        self.flows[arn] = (bucket, prefix)

    def answer_next(self, operation: str, *codes: str, message: str | None = None) -> None:
        """The next calls of ``operation`` answer these error codes, in order."""
        self._script.setdefault(operation, []).extend(
            (c, message or f"scripted {c}") for c in codes
        )

    def clear_script(self) -> None:
        self._script.clear()

    def scripted(self, operation: str) -> int:
        return len(self._script.get(operation, []))

    def loop(self, name: str) -> Loop | None:
        return self.store.peek(name)

    def finish(
        self,
        name: str,
        outcome: Literal["Completed", "Expired", "InternalError", "Stopped"],
        *,
        answers: dict[str, Any] | None = None,
        output: Output = "present",
    ) -> str | None:
        """End an active loop; the event body EventBridge would send (None: not active)."""
        loop = self.store.peek(name)
        if loop is None or loop.deleted or loop.status not in ("InProgress", "Stopping"):
            return None
        if outcome == "Stopped":
            self.store.finish(name, "Stopped")
        elif outcome == "Completed":
            if loop.status != "InProgress":
                return None
            self.store.finish(name, "Completed", output_s3_uri=self._write(loop, answers, output))
        else:
            if loop.status != "InProgress":
                return None
            self.store.finish(
                name, "Failed", failure_code=outcome, failure_reason=_FAILURES[outcome]
            )
        return self.event(loop)

    def event(self, loop: Loop) -> str:
        """The status-change event of ``loop``, as the SQS body of an EventBridge target."""
        return json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": DETAIL_TYPE,
                "source": EVENT_SOURCE,
                "account": self.account_id,
                "time": iso_ms(self._clock().timestamp()),
                "region": self.region,
                "resources": [loop.arn],
                "detail": status_change_detail(loop),
            }
        )

    def _write(self, loop: Loop, answers: dict[str, Any] | None, output: Output) -> str:
        bucket, prefix = self.flows.get(loop.flow_definition_arn, ("out", "a2i"))
        flow_name = loop.flow_definition_arn.rsplit("/", 1)[-1]
        key = output_key(prefix, flow_name, loop.name, loop.creation_time)
        doc = {
            "flowDefinitionArn": loop.flow_definition_arn,
            "humanLoopName": loop.name,
            "inputContent": json.loads(loop.input_content),
            "humanAnswers": [
                {
                    "answerContent": answers or {"label": "ok"},
                    "submissionTime": iso_ms(self._clock().timestamp()),
                    "timeSpentInSeconds": 12.5,
                    "workerId": "w-1",
                }
            ],
        }
        if self._s3 is not None and output != "missing":
            data = b"{not json" if output == "unreadable" else json.dumps(doc).encode()
            self._s3.put(bucket, key, data)
            if output == "denied":
                self._s3.deny(bucket, key)
        return f"s3://{bucket}/{key}"

    # -- the client's calls -----------------------------------------------------------

    async def start_human_loop(
        self,
        *,
        HumanLoopName: str,
        FlowDefinitionArn: str,
        HumanLoopInput: dict[str, str],
        DataAttributes: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        op = "StartHumanLoop"
        self._call(op)
        if FlowDefinitionArn not in self.flows:
            raise client_error(
                "ValidationException",
                f"Flow definition {FlowDefinitionArn} does not exist in this account and region.",
                operation=op,
            )
        content = HumanLoopInput["InputContent"]
        try:
            json.loads(content)
        except ValueError:
            raise client_error(
                "ValidationException",
                "HumanLoopInput.InputContent must be a valid JSON string.",
                operation=op,
            ) from None
        classifiers = (
            None if DataAttributes is None else tuple(DataAttributes["ContentClassifiers"])
        )
        cap = self.max_in_progress
        if (
            self.store.peek(HumanLoopName) is None
            and cap is not None
            and self.store.open_loops >= cap
        ):
            raise client_error(
                "ServiceQuotaExceededException",
                f"You have reached the maximum number of active human loops ({cap}).",
                operation=op,
            )
        try:
            loop, _ = self.store.start(
                HumanLoopName, FlowDefinitionArn, content, classifiers, self._clock().timestamp()
            )
        except ConflictError as exc:
            raise client_error("ConflictException", exc.message, operation=op) from None
        except NameReusedError as exc:
            raise client_error("ValidationException", exc.message, operation=op) from None
        return {"HumanLoopArn": loop.arn}

    async def describe_human_loop(self, *, HumanLoopName: str) -> dict[str, Any]:
        self._call("DescribeHumanLoop")
        out = describe_json(self._get(HumanLoopName, "DescribeHumanLoop"))
        out["CreationTime"] = _dt(out["CreationTime"])
        return out

    async def stop_human_loop(self, *, HumanLoopName: str) -> dict[str, Any]:
        self._call("StopHumanLoop")
        self._get(HumanLoopName, "StopHumanLoop")
        self.store.stop(HumanLoopName)  # InProgress -> Stopping; else a no-op, as in A2I
        return {}

    async def delete_human_loop(self, *, HumanLoopName: str) -> dict[str, Any]:
        self._call("DeleteHumanLoop")
        self._get(HumanLoopName, "DeleteHumanLoop")
        try:
            self.store.delete(HumanLoopName)
        except NotTerminalError as exc:
            raise client_error(
                "ValidationException", exc.message, operation="DeleteHumanLoop"
            ) from None
        return {}

    async def list_human_loops(
        self,
        *,
        FlowDefinitionArn: str,
        CreationTimeAfter: datetime | None = None,
        CreationTimeBefore: datetime | None = None,
        SortOrder: str = "Descending",
        MaxResults: int = 100,
        NextToken: str | None = None,
    ) -> dict[str, Any]:
        op = "ListHumanLoops"
        self._call(op)
        if FlowDefinitionArn not in self.flows:
            raise client_error(
                "ResourceNotFoundException",
                f"Flow definition {FlowDefinitionArn} does not exist.",
                operation=op,
            )
        try:
            page = self.store.list(
                FlowDefinitionArn,
                creation_time_after=None
                if CreationTimeAfter is None
                else CreationTimeAfter.timestamp(),
                creation_time_before=None
                if CreationTimeBefore is None
                else CreationTimeBefore.timestamp(),
                sort_order=SortOrder,
                max_results=MaxResults,
                next_token=NextToken,
            )
        except TokenError as exc:
            raise client_error("ValidationException", exc.message, operation=op) from None
        summaries = []
        for lp in page.loops:
            s = summary_json(lp)
            s["CreationTime"] = _dt(s["CreationTime"])
            summaries.append(s)
        out: dict[str, Any] = {"HumanLoopSummaries": summaries}
        if page.next_token is not None:
            out["NextToken"] = page.next_token
        return out

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, op: str) -> None:
        self.calls.append(op)
        script = self._script.get(op)
        if script:
            code, message = script.pop(0)
            raise client_error(code, message, operation=op)

    def _get(self, name: str, op: str) -> Loop:
        try:
            return self.store.get(name)
        except NotFoundError as exc:
            raise client_error("ResourceNotFoundException", exc.message, operation=op) from None


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
