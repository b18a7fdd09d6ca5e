"""Following loops to their end when events are lost, duplicated, late or reordered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import running_worker

from a2i_emulator.control import EmulatorControl
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until


def _req(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"rec-{i:04d}",
        "route": "main",
        "input": {"confidence": 0.1, "label": "dog"},
        **extra,
    }


async def test_every_request_gets_one_right_result_despite_event_faults(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    n = 40
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.1, "high": 1.0},
            "outcomes": {"Completed": 0.7, "InternalError": 0.3},
            "answers": {"template": {"label": "dog"}},
        }
    )
    await emulator.put_faults(
        {"events": {"drop": 0.3, "duplicate": 0.2, "delay": 0.3, "delay_seconds": [0.2, 1.5]}}
    )
    async with running_worker(
        env, tmp_path, overdue_after_seconds=1, sweep_interval_seconds=0.5
    ) as h:
        await h.send(_req(i) for i in range(n))
        await h.results.wait_for(n, within=60)
    counters = await emulator.counters()
    by_status = counters["loops_by_status"]
    by_req = h.results.by_request
    assert len(by_req) == n
    assert all(len(v) == 1 for v in by_req.values())
    outcomes = h.results.outcomes
    assert outcomes["completed"] == by_status.get("Completed", 0)
    assert outcomes["failed"] == by_status.get("Failed", 0)
    assert counters["events"]["dropped"] > 0, "the fault really dropped events"
    for res in (r for rs in by_req.values() for r in rs if r["outcome"] == "failed"):
        assert res["failure_code"] == "InternalError"
        assert res["reason"]


async def test_expired_loop_is_resubmitted_then_completes(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual"})
    rid = "rec-exp-1"
    first = loop_name(env.flow_definition_arn, rid, 1)
    second = loop_name(env.flow_definition_arn, rid, 2)
    async with running_worker(env, tmp_path, max_attempts=2) as h:
        await h.send([_req(0) | {"request_id": rid}])
        await wait_until(lambda: _exists(emulator, first), 20, message="first loop")
        await emulator.finish(first, "Expired")
        await wait_until(lambda: _exists(emulator, second), 20, message="resubmitted loop")
        await emulator.finish(second, "Completed", answers={"label": "dog"})
        await h.results.wait_for(1, within=20)
    (res,) = h.results.by_request[rid]
    assert res["outcome"] == "completed"
    assert res["attempt"] == 2
    assert res["loop_name"] == second


async def test_expired_beyond_max_attempts_gives_expired(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual"})
    rid = "rec-exp-2"
    first = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path, max_attempts=1) as h:
        await h.send([_req(0) | {"request_id": rid}])
        await wait_until(lambda: _exists(emulator, first), 20, message="loop")
        await emulator.finish(first, "Expired")
        await h.results.wait_for(1, within=20)
    (res,) = h.results.by_request[rid]
    assert res["outcome"] == "expired"


async def test_cancel_while_a_reviewer_works_gives_stopped(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual", "stop_delay": 0.3})
    rid = "rec-cancel-1"
    name = loop_name(env.flow_definition_arn, rid, 1)
    async with running_worker(env, tmp_path) as h:
        await h.send([_req(0) | {"request_id": rid}])
        await wait_until(lambda: _exists(emulator, name), 20, message="loop")
        await h.send([{"type": "cancel", "request_id": rid}])
        await h.results.wait_for(1, within=20)
    (res,) = h.results.by_request[rid]
    assert res["outcome"] == "stopped"
    counters = await emulator.counters()
    assert counters["operations"]["StopHumanLoop"]["accepted"] == 1


async def test_ground_truth_and_garbage_events_do_not_disturb(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    gt = json.loads(
        (
            Path(__file__).parents[1] / "data" / "aws" / "gt-labeling-job-state-change.json"
        ).read_text("utf-8")
    )
    async with running_worker(env, tmp_path) as h:
        await h.aws.sqs.send_message(QueueUrl=env.events_queue_url, MessageBody=json.dumps(gt))
        await h.aws.sqs.send_message(QueueUrl=env.events_queue_url, MessageBody="not an event {")
        assert h.worker is not None
        worker = h.worker
        await wait_until(
            lambda: (
                worker.events.counts.get("ground_truth", 0) == 1
                and worker.events.counts.get("invalid", 0) == 1
            ),
            20,
            message="both events handled",
        )
        dlq = await h.dlq_messages(env.events_dlq_url)
        # And the worker still works.
        await emulator.put_reviewers(
            {"mode": "auto", "delay": {"distribution": "fixed", "seconds": 0.1}}
        )
        await h.send([_req(1)])
        await h.results.wait_for(1, within=20)
    assert len(dlq) == 1
    assert dlq[0]["Body"] == "not an event {"
    assert "a2i_worker_rejection_reason" in dlq[0]["MessageAttributes"]


async def _exists(emulator: EmulatorControl, name: str) -> bool:
    counters = await emulator.counters(detail=True)
    return int(counters.get("starts_per_name", {}).get(name, 0)) >= 1
