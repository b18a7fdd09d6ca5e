"""The embedded local stack: isolation between environments, event routing, env mapping,
keep-alive, clean shutdown (thread and subprocess modes)."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator

import aioboto3
import aiohttp
import pytest
from types_aiobotocore_events.type_defs import PutEventsRequestEntryTypeDef

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.local import (
    LocalStack,
    MotoServer,
    MotoSubprocess,
    StackEndpoints,
    run_stack_forever,
)
from a2i_worker.local.endpoints import A2I_DETAIL_TYPE, GT_DETAIL_TYPE
from helpers import wait_until


def _a2i_event(
    env: StackEndpoints, loop_name: str, status: str = "Completed"
) -> PutEventsRequestEntryTypeDef:
    arn = f"arn:aws:sagemaker:{env.region}:{env.account_id}:human-loop/{loop_name}"
    return {
        "Source": "aws.sagemaker",
        "DetailType": A2I_DETAIL_TYPE,
        "Resources": [arn],
        "Detail": json.dumps(
            {
                "flowDefinitionArn": env.flow_definition_arn,
                "humanLoopArn": arn,
                "humanLoopName": loop_name,
                "humanLoopStatus": status,
                "failureCode": None,
                "failureReason": None,
                "creationTime": "2026-11-22T10:02:41.512Z",
            }
        ),
    }


async def _bodies(aws: AwsClients, queue_url: str) -> list[str]:
    got = await aws.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [m["Body"] for m in got.get("Messages", [])]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
async def other_env(stack: LocalStack) -> StackEndpoints:
    return await stack.provision(f"o-{uuid.uuid4().hex[:10]}")


async def test_two_environments_do_not_share_resources(
    env: StackEndpoints, other_env: StackEndpoints, aws: AwsClients
) -> None:
    mine = {
        env.requests_queue_url, env.requests_dlq_url, env.events_queue_url,
        env.events_dlq_url, env.results_queue_url, env.output_bucket,
        env.flow_definition_arn, env.rule_name,
    }  # fmt: skip
    theirs = {
        other_env.requests_queue_url, other_env.requests_dlq_url, other_env.events_queue_url,
        other_env.events_dlq_url, other_env.results_queue_url, other_env.output_bucket,
        other_env.flow_definition_arn, other_env.rule_name,
    }  # fmt: skip
    assert len(mine) == len(theirs) == 8
    assert mine.isdisjoint(theirs)

    await aws.sqs.send_message(QueueUrl=env.requests_queue_url, MessageBody="for-env")
    assert await _bodies(aws, other_env.requests_queue_url) == []
    assert await _bodies(aws, env.requests_queue_url) == ["for-env"]

    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=env.requests_queue_url, AttributeNames=["RedrivePolicy"]
    )
    redrive = json.loads(attrs["Attributes"]["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"].endswith(":" + env.requests_dlq_url.rsplit("/", 1)[1])
    await aws.s3.head_bucket(Bucket=env.output_bucket)


async def test_status_event_reaches_only_its_environment(
    env: StackEndpoints, other_env: StackEndpoints, aws: AwsClients
) -> None:
    put = await aws.events.put_events(Entries=[_a2i_event(env, "loop-for-env")])
    assert put["FailedEntryCount"] == 0

    bodies = await wait_until(lambda: _bodies(aws, env.events_queue_url), 5.0)
    event = json.loads(bodies[0])
    assert event["detail-type"] == A2I_DETAIL_TYPE
    assert event["detail"]["humanLoopName"] == "loop-for-env"
    # moto delivers synchronously inside PutEvents: nothing can still be on its way.
    assert await _bodies(aws, other_env.events_queue_url) == []

    # Another flow definition's event (same source and detail-type) is not delivered here.
    foreign = _a2i_event(other_env, "loop-for-other")
    await aws.events.put_events(Entries=[foreign])
    names = [
        json.loads(b)["detail"]["humanLoopName"] for b in await _bodies(aws, env.events_queue_url)
    ]
    assert names == ["loop-for-env"]


async def test_ground_truth_rule_is_optional(stack: LocalStack, aws: AwsClients) -> None:
    prefix = f"gt-{uuid.uuid4().hex[:10]}"
    with_gt = await stack.provision(prefix, ground_truth_rule=True)
    without = await stack.provision(f"ng-{uuid.uuid4().hex[:10]}")
    assert with_gt.gt_rule_name is not None
    assert without.gt_rule_name is None
    for env in (with_gt, without):
        job = f"arn:aws:sagemaker:{env.region}:{env.account_id}:labeling-job/{env.output_prefix}-7"
        await aws.events.put_events(
            Entries=[
                {
                    "Source": "aws.sagemaker",
                    "DetailType": GT_DETAIL_TYPE,
                    "Resources": [job],
                    "Detail": json.dumps({"LabelingJobStatus": "Completed"}),
                }
            ]
        )
    bodies = await _bodies(aws, with_gt.events_queue_url)
    assert [json.loads(b)["detail-type"] for b in bodies] == [GT_DETAIL_TYPE]
    assert await _bodies(aws, without.events_queue_url) == []


async def test_emulator_loop_finishes_through_the_real_rule(
    env: StackEndpoints, aws: AwsClients, emulator: EmulatorControl
) -> None:
    """A2I emulator -> EventBridge (moto) -> rule -> this env's events queue; output.json in S3."""
    await emulator.put_flow_reviewers(env.flow_definition_name, {"mode": "manual"})
    await aws.a2i.start_human_loop(
        HumanLoopName="stack-loop-1",
        FlowDefinitionArn=env.flow_definition_arn,
        HumanLoopInput={"InputContent": json.dumps({"text": "hello"})},
    )
    await emulator.finish("stack-loop-1", "Completed", answers={"label": "ok"})

    bodies = await wait_until(lambda: _bodies(aws, env.events_queue_url), 10.0)
    detail = json.loads(bodies[0])["detail"]
    assert detail["humanLoopName"] == "stack-loop-1"
    assert detail["humanLoopStatus"] == "Completed"
    output_uri = detail["humanLoopOutput"]["outputS3Uri"]
    assert output_uri.startswith(f"s3://{env.output_bucket}/{env.output_prefix}/")
    key = output_uri.split("/", 3)[3]
    obj = await aws.s3.get_object(Bucket=env.output_bucket, Key=key)
    assert json.loads(await obj["Body"].read())  # a JSON document was written


