"""A request's life end to end on the local stack (docs/lifecycle.md): every path ends in
exactly one result.

moto in server mode and the project's A2I emulator are the real parts; the worker runs
in-process (``harness.running_worker``) and nothing is patched. Each test is judged by
what leaves the worker: the results queue, the requests DLQ and the emulator's counters,
all read with the test's own clients (``aws`` fixture) after the worker has drained, so a
late second result or DLQ copy would be seen. Faults come from the emulator's control API
(latency, ``error_code``, ``outputs.missing``, a ``stop_delay`` that outlasts the test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import Harness, ResultsReader, running_worker

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local import LocalStack
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until

#: Short intervals: the sweeper, and with it every retry pause (min(30 s, interval)).
FAST: dict[str, Any] = {"sweep_interval_seconds": 0.3}


def _req(rid: str, confidence: float = 0.1, **extra: Any) -> dict[str, Any]:
    return {"request_id": rid, "route": "main", "input": {"confidence": confidence}, **extra}


def _cancel(rid: str) -> dict[str, Any]:
    return {"type": "cancel", "request_id": rid}


async def _auto_reviewers(emulator: EmulatorControl, seconds: float = 0.1) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": seconds},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )


@dataclass
class Outside:
    """What the world sees of the worker: results queue, requests DLQ, emulator counters."""

    aws: AwsClients
    env: StackEndpoints
    emulator: EmulatorControl
    results: ResultsReader
    dlq: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, body: dict[str, Any]) -> str:
        """Send one message; its SQS MessageId (a DLQ copy must name it)."""
        resp = await self.aws.sqs.send_message(
            QueueUrl=self.env.requests_queue_url, MessageBody=json.dumps(body)
        )
        return resp["MessageId"]

    async def result_of(self, rid: str, within: float = 15.0) -> dict[str, Any]:
        async def arrived() -> dict[str, Any] | None:
            while await self.results.poll():
                pass
            got = self.results.by_request.get(rid)
            return got[0] if got else None

        found: dict[str, Any] | None = await wait_until(arrived, within, message=f"result of {rid}")
        assert found is not None
        return found

    async def read_dlq(self) -> list[dict[str, Any]]:
        while True:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=self.env.requests_dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return self.dlq
            self.dlq.extend(dict(m) for m in msgs)
            for m in msgs:
                await self.aws.sqs.delete_message(
                    QueueUrl=self.env.requests_dlq_url, ReceiptHandle=m["ReceiptHandle"]
                )

    async def depth(self) -> tuple[int, int]:
        attrs = await self.aws.sqs.get_queue_attributes(
            QueueUrl=self.env.requests_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    async def wait_depth(self, expected: tuple[int, int], what: str) -> None:
        async def reached() -> bool:
            return await self.depth() == expected

        await wait_until(reached, 15, interval=0.05, message=what)

    async def final(self) -> dict[str, list[dict[str, Any]]]:
        """After the worker drained: every distinct result per request (by result_id)."""
        while await self.results.poll():
            pass
        await self.read_dlq()
        return {str(k): v for k, v in self.results.by_request.items()}

    async def counters(self) -> dict[str, Any]:
        return await self.emulator.counters()

    async def op(self, operation: str) -> dict[str, int]:
        ops: dict[str, dict[str, int]] = (await self.counters())["operations"]
        return ops[operation]


@pytest.fixture
def outside(aws: AwsClients, env: StackEndpoints, emulator: EmulatorControl) -> Outside:
    return Outside(aws, env, emulator, ResultsReader(aws, env.results_queue_url))


async def _loop_exists(o: Outside, name: str) -> bool:
    counters = await o.emulator.counters(detail=True)
    return int(counters.get("starts_per_name", {}).get(name, 0)) >= 1


# -- cancel, in every phase ----------------------------------------------------------------


async def test_cancel_while_deferred_by_a_budget_ends_it_and_no_loop_ever_starts(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """Before any loop exists: the route's daily budget (1) is spent, the request waits
    in SQS; the cancel ends it, and its message coming back finds it finished."""
    await _auto_reviewers(outside.emulator)
    budget = '\n[routes.main.budget]\nper_day = 1\npolicy = "defer"\n'
    async with running_worker(env, tmp_path, routes_extra=budget, **FAST) as h:
        await outside.send(_req("bud-1"))
        assert (await outside.result_of("bud-1"))["outcome"] == "completed"
        await outside.send(_req("bud-2"))
        await wait_until(lambda: _deferred(h) == 1, 15, message="bud-2 deferred")
        await outside.wait_depth((0, 1), "bud-2 held invisible until the day ends")
        await outside.send(_cancel("bud-2"))
        stopped = await outside.result_of("bud-2")
        # The deferred copy coming back (here: the same request sent again) never starts.
        await outside.send(_req("bud-2"))
        await outside.wait_depth((0, 1), "the copy acknowledged; only the deferred one held")
    results = await outside.final()
    assert {rid: [r["outcome"] for r in rs] for rid, rs in results.items()} == {
        "bud-1": ["completed"],
        "bud-2": ["stopped"],
    }
    assert stopped["loop_name"] is None
    assert "before a loop was started" in stopped["reason"]
    counters = await outside.counters()
    assert counters["loops_total"] == 1
    assert counters["operations"]["StartHumanLoop"]["calls"] == 1
    assert outside.dlq == []


def _deferred(h: Harness) -> float:
    assert h.worker is not None
    labels = {"route": "main", "action": "defer"}
    value = h.worker.metrics.registry.get_sample_value("a2i_worker_budget_spent_total", labels)
    return value or 0.0


async def test_cancel_while_the_loop_is_being_started_stops_it_once_it_exists(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """StartHumanLoop takes 1.5 s (emulator latency): the cancel arrives while it is in
    flight, is noted, and the loop is stopped the moment it exists."""
    await outside.emulator.put_reviewers({"mode": "manual", "stop_delay": 0.1})
    await outside.emulator.put_faults(
        {"operations": {"StartHumanLoop": {"latency_ms": [1500, 1500]}}}
    )
    rid = "start-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(_req(rid))

        async def start_in_flight() -> bool:
            return (await outside.op("StartHumanLoop"))["calls"] == 1

        await wait_until(start_in_flight, 15, message="StartHumanLoop called")
        await outside.send(_cancel(rid))
        # The cancel was handled (only the request's own message is still held) while
        # A2I had not answered the start yet: the cancel met the STARTING phase.
        await outside.wait_depth((0, 1), "cancel consumed")
        assert (await outside.op("StartHumanLoop"))["accepted"] == 0
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert res["loop_name"] == name
    counters = await outside.counters()
    assert counters["loops_total"] == 1
    assert counters["max_starts_per_name"] == 1
    assert counters["loops_by_status"]["Stopped"] == 1
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []


async def test_cancel_while_the_loop_is_open_stops_it(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    await outside.emulator.put_reviewers({"mode": "manual", "stop_delay": 0.1})
    rid = "open-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(_req(rid))
        await wait_until(lambda: _loop_exists(outside, name), 15, message="loop InProgress")
        await outside.send(_cancel(rid))
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert res["loop_name"] == name
    counters = await outside.counters()
    assert counters["loops_by_status"]["Stopped"] == 1
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []


async def test_cancel_after_the_result_and_for_an_unknown_request(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """After the result: acknowledged, nothing stopped, no second result. For a request
    never seen: a ``stopped`` result now, and the request arriving later never starts."""
    await _auto_reviewers(outside.emulator)
    async with running_worker(env, tmp_path, **FAST):
        await outside.send(_req("done-1"))
        assert (await outside.result_of("done-1"))["outcome"] == "completed"
        await outside.send(_cancel("done-1"))
        await outside.send(_cancel("ghost-1"))
        ghost = await outside.result_of("ghost-1")
        await outside.wait_depth((0, 0), "both cancels consumed")
        await outside.send(_req("ghost-1"))  # it arrives after its cancel
        await outside.wait_depth((0, 0), "the late request acknowledged")
    results = await outside.final()
    assert {rid: [r["outcome"] for r in rs] for rid, rs in results.items()} == {
        "done-1": ["completed"],
        "ghost-1": ["stopped"],
    }
    assert ghost["reason"] == "cancelled before the request arrived"
    assert ghost["loop_name"] is None
    counters = await outside.counters()
    assert counters["loops_total"] == 1, "the late request started no loop"
    assert counters["operations"]["StartHumanLoop"]["calls"] == 1
    assert counters["operations"]["StopHumanLoop"]["calls"] == 0, "nothing to stop"
    assert outside.dlq == []


# -- A2I refuses the loop: rejected, one DLQ copy -----------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "a2i_code"),
    [
        (None, "a2i_validation", "ValidationException"),  # a flow that does not exist
        ("AccessDeniedException", "a2i_access_denied", "AccessDeniedException"),
    ],
)
async def test_a2i_refusal_is_rejected_with_one_dlq_copy_also_when_redelivered(
    env: StackEndpoints,
    outside: Outside,
    tmp_path: Path,
    fault: str | None,
    code: str,
    a2i_code: str,
) -> None:
    rid = "refused-1"
    if fault is None:
        missing = env.flow_definition_arn.rsplit("/", 1)[0] + "/no-such-flow"
        body: dict[str, Any] = {"request_id": rid, "flow_definition_arn": missing}
        body["input"] = {"confidence": 0.1}
    else:
        body = _req(rid)
        await outside.emulator.put_faults(
            {"operations": {"StartHumanLoop": {"error_rate": 1.0, "error_code": fault}}}
        )
    async with running_worker(env, tmp_path, **FAST):
        message_id = await outside.send(body)
        res = await outside.result_of(rid)
        await outside.wait_depth((0, 0), "the refused request deleted")
        await wait_until(lambda: _dlq_has(outside, 1), 10, message="one DLQ copy")
        # Redelivered (at-least-once): the request finds its rejection; no second anything.
        await outside.send(body)
        await outside.wait_depth((0, 0), "the redelivery acknowledged")
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["rejected"]
    assert res["rejection_code"] == code
    assert a2i_code in res["reason"]
    (copy,) = outside.dlq
    attrs = {k: v["StringValue"] for k, v in copy["MessageAttributes"].items()}
    assert attrs["a2i_worker_rejection_code"] == code
    assert a2i_code in attrs["a2i_worker_rejection_reason"]
    assert attrs["a2i_worker_source_message_id"] == message_id
    assert attrs["a2i_worker_result_id"] == res["result_id"]
    assert json.loads(copy["Body"]) == body, "the original, ready to be redriven"
    start = await outside.op("StartHumanLoop")
    assert start["accepted"] == 0
    assert start["calls"] == 1, "the redelivery did not ask A2I again"
    assert (await outside.counters())["loops_total"] == 0


async def _dlq_has(o: Outside, n: int) -> bool:
    return len(await o.read_dlq()) >= n


# -- bounded failure: output.json missing ---------------------------------------------------


async def _s3_gets(stack: LocalStack) -> int:
    """S3 GETs moto served (all callers): its own count, not the worker's."""
    async with aiohttp.ClientSession() as http, http.get(f"{stack.moto_url}/_a2i_local/calls") as r:
        calls: dict[str, dict[str, int]] = await r.json()
    return sum(ops.get("s3.GET", 0) for ops in calls.values())


