"""output.json in S3 and status-change events through a real EventBridge rule into SQS (moto)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aioboto3
import pytest

from a2i_emulator import EmulatorControl
from a2i_emulator.publisher import DETAIL_TYPE, EVENT_SOURCE

from ._support import CREDS, eventually, make_flow, unique

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient
    from types_aiobotocore_sqs import SQSClient


@dataclass
class Env:
    s3: S3Client
    sqs: SQSClient
    bucket: str
    queue_url: str
    flow_name: str
    flow_arn: str


@pytest.fixture
async def env(
    moto_url: str, sagemaker: SageMakerClient, control: EmulatorControl
) -> AsyncIterator[Env]:
    """A bucket, a queue and a rule matching this test's flow definition only."""
    session = aioboto3.Session()
    async with (
        session.client("s3", endpoint_url=moto_url, **CREDS) as s3,
        session.client("sqs", endpoint_url=moto_url, **CREDS) as sqs,
        session.client("events", endpoint_url=moto_url, **CREDS) as events,
    ):
        bucket, name = unique("out"), unique("flow")
        await s3.create_bucket(Bucket=bucket)
        queue_url = (await sqs.create_queue(QueueName=unique("events")))["QueueUrl"]
        attrs = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        queue_arn = attrs["Attributes"]["QueueArn"]
        flow_arn = await make_flow(
            sagemaker, control, name, f"s3://{bucket}/reviews", {"mode": "manual"}
        )
        rule = unique("rule")
        pattern = {
            "source": [EVENT_SOURCE],
            "detail-type": [DETAIL_TYPE],
            "detail": {"flowDefinitionArn": [flow_arn]},
        }
        rule_arn = (await events.put_rule(Name=rule, EventPattern=json.dumps(pattern)))["RuleArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        await sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)}
        )
        await events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}])
        yield Env(s3, sqs, bucket, queue_url, name, flow_arn)


