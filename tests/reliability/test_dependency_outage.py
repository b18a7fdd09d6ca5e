"""SQS unreachable for a while: the worker says not-ready, stays alive, backs off, and
recovers by itself when SQS is back; every request still ends in exactly one result."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from reliability_support import (
    QueueProbe,
    ResultsCollector,
    assert_exactly_once,
    make_requests,
    new_process,
    send_all,
    worker_env,
)
from tcp_switch import TcpSwitch

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until


@pytest.fixture
async def sqs_switch(env: StackEndpoints) -> AsyncIterator[TcpSwitch]:
    switch = TcpSwitch(env.moto_url)
    await switch.on()
    try:
        yield switch
    finally:
        await switch.off()


async def _health(url: str) -> tuple[int, dict[str, object] | str]:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_sqs_outage_not_ready_then_recovers_without_loss(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
    sqs_switch: TcpSwitch,
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.2, "high": 1.0},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )
    bodies, expected = make_requests(80, prefix="outage", seed=3)
    environ = worker_env(env, tmp_path) | {"AWS_ENDPOINT_URL_SQS": sqs_switch.url}
    results = ResultsCollector(aws, env.results_queue_url)
    probe = QueueProbe(aws)
    worker = new_process(environ, tmp_path / "worker.log", "outage")
    worker.start()
    try:
        await worker.wait_ready(60)
        await send_all(aws, env.requests_queue_url, bodies[:40])
        await wait_until(
            lambda: _some_results(results, 20), 30, message="first results before the outage"
        )

        await sqs_switch.off()
        # Requests keep arriving while the worker cannot reach SQS.
        await send_all(aws, env.requests_queue_url, bodies[40:])

        async def not_ready() -> object:
            status, body = await _health(worker.health_url + "/readyz")
            return body if status == 503 else None

        body = await wait_until(not_ready, 15, interval=0.1, message="/readyz 503")
        assert isinstance(body, dict)
        assert any("sqs" in str(r) for r in body["reasons"]), body
        # Alive all along: liveness must not restart a worker for a dependency outage.
        assert (await _health(worker.health_url + "/livez"))[0] == 200
        outage_connections = sqs_switch.connections

        await sqs_switch.on()

        async def ready() -> bool:
            return (await _health(worker.health_url + "/readyz"))[0] == 200

        await wait_until(ready, 40, interval=0.2, message="ready again after SQS came back")
        assert sqs_switch.connections > outage_connections, "the worker came back by itself"
        await results.wait_for(expected.request_ids, 60)
        assert worker.proc is not None
        assert worker.proc.poll() is None, "the worker never exited during the outage"
        worker.terminate()
        assert await worker.wait_exit(15) == 0
    finally:
        worker.close()
    await assert_exactly_once(expected, results, emulator, probe, env)


async def _some_results(results: ResultsCollector, n: int) -> bool:
    await results.poll()
    return len(results.deliveries) >= n
