"""Verify at start, keep verifying: every dependency, on the real local stack.

Each dependency is made wrong in turn (a queue URL with a typo, a route whose flow
definition does not exist, a flow whose output bucket does not exist, a missing ledger
table): start-up stops with one line naming the setting, and ``a2i-worker run`` exits 2.
A dependency that breaks while the worker runs makes ``/readyz`` 503 naming it, and ready
again once it is back. Nothing is stubbed: moto and the emulator answer every call.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from harness import make_settings, running_worker, write_routes

from a2i_worker.aws import AwsClients
from a2i_worker.errors import ConfigError
from a2i_worker.local import LocalStack
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.provision import create_flow_definition
from a2i_worker.worker import run_worker
from helpers import wait_until


def _config_errors(exc: BaseException) -> list[str]:
    if isinstance(exc, ConfigError):
        return [str(exc)]
    if isinstance(exc, BaseExceptionGroup):
        return [m for sub in exc.exceptions for m in _config_errors(sub)]
    return []


async def _start_errors(
    env: StackEndpoints, tmp_path: Path, routes: Path, **over: Any
) -> list[str]:
    """Start a worker in this process; the start-up errors it stops with (none: it ran)."""
    settings = make_settings(env, routes, tmp_path / "ledger.db", **over)
    stop = anyio.Event()
    stop.set()  # a worker that passes its checks drains at once
    try:
        with anyio.fail_after(60):
            await run_worker(settings, stop=stop, environ=env.env())
    except BaseException as exc:
        errors = _config_errors(exc)
        if not errors:
            raise
        return errors
    return []


def _typo(url: str) -> str:
    return url + "x"


async def test_run_exits_2_naming_a_mistyped_queue_and_a_missing_flow(
    env: StackEndpoints, tmp_path: Path
) -> None:
    """The real entry point: one line per wrong dependency, exit status 2, no traceback."""
    missing_arn = env.flow_definition_arn.rpartition("/")[0] + "/no-such-flow"
    routes = write_routes(
        tmp_path,
        env.flow_definition_arn,
        extra=f'\n[routes.ghost]\nflow_definition_arn = "{missing_arn}"\n',
    )
    environ = {
        **os.environ,
        **env.env(),
        "A2I_WORKER_RESULTS_QUEUE_URL": _typo(env.results_queue_url),
        "A2I_WORKER_ROUTES_FILE": str(routes),
        "A2I_WORKER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "A2I_WORKER_HEALTH_PORT": "0",
        "A2I_WORKER_LOG_FORMAT": "json",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "a2i_worker.cli",
        "run",
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [ln for ln in err.decode().splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2, err.decode()[-3000:]
    assert "Traceback" not in err.decode()
    results = env.results_queue_url.rpartition("/")[2]
    assert lines == [
        f"error: A2I_WORKER_RESULTS_QUEUE_URL (queue '{results}x'): "
        "does not exist (AWS.SimpleQueueService.NonExistentQueue)",
        "error: A2I_WORKER_ROUTES_FILE: route 'ghost': flow definition 'no-such-flow': "
        "does not exist (ResourceNotFound)",
    ], err.decode()[-3000:]
    assert out == b""


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ("requests_queue_url", "A2I_WORKER_REQUESTS_QUEUE_URL"),
        ("events_queue_url", "A2I_WORKER_EVENTS_QUEUE_URL"),
        ("requests_dlq_url", "A2I_WORKER_REQUESTS_DLQ_URL"),
        ("events_dlq_url", "A2I_WORKER_EVENTS_DLQ_URL"),
    ],
)
async def test_each_queue_is_checked(
    env: StackEndpoints, tmp_path: Path, setting: str, variable: str
) -> None:
    routes = write_routes(tmp_path, env.flow_definition_arn)
    wrong = _typo(getattr(env, setting))
    errors = await _start_errors(env, tmp_path, routes, **{setting: wrong})
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{variable} (queue '{wrong.rpartition('/')[2]}'): does not exist")


async def test_a_flow_whose_output_bucket_is_missing(
    env: StackEndpoints, stack: LocalStack, tmp_path: Path
) -> None:
    arn = await create_flow_definition(
        stack.a2i_url,
        f"{env.output_prefix}-nobucket",
        f"s3://{env.output_prefix}-no-such-bucket/out",
        region=env.region,
        account_id=env.account_id,
    )
    errors = await _start_errors(env, tmp_path, write_routes(tmp_path, arn))
    assert errors == [
        f"A2I_WORKER_ROUTES_FILE: route 'main': flow definition '{env.output_prefix}-nobucket': "
        f"output bucket '{env.output_prefix}-no-such-bucket' does not exist"
    ]


async def test_a_missing_ledger_table(env: StackEndpoints, tmp_path: Path) -> None:
    routes = write_routes(tmp_path, env.flow_definition_arn)
    errors = await _start_errors(
        env, tmp_path, routes, ledger_url=f"dynamodb://{env.output_prefix}-no-table"
    )
    assert len(errors) == 1
    assert f"ledger table '{env.output_prefix}-no-table' does not exist" in errors[0]


async def test_a_shadow_route_needs_no_flow_and_a_correct_config_starts(
    env: StackEndpoints, tmp_path: Path
) -> None:
    ghost = env.flow_definition_arn.rpartition("/")[0] + "/never-created"
    routes = write_routes(
        tmp_path,
        env.flow_definition_arn,
        extra=f'\n[routes.trial]\nflow_definition_arn = "{ghost}"\nmode = "shadow"\n',
    )
    assert await _start_errors(env, tmp_path, routes) == []


async def _readyz(port: int | None) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/readyz") as resp,
    ):
        return resp.status, json.loads(await resp.text())


async def test_readiness_names_a_dependency_that_breaks_and_heals(
    env: StackEndpoints, stack: LocalStack, aws: AwsClients, tmp_path: Path
) -> None:
    """The results queue deleted, then the flow definition: 503 naming each; back: 200."""
    async with running_worker(env, tmp_path) as h:
        assert h.worker is not None
        worker = h.worker
        port = worker.health.bound_port
        assert await _readyz(port) == (200, {"ready": True, "reasons": []})

        await aws.sqs.delete_queue(QueueUrl=env.results_queue_url)
        await worker.health.check_once()
        status, body = await _readyz(port)
        assert status == 503
        assert body["reasons"] == [
            "results_queue: does not exist (AWS.SimpleQueueService.NonExistentQueue)"
        ]

        await aws.sqs.create_queue(QueueName=env.results_queue_url.rpartition("/")[2])
        await worker.health.check_once()
        assert await _readyz(port) == (200, {"ready": True, "reasons": []})

        await aws.sagemaker.delete_flow_definition(FlowDefinitionName=env.flow_definition_name)

        async def flow_gone() -> list[str] | None:
            await worker.health.check_once()
            status, body = await _readyz(port)
            assert status == 503  # "status Deleting" first, then gone
            return list(body["reasons"]) if "exist" in str(body["reasons"]) else None

        reasons = await wait_until(flow_gone, 10, interval=0.1, message="flow reported")
        assert reasons == ["flow:main: does not exist (ResourceNotFound)"]

        await create_flow_definition(
            stack.a2i_url,
            env.flow_definition_name,
            env.output_s3_uri,
            region=env.region,
            account_id=env.account_id,
        )

        async def healed() -> bool:
            await worker.health.check_once()
            return (await _readyz(port))[0] == 200

        await wait_until(healed, 10, interval=0.1, message="ready again")