async def test_completed_loop_without_output_json_fails_after_bounded_tries(
    stack: LocalStack, env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    await _auto_reviewers(outside.emulator)
    await outside.emulator.put_faults({"outputs": {"missing": 1.0}})
    rid = "nooutput-1"
    reads_before = await _s3_gets(stack)
    async with running_worker(env, tmp_path, output_tries=3, **FAST):
        await outside.send(_req(rid))
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["failed"]
    assert res["failure_code"] == "output_missing"
    assert res["reason"]
    assert res["human_answers"] in (None, [])
    assert await _s3_gets(stack) - reads_before == 3, "A2I_WORKER_OUTPUT_TRIES reads, no more"
    counters = await outside.counters()
    assert counters["loops_by_status"]["Completed"] == 1
    assert counters["outputs_skipped"] == 1
    assert counters["max_starts_per_name"] == 1
    assert outside.dlq == []


# -- a loop stuck in Stopping ---------------------------------------------------------------


async def test_loop_stuck_in_stopping_is_resolved_after_the_stopping_timeout(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """A2I never finishes the stop (stop_delay outlasts the test): after the stopping
    timeout, counted from when the loop entered Stopping, the request ends ``stopped``."""
    await outside.emulator.put_reviewers({"mode": "manual", "stop_delay": 3600})
    rid = "stuck-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, stopping_timeout_seconds=1.5, **FAST):
        await outside.send(_req(rid))
        await wait_until(lambda: _loop_exists(outside, name), 15, message="loop InProgress")
        await outside.send(_cancel(rid))
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert "Stopping" in res["reason"]
    counters = await outside.counters()
    assert counters["loops_by_status"]["Stopping"] == 1, "A2I still has it Stopping"
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []
