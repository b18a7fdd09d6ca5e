"""Sharing the local stack: ``a2i-worker local --no-worker``, its env file, its routes.

- config/local-routes.toml is the routes file `a2i-worker local` writes, and its flow
  definitions exist on a provisioned stack.
- Two stacks started with ``--no-worker`` on one machine, each joined by a real
  ``a2i-worker run`` that reads nothing but the stack's env file, share no port and no
  queue, and each request gets its result from its own stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from dotenv import dotenv_values

from a2i_worker.envfile import export_env_file_aws_variables
from a2i_worker.local import LocalStack, StackEndpoints
from a2i_worker.local.processes import WorkerProcess
from a2i_worker.local.workspace import LOCAL_RULES, write_workspace
from a2i_worker.settings import ENV_FILE_VARIABLE
from helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def _endpoints(flow_arn: str) -> StackEndpoints:
    url = "http://127.0.0.1:1"
    return StackEndpoints(
        region="us-east-1",
        account_id="123456789012",
        moto_url=url,
        a2i_url=url,
        requests_queue_url=f"{url}/123456789012/demo-requests",
        requests_dlq_url=f"{url}/123456789012/demo-requests-dlq",
        events_queue_url=f"{url}/123456789012/demo-events",
        events_dlq_url=f"{url}/123456789012/demo-events-dlq",
        results_queue_url=f"{url}/123456789012/demo-results",
        output_bucket="demo-a2i-output",
        output_prefix="demo",
        flow_definition_arn=flow_arn,
        flow_definition_name=flow_arn.rpartition("/")[2],
        rule_name="demo-a2i-status",
    )


def test_config_local_routes_is_what_local_writes(tmp_path: Path) -> None:
    shipped = tomllib.loads((REPO / "config" / "local-routes.toml").read_text())
    arn = shipped["routes"]["invoices"]["flow_definition_arn"]
    space = write_workspace(tmp_path, _endpoints(arn), health_port=1)
    written = tomllib.loads(space.routes_file.read_text())
    rules_path = space.routes_file.parent / written["routes"]["invoices"].pop("rules")
    assert json.loads(rules_path.read_text()) == LOCAL_RULES
    assert shipped["routes"]["invoices"].pop("rules") == LOCAL_RULES
    assert written == shipped


async def test_config_local_routes_flows_exist_on_the_stack(stack: LocalStack) -> None:
    env = await stack.provision("demo")
    shipped = tomllib.loads((REPO / "config" / "local-routes.toml").read_text())
    arns = {r["flow_definition_arn"] for r in shipped["routes"].values()}
    assert arns == {env.flow_definition_arn}
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=stack.region
    )
    async with session.client("sagemaker", endpoint_url=stack.a2i_url) as sagemaker:
        for arn in arns:
            desc = await sagemaker.describe_flow_definition(
                FlowDefinitionName=arn.rpartition("/")[2]
            )
            assert desc["FlowDefinitionArn"] == arn
            assert desc["FlowDefinitionStatus"] == "Active"
    again = await stack.provision("demo")  # provisioning twice reuses the flow
    assert again.flow_definition_arn == env.flow_definition_arn


def test_env_file_exports_its_aws_variables_real_ones_win(tmp_path: Path) -> None:
    path = tmp_path / "local.env"
    path.write_text("AWS_ENDPOINT_URL=http://127.0.0.1:9\nAWS_REGION=eu-west-1\nA2I_WORKER_X=1\n")
    environ = {ENV_FILE_VARIABLE: str(path), "AWS_REGION": "us-east-1"}
    assert export_env_file_aws_variables(environ) == ["AWS_ENDPOINT_URL"]
    assert environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert environ["AWS_REGION"] == "us-east-1"
    assert "A2I_WORKER_X" not in environ


class _LocalProcess:
    """``a2i-worker local --no-worker --env-file <path>`` as its own process."""

    def __init__(self, env_file: Path, log: Path) -> None:
        self.env_file = env_file
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "a2i_worker.cli", "local", "--no-worker",
             "--env-file", str(env_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**_clean_environ(), "COLUMNS": "200"},
        )  # fmt: skip

    def values(self) -> dict[str, str]:
        return {k: v for k, v in dotenv_values(self.env_file).items() if v is not None}

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._log.close()
        return code


def _clean_environ() -> dict[str, str]:
    """This process's environment without AWS endpoints: only the env file may set them."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}