async def test_worker_env_mapping_is_complete(
    env: StackEndpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    mapping = env.env()
    assert mapping["A2I_WORKER_REQUESTS_QUEUE_URL"] == env.requests_queue_url
    assert mapping["A2I_WORKER_REQUESTS_DLQ_URL"] == env.requests_dlq_url
    assert mapping["A2I_WORKER_EVENTS_QUEUE_URL"] == env.events_queue_url
    assert mapping["A2I_WORKER_EVENTS_DLQ_URL"] == env.events_dlq_url
    assert mapping["A2I_WORKER_RESULTS_QUEUE_URL"] == env.results_queue_url
    assert mapping["AWS_REGION"] == env.region
    assert mapping["AWS_ACCESS_KEY_ID"] == mapping["AWS_SECRET_ACCESS_KEY"] == "testing"
    for service in ("SQS", "S3", "EVENTBRIDGE", "DYNAMODB"):
        assert mapping[f"AWS_ENDPOINT_URL_{service}"] == env.moto_url
    assert mapping["AWS_ENDPOINT_URL_SAGEMAKER_A2I_RUNTIME"] == env.a2i_url

    # Only the environment configures the clients: botocore's own endpoint chain.
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in mapping.items():
        monkeypatch.setenv(key, value)
    async with AwsClients() as clients:
        assert clients.sqs.meta.endpoint_url == env.moto_url
        assert clients.events.meta.endpoint_url == env.moto_url
        assert clients.a2i.meta.endpoint_url == env.a2i_url
        assert clients.sqs.meta.region_name == env.region
        attrs = await clients.sqs.get_queue_attributes(
            QueueUrl=env.requests_queue_url, AttributeNames=["QueueArn"]
        )
        assert attrs["Attributes"]["QueueArn"].endswith(env.requests_queue_url.rsplit("/", 1)[1])
        listed = await clients.a2i.list_human_loops(FlowDefinitionArn=env.flow_definition_arn)
        assert listed["HumanLoopSummaries"] == []


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    yield server
    server.stop()


async def test_keep_alive_reuses_one_connection_for_sequential_calls(
    own_moto: MotoServer,
) -> None:
    session = aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    async with session.client("sqs", endpoint_url=own_moto.url) as sqs:
        url = (await sqs.create_queue(QueueName=f"ka-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        before = own_moto.accepted_connections
        for i in range(20):
            await sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        assert len(got["Messages"]) == 10
        assert own_moto.accepted_connections - before == 0
    assert before == 1


async def test_keep_alive_survives_chunked_requests_and_streamed_bodies(
    own_moto: MotoServer,
) -> None:
    """Chunked request bodies and large responses leave the connection reusable."""
    connector = aiohttp.TCPConnector(limit=1)
    payload = b"x" * 300_000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 65536):
            yield payload[i : i + 65536]

    async with aiohttp.ClientSession(connector=connector) as http:
        bucket = f"{own_moto.url}/ka-bucket-{uuid.uuid4().hex[:8]}"
        async with http.put(bucket) as resp:
            assert resp.status == 200
        # Transfer-Encoding: chunked; public-read so unsigned GETs may read it.
        acl = {"x-amz-acl": "public-read"}
        async with http.put(f"{bucket}/big", data=chunks(), headers=acl) as resp:
            assert resp.status == 200
        for _ in range(3):
            async with http.get(f"{bucket}/big") as resp:
                assert resp.status == 200
                assert await resp.read() == payload
                assert resp.headers.get("Connection", "").lower() != "close"
        async with http.head(f"{bucket}/big") as resp:
            assert resp.headers["Content-Length"] == str(len(payload))
        async with http.get(f"{bucket}/missing") as resp:
            assert resp.status == 404
            await resp.read()
        async with http.get(f"{bucket}/big") as resp:
            assert len(await resp.read()) == len(payload)
    assert own_moto.accepted_connections == 1


def _stack_threads() -> set[threading.Thread]:
    names = ("moto-server", "moto-connection", "a2i-emulator")
    return {t for t in threading.enumerate() if t.name.startswith(names)}


@pytest.mark.parametrize("moto_in_subprocess", [False, True], ids=["thread", "subprocess"])
async def test_stop_releases_ports_threads_and_open_connections(moto_in_subprocess: bool) -> None:
    threads_before = _stack_threads()
    local = LocalStack(moto_in_subprocess=moto_in_subprocess)
    local.start()
    try:
        endpoints = await local.provision("stop-test")
        moto_port = int(local.moto_url.rsplit(":", 1)[1])
        a2i_port = int(local.a2i_url.rsplit(":", 1)[1])
        assert not _port_is_free(moto_port)
        assert not _port_is_free(a2i_port)
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        moto = local.moto_server
        child_pid = moto.pid if isinstance(moto, MotoSubprocess) else None
        assert (child_pid is not None) == moto_in_subprocess
        # A client keeps its keep-alive connection open while the stack stops.
        async with session.client("sqs", endpoint_url=local.moto_url) as sqs:
            await sqs.send_message(QueueUrl=endpoints.requests_queue_url, MessageBody="x")
            local.stop()
    finally:
        local.stop()
    if child_pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(child_pid, 0)  # exited and reaped
    assert _port_is_free(moto_port)
    assert _port_is_free(a2i_port)
    await wait_until(lambda: _stack_threads() <= threads_before, 5.0)


async def test_dynamodb_ledger_table_is_optional(stack: LocalStack, aws: AwsClients) -> None:
    with_ledger = await stack.provision(f"dl-{uuid.uuid4().hex[:10]}", dynamodb_ledger=True)
    assert with_ledger.ledger_table == f"{with_ledger.output_prefix}-ledger"
    assert with_ledger.env()["A2I_WORKER_LEDGER_URL"] == f"dynamodb://{with_ledger.ledger_table}"
    table = await aws.dynamodb.describe_table(TableName=with_ledger.ledger_table)
    assert table["Table"]["TableStatus"] == "ACTIVE"

    without = await stack.provision(f"nl-{uuid.uuid4().hex[:10]}")
    assert without.ledger_table is None
    assert "A2I_WORKER_LEDGER_URL" not in without.env()


async def test_run_stack_forever_provisions_and_stops_on_request() -> None:
    threads_before = _stack_threads()
    stop = threading.Event()
    ready: list[StackEndpoints] = []

    def on_ready(local: LocalStack, endpoints: StackEndpoints) -> None:
        ready.append(endpoints)

    runner = threading.Thread(
        target=run_stack_forever,
        kwargs={"moto_port": 0, "a2i_port": 0, "prefix": "forever", "stop": stop,
                "on_ready": on_ready},
        name="forever-test",
    )  # fmt: skip
    runner.start()
    try:
        await wait_until(lambda: ready, 20.0, message="stack ready")
        endpoints = ready[0]
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        async with session.client("sqs", endpoint_url=endpoints.moto_url) as sqs:
            await sqs.send_message(QueueUrl=endpoints.requests_queue_url, MessageBody="x")
    finally:
        stop.set()
    await wait_until(lambda: not runner.is_alive(), 15.0, message="run_stack_forever returned")
    assert _port_is_free(int(endpoints.moto_url.rsplit(":", 1)[1]))
    await wait_until(lambda: _stack_threads() <= threads_before, 5.0)


async def test_emulator_in_a_subprocess_serves_writes_output_and_stops() -> None:
    """Benchmarks run the emulator as its own process: same API, same path to moto."""
    local = LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=3)
    local.start()
    try:
        env = await local.provision("child-emu")
        a2i_port = int(local.a2i_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="subprocess"):
            _ = local.emulator
        environ = env.env()
        settings = AwsClientSettings(endpoint_urls=endpoints_from_environ(environ))
        async with (
            AwsClients(settings, environ=environ) as aws,
            EmulatorControl(local.a2i_url) as control,
        ):
            await control.put_flow_reviewers(env.flow_definition_name, {"mode": "manual"})
            await aws.a2i.start_human_loop(
                HumanLoopName="child-loop-1",
                FlowDefinitionArn=env.flow_definition_arn,
                HumanLoopInput={"InputContent": json.dumps({"text": "hello"})},
            )
            await control.finish("child-loop-1", "Completed", answers={"label": "ok"})
            bodies = await wait_until(lambda: _bodies(aws, env.events_queue_url), 10.0)
            assert json.loads(bodies[0])["detail"]["humanLoopName"] == "child-loop-1"
            assert (await control.counters())["loops_total"] == 1
    finally:
        local.stop()
    assert _port_is_free(a2i_port)
