"""The template's stateful core, created by moto's CloudFormation over HTTP, works as promised.

moto 5.2.5 has no CloudFormation model for three resource types of the template, so the
stack is created from a variant without them (and without anything that references them):

- ``AWS::SQS::QueuePolicy`` (EventsQueuePolicy): moto's EventBridge delivers to SQS
  without checking queue policies, so the rule -> queue path is still exercised; the
  policy itself is checked statically in test_cloudformation.py.
- ``AWS::ApplicationAutoScaling::ScalableTarget`` / ``ScalingPolicy``: scaling needs ECS
  metrics moto doesn't produce; checked statically.

A test fails when moto gains (or loses) support, so the list stays true.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import pytest
from moto.cloudformation.parsing import get_model_map

from a2i_worker.ledger.dynamodb import DynamoDbLedger
from a2i_worker.ledger.protocol import ClaimOutcome

from .cfn import load_template
from .moto_stack import (
    ACCOUNT,
    FLOW_ARNS,
    LEFT_OUT,
    REGION,
    STACK,
    UNSUPPORTED_BY_MOTO,
    as_parameters,
    client,
    moto_variant,
    stack_parameters,
    wait_for_stack,
)

if TYPE_CHECKING:
    from types_aiobotocore_cloudformation import CloudFormationClient
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_events import EventBridgeClient
    from types_aiobotocore_sqs import SQSClient

STATUS_CHANGE = "SageMaker A2I HumanLoop Status Change"


@dataclass(frozen=True)
class Stack:
    outputs: dict[str, str]
    resources: dict[str, str]  # logical ID -> physical ID
    status: str


async def _create_stack(moto_url: str) -> Stack:
    parameters = await stack_parameters(moto_url)
    async with client("cloudformation", moto_url) as cfn_any:
        cfn = cast("CloudFormationClient", cfn_any)
        await cfn.create_stack(
            StackName=STACK,
            TemplateBody=moto_variant(),
            Parameters=as_parameters(parameters),
            Capabilities=["CAPABILITY_IAM"],
        )
        described = await wait_for_stack(cfn, STACK)
        listed = await cfn.list_stack_resources(StackName=STACK)
    return Stack(
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
        resources={
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in listed["StackResourceSummaries"]
        },
        status=described["StackStatus"],
    )


@pytest.fixture(scope="module")
def cfn_stack(moto_url: str) -> Stack:
    return asyncio.run(_create_stack(moto_url))


def test_the_left_out_types_are_exactly_those_moto_lacks() -> None:
    types = {r["Type"] for r in load_template()["Resources"].values()}
    assert types - set(get_model_map()) == UNSUPPORTED_BY_MOTO


def test_stack_creates_every_other_resource(cfn_stack: Stack) -> None:
    assert cfn_stack.status == "CREATE_COMPLETE"
    expected = set(load_template()["Resources"]) - set(LEFT_OUT)
    assert set(cfn_stack.resources) == expected


async def test_queues_redrive_to_their_dlqs(cfn_stack: Stack, moto_url: str) -> None:
    async with client("sqs", moto_url) as sqs_any:
        sqs = cast("SQSClient", sqs_any)
        for queue, dlq in [
            ("RequestsQueueUrl", "RequestsDeadLetterQueueUrl"),
            ("EventsQueueUrl", "EventsDeadLetterQueueUrl"),
            ("ResultsQueueUrl", "ResultsDeadLetterQueueUrl"),
        ]:
            attrs = (
                await sqs.get_queue_attributes(
                    QueueUrl=cfn_stack.outputs[queue], AttributeNames=["All"]
                )
            )["Attributes"]
            dlq_arn = (
                await sqs.get_queue_attributes(
                    QueueUrl=cfn_stack.outputs[dlq], AttributeNames=["QueueArn"]
                )
            )["Attributes"]["QueueArn"]
            redrive = json.loads(attrs["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == dlq_arn
            assert int(redrive["maxReceiveCount"]) == 5
        requests = await sqs.get_queue_attributes(
            QueueUrl=cfn_stack.outputs["RequestsQueueUrl"], AttributeNames=["VisibilityTimeout"]
        )
        assert requests["Attributes"]["VisibilityTimeout"] == "120"


async def test_rule_pattern_and_target(cfn_stack: Stack, moto_url: str) -> None:
    async with client("events", moto_url) as events_any, client("sqs", moto_url) as sqs_any:
        events = cast("EventBridgeClient", events_any)
        sqs = cast("SQSClient", sqs_any)
        rule_name = cfn_stack.resources["HumanLoopStatusRule"]
        rule = await events.describe_rule(Name=rule_name)
        assert json.loads(rule["EventPattern"]) == {
            "source": ["aws.sagemaker"],
            "detail-type": [STATUS_CHANGE],
            "detail": {"flowDefinitionArn": FLOW_ARNS},
        }
        assert rule["State"] == "ENABLED"
        targets = (await events.list_targets_by_rule(Rule=rule_name))["Targets"]
        events_arn = (
            await sqs.get_queue_attributes(
                QueueUrl=cfn_stack.outputs["EventsQueueUrl"], AttributeNames=["QueueArn"]
            )
        )["Attributes"]["QueueArn"]
        assert [t["Arn"] for t in targets] == [events_arn]


async def test_only_a2i_status_changes_of_own_flows_reach_the_events_queue(
    cfn_stack: Stack, moto_url: str
) -> None:
    def entry(detail_type: str, flow_arn: str, name: str) -> Any:
        return {
            "Source": "aws.sagemaker",
            "DetailType": detail_type,
            "Detail": json.dumps(
                {
                    "flowDefinitionArn": flow_arn,
                    "humanLoopName": name,
                    "humanLoopStatus": "Completed",
                }
            ),
        }

    other_flow = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/someone-else"
    async with client("events", moto_url) as events_any, client("sqs", moto_url) as sqs_any:
        events = cast("EventBridgeClient", events_any)
        sqs = cast("SQSClient", sqs_any)
        sent = await events.put_events(
            Entries=[
                entry("SageMaker Ground Truth Labeling Job State Change", FLOW_ARNS[0], "gt"),
                entry(STATUS_CHANGE, other_flow, "other-flow"),
                entry(STATUS_CHANGE, FLOW_ARNS[1], "ours"),
            ]
        )
        assert sent["FailedEntryCount"] == 0
        names: list[str] = []
        deadline = time.monotonic() + 10
        while "ours" not in names:
            assert time.monotonic() < deadline, names
            got = await sqs.receive_message(
                QueueUrl=cfn_stack.outputs["EventsQueueUrl"],
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
            )
            names += [
                json.loads(m["Body"])["detail"]["humanLoopName"] for m in got.get("Messages", [])
            ]
        got = await sqs.receive_message(
            QueueUrl=cfn_stack.outputs["EventsQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        names += [json.loads(m["Body"])["detail"]["humanLoopName"] for m in got.get("Messages", [])]
        assert names == ["ours"]


async def test_ledger_table_key_schema_and_index(cfn_stack: Stack, moto_url: str) -> None:
    async with client("dynamodb", moto_url) as ddb_any:
        ddb = cast("DynamoDBClient", ddb_any)
        table = (await ddb.describe_table(TableName=cfn_stack.outputs["LedgerTableName"]))["Table"]
        assert table["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        assert indexes["by_loop"]["KeySchema"] == [
            {"AttributeName": "loop_name", "KeyType": "HASH"}
        ]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


async def test_the_dynamodb_ledger_accepts_the_stack_table(cfn_stack: Stack, moto_url: str) -> None:
    async with client("dynamodb", moto_url) as ddb_any:
        ddb = cast("DynamoDBClient", ddb_any)
        ledger = DynamoDbLedger(cfn_stack.outputs["LedgerTableName"], ddb)
        await ledger.open()  # raises ConfigError on a wrong key schema or missing index
        received = datetime.now(UTC)
        claim = await ledger.claim("req-1", "fp-1", route=None, received_at=received)
        assert claim.outcome is ClaimOutcome.NEW
        again = await ledger.claim("req-1", "fp-1", route=None, received_at=received)
        assert again.outcome is ClaimOutcome.EXISTING
        await ledger.close()