@pytest.fixture
def two_stacks(tmp_path: Path) -> Iterator[list[_LocalProcess]]:
    stacks = [_LocalProcess(tmp_path / f"s{i}.env", tmp_path / f"s{i}.log") for i in (1, 2)]
    try:
        yield stacks
    finally:
        codes = [s.stop() for s in stacks]
        assert codes == [0, 0], [(s.env_file.with_suffix(".log")).read_text() for s in stacks]


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


async def _result(values: dict[str, str], request_id: str, within: float) -> dict[str, Any]:
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    async with session.client("sqs", endpoint_url=values["AWS_ENDPOINT_URL_SQS"]) as sqs:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            resp = await sqs.receive_message(
                QueueUrl=values["A2I_WORKER_RESULTS_QUEUE_URL"],
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
            )
            for m in resp.get("Messages", []):
                body: dict[str, Any] = json.loads(m["Body"])
                if body["request_id"] == request_id:
                    return body
        raise AssertionError(f"no result for {request_id} within {within}s")


async def _send(values: dict[str, str], body: dict[str, Any]) -> None:
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    async with session.client("sqs", endpoint_url=values["AWS_ENDPOINT_URL_SQS"]) as sqs:
        await sqs.send_message(
            QueueUrl=values["A2I_WORKER_REQUESTS_QUEUE_URL"], MessageBody=json.dumps(body)
        )


async def test_two_stacks_and_their_workers_side_by_side(
    two_stacks: list[_LocalProcess], tmp_path: Path
) -> None:
    for s in two_stacks:

        def written(s: _LocalProcess = s) -> bool:
            return s.env_file.is_file() and "A2I_WORKER_HEALTH_PORT" in s.values()

        await wait_until(written, 60.0, message=f"{s.env_file} written")
    values = [s.values() for s in two_stacks]
    ports = [
        {_port(v["AWS_ENDPOINT_URL"]), _port(v["AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME"]),
         int(v["A2I_WORKER_HEALTH_PORT"])}
        for v in values
    ]  # fmt: skip
    assert not ports[0] & ports[1], "the two stacks share a port"
    for key in (
        "A2I_WORKER_REQUESTS_QUEUE_URL",
        "A2I_WORKER_RESULTS_QUEUE_URL",
        "A2I_WORKER_LEDGER_URL",
        "A2I_WORKER_ROUTES_FILE",
    ):
        assert values[0][key] != values[1][key], key  # fmt: skip
    assert (
        values[0]["AWS_ENDPOINT_URL_SAGEMAKER"]
        == values[0]["AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME"]
    )

    workers: list[WorkerProcess] = []
    try:
        for i, s in enumerate(two_stacks):
            env = {**_clean_environ(), ENV_FILE_VARIABLE: str(s.env_file)}
            worker = WorkerProcess(env, log_path=tmp_path / f"w{i}.log", name=f"worker-{i}")
            worker.env = {k: v for k, v in worker.env.items()
                          if not k.startswith("AWS_ENDPOINT_URL")}  # fmt: skip
            worker.start()
            workers.append(worker)
        for w in workers:
            await w.wait_ready(60.0)
        for i, v in enumerate(values):
            await _send(
                v,
                {"request_id": f"side-{i}", "route": "invoices",
                 "input": {"confidence": 0.1, "predicted_total": "10.00"}},
            )  # fmt: skip
        for i, v in enumerate(values):
            result = await _result(v, f"side-{i}", within=60.0)
            assert result["outcome"] in ("completed", "failed", "expired")
            assert result["loop_name"]
            other = values[1 - i]
            assert other["A2I_WORKER_RESULTS_QUEUE_URL"] != v["A2I_WORKER_RESULTS_QUEUE_URL"]
        for w in workers:
            w.terminate()
        for w in workers:
            assert await w.wait_exit(30.0) == 0
    finally:
        for w in workers:
            w.close()
