"""Event faults at volume, with mixed loop outcomes, expiry resubmissions and a kill -9.

tests/integration/test_reconciliation.py proves 40 requests survive dropped, duplicated
and reordered events in-process. This long variant (``make chaos``) adds what that one
cannot: a real worker process killed in the middle, hundreds of loops, Expired loops
resubmitted as the next attempt, and every result checked against what A2I itself says
about the request's last loop (DescribeHumanLoop), not against the worker's word.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_support import (
    QueueProbe,
    ResultsCollector,
    make_requests,
    new_process,
    send_all,
    worker_env,
)

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name
from helpers import wait_until

MAX_ATTEMPTS = 2


@pytest.mark.chaos
@pytest.mark.timeout(600)
async def test_event_faults_mixed_outcomes_and_a_kill(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.2, "high": 2.0},
            "outcomes": {"Completed": 0.7, "InternalError": 0.15, "Expired": 0.15},
            "answers": {"template": {"label": "cat"}},
        }
    )
    await emulator.put_faults(
        {"events": {"drop": 0.3, "duplicate": 0.2, "delay": 0.3, "delay_seconds": [0.5, 4.0]}}
    )
    bodies, expected = make_requests(600, prefix="evf", seed=31)
    environ = worker_env(env, tmp_path, max_attempts=str(MAX_ATTEMPTS))
    results = ResultsCollector(aws, env.results_queue_url)
    await send_all(aws, env.requests_queue_url, bodies)

    first = new_process(environ, tmp_path / "worker-1.log", "w1")
    first.start()
    await first.wait_ready(60)

    async def halfway() -> bool:
        await results.poll()
        return len(results.request_ids) >= len(bodies) // 3

    await wait_until(halfway, 120, interval=0.1, message="a third of the results")
    first.kill()
    first.close()

    second = new_process(environ, tmp_path / "worker-2.log", "w2")
    second.start()
    await second.wait_ready(60)
    await results.wait_for(expected.request_ids, 300)
    second.terminate()
    assert await second.wait_exit(15) == 0
    second.close()

    counters = await emulator.counters()
    assert counters["events"]["dropped"] > 0
    assert counters["events"]["duplicated"] > 0
    assert counters["max_starts_per_name"] == 1
    starts = (await emulator.counters(detail=True))["starts_per_name"]
    by_req = results.by_request()
    assert set(by_req) == set(expected.request_ids)
    for rid, deliveries in by_req.items():
        assert len({d["result_id"] for d in deliveries}) == 1, deliveries
        res = deliveries[0]
        if rid not in expected.activated:
            assert res["outcome"] == "not_activated"
            continue
        name = loop_name(env.flow_definition_arn, rid, res["attempt"])
        assert res["loop_name"] == name
        loop = await aws.a2i.describe_human_loop(HumanLoopName=name)
        status, code = loop["HumanLoopStatus"], loop.get("FailureCode")
        if res["outcome"] == "completed":
            assert status == "Completed", (rid, loop)
        elif res["outcome"] == "expired":
            assert (status, code) == ("Failed", "Expired"), (rid, loop)
            assert res["attempt"] == MAX_ATTEMPTS
        else:
            assert res["outcome"] == "failed", res
            assert status == "Failed", (rid, loop)
            assert code != "Expired", (rid, loop)
        # No loop beyond the one the result names.
        nxt = loop_name(env.flow_definition_arn, rid, res["attempt"] + 1)
        assert nxt not in starts, f"{rid}: a loop after the final one: {json.dumps(res)}"
    assert await QueueProbe(aws).drained(env.requests_queue_url)