async def _receive_all(env: Env, expected: int, within: float = 10.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def probe() -> int:
        resp = await env.sqs.receive_message(
            QueueUrl=env.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        for msg in resp.get("Messages", []):
            got.append(json.loads(msg["Body"]))
            await env.sqs.delete_message(QueueUrl=env.queue_url, ReceiptHandle=msg["ReceiptHandle"])
        return len(got)

    await eventually(probe, lambda n: n >= expected, within=within, every=0.05)
    return got


async def test_completed_loop_writes_output_and_emits_event(
    env: Env, a2i: AugmentedAIRuntimeClient, control: EmulatorControl
) -> None:
    content = {"document_uri": "s3://incoming/1.pdf", "predicted_total": "1,250.00"}
    await control.put_flow_reviewers(
        env.flow_name,
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": 0.05},
            "answers": {"template": {"is_correct": True}, "copy": {"total": "predicted_total"}},
        },
    )
    await a2i.start_human_loop(
        HumanLoopName="inv-1",
        FlowDefinitionArn=env.flow_arn,
        HumanLoopInput={"InputContent": json.dumps(content)},
    )
    [event] = await _receive_all(env, 1)
    assert event["source"] == "aws.sagemaker"
    assert event["detail-type"] == "SageMaker A2I HumanLoop Status Change"
    detail = event["detail"]
    loop = await a2i.describe_human_loop(HumanLoopName="inv-1")
    assert detail["humanLoopStatus"] == loop["HumanLoopStatus"] == "Completed"
    assert detail["humanLoopArn"] == loop["HumanLoopArn"]
    assert event["resources"] == [loop["HumanLoopArn"]]
    uri = loop["HumanLoopOutput"]["OutputS3Uri"]
    assert detail["humanLoopOutput"] == {"outputS3Uri": uri}
    created = loop["CreationTime"].astimezone(tz=None).utctimetuple()
    stamp = "/".join(f"{v:02d}" for v in created[:6])
    assert uri == f"s3://{env.bucket}/reviews/{env.flow_name}/{stamp}/inv-1/output.json"
    key = uri.removeprefix(f"s3://{env.bucket}/")
    body = await (await env.s3.get_object(Bucket=env.bucket, Key=key))["Body"].read()
    output = json.loads(body)
    assert output["flowDefinitionArn"] == env.flow_arn
    assert output["humanLoopName"] == "inv-1"
    assert output["inputContent"] == content
    [answer] = output["humanAnswers"]
    assert answer["answerContent"] == {"is_correct": True, "total": "1,250.00"}
    assert {"acceptanceTime", "submissionTime", "timeSpentInSeconds", "workerId"} <= set(answer)
    counters = await control.counters()
    assert counters["outputs_written"] == 1
    assert counters["events"]["emitted"] == 1


async def test_manual_finish_failures_and_stops_emit_events(
    env: Env, a2i: AugmentedAIRuntimeClient, control: EmulatorControl
) -> None:
    for name in ("m-1", "m-2", "m-3", "m-4"):
        await a2i.start_human_loop(
            HumanLoopName=name,
            FlowDefinitionArn=env.flow_arn,
            HumanLoopInput={"InputContent": "{}"},
        )
    done = await control.finish("m-1", "Completed", answers={"label": "dog"})
    assert done["HumanLoopStatus"] == "Completed"
    assert (await control.finish("m-2", "Expired"))["FailureCode"] == "Expired"
    assert (await control.finish("m-3", "InternalError"))["FailureCode"] == "InternalError"
    await control.put_flow_reviewers(env.flow_name, {"stop_delay": 0})
    await a2i.stop_human_loop(HumanLoopName="m-4")
    events = await _receive_all(env, 4)
    statuses = {
        e["detail"]["humanLoopName"]: (e["detail"]["humanLoopStatus"], e["detail"]["failureCode"])
        for e in events
    }
    assert statuses == {
        "m-1": ("Completed", None),
        "m-2": ("Failed", "Expired"),
        "m-3": ("Failed", "InternalError"),
        "m-4": ("Stopped", None),
    }
    key = done["HumanLoopOutput"]["OutputS3Uri"].removeprefix(f"s3://{env.bucket}/")
    body = await (await env.s3.get_object(Bucket=env.bucket, Key=key))["Body"].read()
    assert json.loads(body)["humanAnswers"][0]["answerContent"] == {"label": "dog"}


async def test_event_faults_drop_and_duplicate(
    env: Env, a2i: AugmentedAIRuntimeClient, control: EmulatorControl
) -> None:
    await control.put_faults({"events": {"duplicate": 1.0}})
    for name in ("d-1", "d-2"):
        await a2i.start_human_loop(
            HumanLoopName=name,
            FlowDefinitionArn=env.flow_arn,
            HumanLoopInput={"InputContent": "{}"},
        )
    await control.finish("d-1", "Expired")
    await control.put_faults({"events": {"duplicate": 0.0, "drop": 1.0}})
    await control.finish("d-2", "Expired")
    await control.put_faults({"events": {"drop": 0.0, "delay": 1.0, "delay_seconds": [0.2, 0.2]}})
    await a2i.start_human_loop(
        HumanLoopName="d-3", FlowDefinitionArn=env.flow_arn, HumanLoopInput={"InputContent": "{}"}
    )
    await control.finish("d-3", "InternalError")
    events = await _receive_all(env, 3)
    names = sorted(e["detail"]["humanLoopName"] for e in events)
    assert names == ["d-1", "d-1", "d-3"]
    counters = await control.counters()
    assert counters["events"] == {
        "emitted": 3,
        "dropped": 1,
        "duplicated": 1,
        "delayed": 1,
        "publish_errors": 0,
    }


async def test_missing_bucket_fails_the_loop_not_the_emulator(
    a2i: AugmentedAIRuntimeClient, sagemaker: SageMakerClient, control: EmulatorControl
) -> None:
    arn = await make_flow(
        sagemaker, control, unique("nobucket"), f"s3://{unique('missing')}/x", {"mode": "manual"}
    )
    await a2i.start_human_loop(
        HumanLoopName="nb", FlowDefinitionArn=arn, HumanLoopInput={"InputContent": "{}"}
    )
    loop = await control.finish("nb", "Completed")
    assert loop["HumanLoopStatus"] == "Failed"
    assert loop["FailureCode"] == "InternalError"
    assert (await control.counters())["output_errors"] == 1
