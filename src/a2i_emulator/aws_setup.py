"""Create flow definitions the AWS way: SageMaker's public API, through an aioboto3 client.

These helpers call only ``CreateHumanTaskUi``, ``CreateFlowDefinition`` and
``DescribeFlowDefinition``, exactly as code against real AWS would, so they work on the
emulator (``endpoint_url`` = its URL) and on an account alike. Local provisioning, the
demo, the tests and the benchmarks all create their flows with them.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient

__all__ = [
    "DEFAULT_TASK_TEMPLATE",
    "create_flow_definition",
    "ensure_human_task_ui",
    "wait_flow_definition_active",
]

DEFAULT_TASK_TEMPLATE: Final = (
    '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>\n'
    "<crowd-form><p>{{ task.input | to_json }}</p>"
    '<crowd-input name="total" label="Total"></crowd-input>'
    '<crowd-checkbox name="is_correct">The model is right</crowd-checkbox></crowd-form>\n'
)


async def ensure_human_task_ui(
    sagemaker: SageMakerClient, name: str, template: str = DEFAULT_TASK_TEMPLATE
) -> str:
    """The ARN of task UI ``name``, created with ``template`` if it does not exist yet."""
    try:
        return (await sagemaker.describe_human_task_ui(HumanTaskUiName=name))["HumanTaskUiArn"]
    except sagemaker.exceptions.ResourceNotFound:
        pass
    created = await sagemaker.create_human_task_ui(
        HumanTaskUiName=name, UiTemplate={"Content": template}
    )
    return created["HumanTaskUiArn"]


async def wait_flow_definition_active(
    sagemaker: SageMakerClient, name: str, *, within: float = 30.0, every: float = 0.05
) -> None:
    """Poll DescribeFlowDefinition until ``Active`` (``RuntimeError`` on ``Failed``)."""
    deadline = time.monotonic() + within
    while True:
        desc = await sagemaker.describe_flow_definition(FlowDefinitionName=name)
        status = desc["FlowDefinitionStatus"]
        if status == "Active":
            return
        if status == "Failed":
            raise RuntimeError(f"flow definition {name} failed: {desc.get('FailureReason')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow definition {name} still {status} after {within}s")
        await asyncio.sleep(every)


async def create_flow_definition(
    sagemaker: SageMakerClient,
    name: str,
    output_s3_uri: str,
    *,
    account_id: str,
    region: str,
    task_ui_name: str | None = None,
    role_arn: str | None = None,
    workteam_arn: str | None = None,
    wait_active: bool = True,
) -> str:
    """Create flow definition ``name`` writing to ``output_s3_uri`` (and its task UI,
    ``task_ui_name`` or ``<name>-ui``, if missing); wait until Active; return its ARN.

    An existing flow of that name with the same output path is reused (provisioning the
    same environment twice is not an error); with another output path it is ResourceInUse.
    """
    try:
        existing = await sagemaker.describe_flow_definition(FlowDefinitionName=name)
    except sagemaker.exceptions.ResourceNotFound:
        pass
    else:
        if existing["OutputConfig"]["S3OutputPath"] == output_s3_uri:
            if wait_active:
                await wait_flow_definition_active(sagemaker, name)
            return existing["FlowDefinitionArn"]
    ui_arn = await ensure_human_task_ui(sagemaker, task_ui_name or f"{name}-ui")
    created = await sagemaker.create_flow_definition(
        FlowDefinitionName=name,
        HumanLoopConfig={
            "WorkteamArn": workteam_arn
            or f"arn:aws:sagemaker:{region}:{account_id}:workteam/private-crowd/local",
            "HumanTaskUiArn": ui_arn,
            "TaskTitle": f"Review ({name})",
            "TaskDescription": "Check the model's prediction and correct it if needed.",
            "TaskCount": 1,
        },
        OutputConfig={"S3OutputPath": output_s3_uri},
        RoleArn=role_arn or f"arn:aws:iam::{account_id}:role/a2i-local",
    )
    if wait_active:
        await wait_flow_definition_active(sagemaker, name)
    return created["FlowDefinitionArn"]
