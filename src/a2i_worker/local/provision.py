"""Create one isolated environment (queues, bucket, rule, flow definition) on the local stack.

Every name carries the environment prefix, and the EventBridge rule also filters on
this environment's ``detail.flowDefinitionArn``, so many environments can live on one
stack without seeing each other's messages or events. The flow definition is created the
AWS way, with SageMaker's CreateHumanTaskUi/CreateFlowDefinition on the emulator, and is
Active when this returns.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aioboto3
import structlog

from a2i_emulator.aws_setup import create_flow_definition as _create_flow
from a2i_worker.aws import AwsClients, AwsClientSettings, ServiceName
from a2i_worker.local.endpoints import (
    StackEndpoints,
    a2i_event_pattern,
    gt_event_pattern,
    validate_prefix,
)

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_sqs import SQSClient

__all__ = ["create_flow_definition", "provision_dynamodb_ledger", "provision_environment"]

log = structlog.get_logger(__name__)


_sessions: dict[str, Any] = {}


def _session(region: str) -> Any:
    """One session per region with moto's dummy credentials; reused so that botocore's
    loader parses each service model once per process, not once per environment."""
    session = _sessions.get(region)
    if session is None:
        session = aioboto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            region_name=region,
        )
        _sessions[region] = session
    return session


async def create_flow_definition(
    sagemaker_url: str, name: str, output_s3_uri: str, *, region: str, account_id: str
) -> str:
    """Create an Active flow definition (and its task UI) through SageMaker's API at
    ``sagemaker_url`` (the emulator on the local stack); return its ARN."""
    async with _session(region).client("sagemaker", endpoint_url=sagemaker_url) as sagemaker:
        return await _create_flow(
            sagemaker, name, output_s3_uri, account_id=account_id, region=region
        )


async def _queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]  # type: ignore[arg-type]
    attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return url, attrs["Attributes"]["QueueArn"]


def _redrive(dlq_arn: str, max_receive_count: int) -> str:
    return json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})


def _events_queue_policy(queue_arn: str, rule_arns: list[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowEventBridgeRules",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arns}},
                }
            ],
        }
    )


async def provision_environment(
    *,
    moto_url: str,
    a2i_url: str,
    region: str,
    account_id: str,
    prefix: str,
    max_receive_count: int = 5,
    visibility_timeout: int = 30,
    ground_truth_rule: bool = False,
    dynamodb_ledger: bool = False,
) -> StackEndpoints:
    """Create the queues, DLQs, bucket, flow definition and rule(s) of one environment.

    ``ground_truth_rule`` adds a second rule delivering Ground Truth labeling-job events
    whose job ARN starts with ``labeling-job/<prefix>`` to the same events queue.
    ``dynamodb_ledger`` creates the ledger table ``<prefix>-ledger`` (and ``env()`` then
    sets ``A2I_WORKER_LEDGER_URL=dynamodb://<prefix>-ledger``).
    """
    validate_prefix(prefix)
    settings = AwsClientSettings(
        region=region, endpoint_urls={s: moto_url for s in ("sqs", "s3", "events", "dynamodb")}
    )
    services: tuple[ServiceName, ...] = ("sqs", "s3", "events")
    if dynamodb_ledger:
        services += ("dynamodb",)
    async with AwsClients(settings, session=_session(region), services=services, environ={}) as aws:
        sqs = aws.sqs
        base = {"VisibilityTimeout": str(visibility_timeout)}
        requests_dlq_url, requests_dlq_arn = await _queue(sqs, f"{prefix}-requests-dlq", {})
        requests_url, _ = await _queue(
            sqs,
            f"{prefix}-requests",
            {**base, "RedrivePolicy": _redrive(requests_dlq_arn, max_receive_count)},
        )
        events_dlq_url, events_dlq_arn = await _queue(sqs, f"{prefix}-events-dlq", {})
        events_url, events_arn = await _queue(
            sqs,
            f"{prefix}-events",
            {**base, "RedrivePolicy": _redrive(events_dlq_arn, max_receive_count)},
        )
        results_url, _ = await _queue(sqs, f"{prefix}-results", base)

        bucket = f"{prefix}-a2i-output"
        create: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        await aws.s3.create_bucket(**create)

        flow_name = f"{prefix}-flow"
        flow_arn = await create_flow_definition(
            a2i_url, flow_name, f"s3://{bucket}/{prefix}", region=region, account_id=account_id
        )

        rules: list[tuple[str, dict[str, object]]] = [
            (f"{prefix}-a2i-status", a2i_event_pattern(flow_arn))
        ]
        gt_rule_name: str | None = None
        if ground_truth_rule:
            gt_rule_name = f"{prefix}-gt-status"
            job_prefix = f"arn:aws:sagemaker:{region}:{account_id}:labeling-job/{prefix}"
            rules.append((gt_rule_name, gt_event_pattern(job_prefix)))
        rule_arns: list[str] = []
        for name, pattern in rules:
            put = await aws.events.put_rule(
                Name=name, EventPattern=json.dumps(pattern), State="ENABLED"
            )
            rule_arns.append(put["RuleArn"])
            await aws.events.put_targets(
                Rule=name, Targets=[{"Id": "events-queue", "Arn": events_arn}]
            )
        await sqs.set_queue_attributes(
            QueueUrl=events_url, Attributes={"Policy": _events_queue_policy(events_arn, rule_arns)}
        )
        ledger_table: str | None = None
        if dynamodb_ledger:
            ledger_table = f"{prefix}-ledger"
            await provision_dynamodb_ledger(aws.dynamodb, ledger_table)

    log.info("local_environment_provisioned", prefix=prefix, flow_definition=flow_name)
    return StackEndpoints(
        region=region,
        account_id=account_id,
        moto_url=moto_url,
        a2i_url=a2i_url,
        requests_queue_url=requests_url,
        requests_dlq_url=requests_dlq_url,
        events_queue_url=events_url,
        events_dlq_url=events_dlq_url,
        results_queue_url=results_url,
        output_bucket=bucket,
        output_prefix=prefix,
        flow_definition_arn=flow_arn,
        flow_definition_name=flow_name,
        rule_name=rules[0][0],
        gt_rule_name=gt_rule_name,
        ledger_table=ledger_table,
    )


async def provision_dynamodb_ledger(dynamodb: DynamoDBClient, table: str) -> None:
    """Create the DynamoDB ledger table (idempotent) with the ledger module's own schema."""
    from a2i_worker.ledger.dynamodb_table import create_table

    await create_table(dynamodb, table)
