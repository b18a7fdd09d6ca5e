"""The main path end to end on the local stack: SQS request → rules → loop → result.

Judged by the emulator's counters and the results queue, never by the worker's word.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from harness import running_worker

from a2i_emulator.control import EmulatorControl
from a2i_worker.local import LocalStack
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until


def _req(i: int, confidence: float, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"req-{i:04d}",
        "route": "main",
        "input": {"doc": f"s3://docs/{i}.pdf", "confidence": confidence, "label": "cat"},
        **extra,
    }


async def _fast_reviewers(emulator: EmulatorControl, **extra: Any) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": 0.2},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
            **extra,
        }
    )


async def test_exactly_the_activated_requests_get_loops(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await _fast_reviewers(emulator)
    confidences = [0.1 + 0.9 * (i % 10) / 10 for i in range(40)]
    activated = {f"req-{i:04d}" for i, c in enumerate(confidences) if c < 0.8}
    async with running_worker(env, tmp_path) as h:
        await h.send(_req(i, c) for i, c in enumerate(confidences))
        await h.results.wait_for(40, within=60)
        # Nothing left behind on the requests queue.
        assert await h.queue_depth(env.requests_queue_url) == (0, 0)
    by_req = h.results.by_request
    assert set(by_req) == {f"req-{i:04d}" for i in range(40)}
    assert all(len(v) == 1 for v in by_req.values()), "one result per request"
    for rid, (res,) in by_req.items():
        if rid in activated:
            assert res["outcome"] == "completed", res
            assert res["human_answers"][0]["answerContent"] == {"label": "cat"}
            assert res["agreement"]["agrees"] is True
            assert res["activation"]["activated"] is True
            assert res["activation"]["reasons"][0]["condition_type"] == "ConfidenceCheck"
            assert res["loop_name"] == loop_name(env.flow_definition_arn, rid, 1)
        else:
            assert res["outcome"] == "not_activated", res
            assert res["loop_name"] is None
    counters = await emulator.counters()
    assert counters["operations"]["StartHumanLoop"]["accepted"] >= len(activated)
    assert counters["loops_total"] == len(activated)
    assert counters["max_starts_per_name"] == 1


async def test_redelivered_messages_make_no_second_loop_or_result(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual"})
    bodies = [_req(i, 0.2) for i in range(10)]
    async with running_worker(env, tmp_path) as h:
        await h.send(bodies)
        await wait_until(lambda: _loops_total(emulator, 10), 30, message="10 loops started")
        # At-least-once delivery: every message arrives again.
        await h.send(bodies)
        await h.send(bodies)
        await wait_until(lambda: _requests_queue_empty(h), 30, message="requests drained")
        for b in bodies:
            await emulator.finish(
                loop_name(env.flow_definition_arn, b["request_id"], 1), "Completed"
            )
        await h.results.wait_for(10, within=30)
    counters = await emulator.counters()
    assert counters["loops_total"] == 10
    assert counters["max_starts_per_name"] == 1
    assert all(len(v) == 1 for v in h.results.by_request.values())
    assert h.results.outcomes == {"completed": 10}


async def _loops_total(emulator: EmulatorControl, n: int) -> bool:
    return int((await emulator.counters())["loops_total"]) >= n


async def _requests_queue_empty(h: Any) -> bool:
    depth: tuple[int, int] = await h.queue_depth(h.env.requests_queue_url)
    return depth == (0, 0)


async def test_bad_messages_are_each_rejected_with_a_reason(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await _fast_reviewers(emulator)
    bad = {
        "not-json": '{"request_id": "bad-1", ',
        "unknown-route": json.dumps({"request_id": "bad-2", "route": "nope", "input": {}}),
        "bad-arn": json.dumps(
            {"request_id": "bad-3", "flow_definition_arn": "arn:nope", "input": {"a": 1}}
        ),
        "missing-s3": json.dumps(
            {
                "request_id": "bad-4",
                "route": "main",
                "input_s3_uri": f"s3://{env.output_bucket}/nope.json",
            }
        ),
    }
    async with running_worker(env, tmp_path) as h:
        await h.send([_req(1, 0.1)])
        await h.results.wait_for(1, within=30)
        await h.send(bad.values())
        # The same request_id with other content is refused, the original is untouched.
        await h.send([_req(1, 0.5, metadata={"x": 1}) | {"input": {"other": True}}])
        # And the worker is still working afterwards.
        await h.send([_req(2, 0.9)])
        await h.results.wait_for(2 + 4, within=30)
        await wait_until(
            lambda: len([r for r in h.results.deliveries if r["outcome"] == "rejected"]) >= 5,
            20,
            message="5 rejections",
        )
        dlq = await h.dlq_messages(env.requests_dlq_url)
    rejected = [r for r in h.results.deliveries if r["outcome"] == "rejected"]
    reasons = {r.get("rejection_code") for r in rejected}
    assert len(rejected) == 5, rejected
    assert {"unknown_route", "duplicate_request_id", "input_not_found"} <= reasons, reasons
    assert all(r["reason"] for r in rejected)
    assert len(dlq) == 5, "each original is kept in the DLQ"
    assert all("a2i_worker_rejection_code" in m["MessageAttributes"] for m in dlq)
    ok = [r for r in h.results.deliveries if r["request_id"] == "req-0002"]
    assert ok
    assert ok[0]["outcome"] == "not_activated"


async def test_an_input_too_large_for_the_dynamodb_ledger_is_rejected_not_lost(
    stack: LocalStack, emulator: EmulatorControl, tmp_path: Path
) -> None:
    """The first ledger write carries the decision and the input: when DynamoDB cannot
    hold it, the request is still claimed and rejected with a reason; the rest go on."""
    await _fast_reviewers(emulator)
    env = await stack.provision(f"big-{uuid.uuid4().hex[:8]}", dynamodb_ledger=True)
    noise = os.urandom(600_000).hex()  # 1.2M characters, compresses only 2:1: > 400 KB item
    key = "inputs/big.json"
    big = {
        "request_id": "req-0000",
        "route": "main",
        "input_s3_uri": f"s3://{env.output_bucket}/{key}",
    }
    bodies = [big, _req(1, 0.1), _req(2, 0.95)]
    async with running_worker(env, tmp_path, ledger_url=f"dynamodb://{env.ledger_table}") as h:
        await h.aws.s3.put_object(
            Bucket=env.output_bucket,
            Key=key,
            Body=json.dumps({"confidence": 0.1, "blob": noise}).encode(),
        )
        await h.send(bodies)
        await h.results.wait_for(3, within=60)
        await wait_until(lambda: _requests_queue_empty(h), 30, message="requests drained")
    by_req = h.results.by_request
    assert {rid: [r["outcome"] for r in rs] for rid, rs in by_req.items()} == {
        "req-0000": ["rejected"],
        "req-0001": ["completed"],
        "req-0002": ["not_activated"],
    }
    assert by_req["req-0000"][0]["rejection_code"] == "ledger_item_too_large"
    counters = await emulator.counters()
    assert counters["loops_total"] == 1
