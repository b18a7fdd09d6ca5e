"""moto's CloudFormation over HTTP: the template variant it can create, and its clients.

moto 5.2.5 has no CloudFormation model for three resource types of the template, so the
stacks are created from a variant without them (and without anything that references
them); see test_cloudformation_moto.py for why each is safe to leave out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aioboto3

from .cfn import load_template, without_resource_types

if TYPE_CHECKING:
    from types_aiobotocore_cloudformation import CloudFormationClient

__all__ = [
    "ACCOUNT",
    "FLOW_ARNS",
    "LEFT_OUT",
    "REGION",
    "STACK",
    "UNSUPPORTED_BY_MOTO",
    "as_parameters",
    "client",
    "moto_variant",
    "stack_parameters",
    "wait_for_stack",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "a2i-deploy-test"
FLOW_ARNS = [
    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/invoices",
    f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:flow-definition/receipts",
]
UNSUPPORTED_BY_MOTO = {
    "AWS::SQS::QueuePolicy",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
}
LEFT_OUT = ["BacklogPerTaskScalingPolicy", "EventsQueuePolicy", "ScalableTarget"]


@asynccontextmanager
async def client(service: str, moto_url: str) -> AsyncIterator[Any]:
    session = aioboto3.Session()
    async with session.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as c:
        yield c


def moto_variant(template: dict[str, Any] | None = None) -> str:
    """The template without the resource types moto lacks, as a TemplateBody."""
    variant, removed = without_resource_types(template or load_template(), UNSUPPORTED_BY_MOTO)
    assert removed == LEFT_OUT
    return json.dumps(variant)


async def stack_parameters(moto_url: str, **overrides: str) -> dict[str, str]:
    async with client("ec2", moto_url) as ec2:  # no EC2 stubs installed: Any
        vpcs = (await ec2.describe_vpcs())["Vpcs"]
        vpc_id = next(v["VpcId"] for v in vpcs if v.get("IsDefault"))
        subnets = await ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
        subnet_ids = [s["SubnetId"] for s in subnets["Subnets"]][:2]
        groups = await ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["prometheus"]}]
        )
        if groups["SecurityGroups"]:
            scraper = groups["SecurityGroups"][0]["GroupId"]
        else:
            made = await ec2.create_security_group(
                GroupName="prometheus", Description="a Prometheus server", VpcId=vpc_id
            )
            scraper = made["GroupId"]
    return {
        "VpcId": vpc_id,
        "SubnetIds": ",".join(subnet_ids),
        "ContainerImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/a2i-worker:test",
        "FlowDefinitionArns": ",".join(FLOW_ARNS),
        "OutputBucketName": "review-output",
        "OutputPrefix": "a2i/",
        "AllowDeleteFinishedLoops": "true",
        "MetricsScraperSecurityGroupId": scraper,
        "HealthPort": "9100",
        **overrides,
    }


async def wait_for_stack(cfn: CloudFormationClient, name: str) -> Any:
    deadline = time.monotonic() + 30
    while True:
        (described,) = (await cfn.describe_stacks(StackName=name))["Stacks"]
        if not described["StackStatus"].endswith("IN_PROGRESS"):
            return described
        assert time.monotonic() < deadline, described["StackStatus"]
        await asyncio.sleep(0.05)  # polling a condition, not synchronizing


def as_parameters(values: dict[str, str]) -> Any:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
