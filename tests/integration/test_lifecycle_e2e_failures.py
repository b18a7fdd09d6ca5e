"""Refusals and bounded failure, end to end on the local stack (docs/lifecycle.md): A2I
refusing StartHumanLoop (at intake and at a resubmission), a Completed loop whose
output.json is missing, a loop stuck in Stopping. Each ends in exactly one result, and a
rejection in exactly one requests-DLQ copy with code, reason and source message id.

Same rules as test_lifecycle_e2e.py: the real local stack, nothing patched, judged by
what leaves the worker (``lifecycle_outside.Outside``) and by moto's own call count.
Faults come from the emulator's control API (``error_code``, ``outputs.missing``, a
``stop_delay`` that outlasts the test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import running_worker
from lifecycle_outside import FAST, Outside, auto_reviewers, cancel, loop_exists, req

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local import LocalStack
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until


@pytest.fixture
def outside(aws: AwsClients, env: StackEndpoints, emulator: EmulatorControl) -> Outside:
    return Outside.of(aws, env, emulator)


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
        body = req(rid)
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


async def test_a2i_refusing_a_resubmission_is_rejected_with_one_rebuilt_dlq_copy(
    env: StackEndpoints, outside: Outside, tmp_path: Path
) -> None:
    """The first loop expires; A2I then refuses the second attempt (the role lost its
    permission). No message is in hand: the DLQ copy is rebuilt from the ledger."""
    await outside.emulator.put_reviewers({"mode": "manual"})
    rid = "resub-1"
    first = loop_name(env.flow_definition_arn, rid, 1)
    body = req(rid)
    async with running_worker(env, tmp_path, max_attempts=2, **FAST):
        await outside.send(body)
        await wait_until(lambda: loop_exists(outside.emulator, first), 15, message="loop 1")
        await outside.emulator.put_faults(
            {
                "operations": {
                    "StartHumanLoop": {"error_rate": 1.0, "error_code": "AccessDeniedException"}
                }
            }
        )
        await outside.emulator.finish(first, "Expired")
        res = await outside.result_of(rid)
        await wait_until(lambda: _dlq_has(outside, 1), 10, message="one DLQ copy")
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["rejected"]
    assert res["rejection_code"] == "a2i_access_denied"
    (copy,) = outside.dlq
    attrs = {k: v["StringValue"] for k, v in copy["MessageAttributes"].items()}
    assert attrs["a2i_worker_rejection_code"] == "a2i_access_denied"
    assert attrs["a2i_worker_result_id"] == res["result_id"]
    assert attrs["a2i_worker_source_message_id"] == "none (rebuilt from the ledger)"
    rebuilt = json.loads(copy["Body"])
    assert {k: rebuilt[k] for k in ("request_id", "route", "input")} == {
        k: body[k] for k in ("request_id", "route", "input")
    }, "a review request that can be redriven as it is"
    start = await outside.op("StartHumanLoop")
    assert (start["accepted"], start["injected_errors"]) == (1, 1)
    assert (await outside.counters())["loops_total"] == 1


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
    await auto_reviewers(outside.emulator)
    await outside.emulator.put_faults({"outputs": {"missing": 1.0}})
    rid = "nooutput-1"
    reads_before = await _s3_gets(stack)
    async with running_worker(env, tmp_path, output_tries=3, **FAST):
        await outside.send(req(rid))
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
        await outside.send(req(rid))
        await wait_until(lambda: loop_exists(outside.emulator, name), 15, message="loop InProgress")
        await outside.send(cancel(rid))
        res = await outside.result_of(rid)
    results = await outside.final()
    assert [r["outcome"] for r in results[rid]] == ["stopped"]
    assert "Stopping" in res["reason"]
    counters = await outside.counters()
    assert counters["loops_by_status"]["Stopping"] == 1, "A2I still has it Stopping"
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1
    assert outside.dlq == []
