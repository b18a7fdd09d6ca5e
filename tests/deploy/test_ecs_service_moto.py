"""On moto's CloudFormation and ECS: stack updates leave the task count to the autoscaler.

Application Auto Scaling sets the service's desired count by calling ECS UpdateService. A
template that also sets ``DesiredCount`` re-applies it on every stack update, scaling the
service back (the bug this guards against). The test plays the autoscaler with a real
UpdateService call against moto, then updates the stack the way a release does (a new
image, plus a change to the service's own properties: moto re-applies a resource only
when its own JSON or a parameter it names changes, not when a resource it references
does), and reads the count back. The same steps on a copy of the template that fixes
``DesiredCount: !Ref MinTasks`` reset the count, which shows the test can fail.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from .cfn import load_template
from .moto_stack import (
    ACCOUNT,
    REGION,
    as_parameters,
    client,
    moto_variant,
    stack_parameters,
    wait_for_stack,
)

if TYPE_CHECKING:
    from types_aiobotocore_cloudformation import CloudFormationClient

SCALED_TO = 4


async def _release_after_scaling(moto_url: str, stack: str, template: dict[str, Any]) -> Any:
    """Create the stack, scale the service to SCALED_TO, release a new image; the service."""
    parameters = await stack_parameters(moto_url)
    body = moto_variant(template)
    async with (
        client("cloudformation", moto_url) as cfn_any,
        client("ecs", moto_url) as ecs,  # no ECS stubs installed: Any
    ):
        cfn = cast("CloudFormationClient", cfn_any)
        await cfn.create_stack(
            StackName=stack,
            TemplateBody=body,
            Parameters=as_parameters(parameters),
            Capabilities=["CAPABILITY_IAM"],
        )
        assert (await wait_for_stack(cfn, stack))["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in (await _described(cfn, stack))}
        cluster, service = outputs["ClusterName"], outputs["ServiceName"]
        (created,) = (await ecs.describe_services(cluster=cluster, services=[service]))["services"]
        first = await ecs.describe_task_definition(taskDefinition=created["taskDefinition"])
        # What Application Auto Scaling does when the backlog grows.
        await ecs.update_service(cluster=cluster, service=service, desiredCount=SCALED_TO)
        released = {
            **parameters,
            "ContainerImage": parameters["ContainerImage"] + "-next",
            "AssignPublicIp": "ENABLED",
        }
        await cfn.update_stack(
            StackName=stack,
            TemplateBody=body,
            Parameters=as_parameters(released),
            Capabilities=["CAPABILITY_IAM"],
        )
        assert (await wait_for_stack(cfn, stack))["StackStatus"] == "UPDATE_COMPLETE"
        (described,) = (await ecs.describe_services(cluster=cluster, services=[service]))[
            "services"
        ]
    # The created revision (moto 5.2.5 stores an updated revision's container definitions
    # with CloudFormation's PascalCase keys, so the first one is the one to read).
    return described, first["taskDefinition"]


async def _described(cfn: CloudFormationClient, stack: str) -> Any:
    (described,) = (await cfn.describe_stacks(StackName=stack))["Stacks"]
    return described.get("Outputs", [])


def _with_fixed_desired_count() -> dict[str, Any]:
    template = copy.deepcopy(load_template())
    template["Resources"]["Service"]["Properties"]["DesiredCount"] = {"Ref": "MinTasks"}
    return template


@pytest.fixture(scope="module")
def released(moto_url: str) -> tuple[Any, Any]:
    service, first = anyio.run(_release_after_scaling, moto_url, "a2i-scaling", load_template())
    return service, first


def test_a_stack_update_keeps_the_autoscalers_count(released: tuple[Any, Any]) -> None:
    service, first = released
    assert service["desiredCount"] == SCALED_TO
    # The update did reach the service: it runs the new image's task definition revision.
    assert service["taskDefinition"] != first["taskDefinitionArn"]
    assert service["taskDefinition"].startswith(first["taskDefinitionArn"].rsplit(":", 1)[0])


def test_a_fixed_desired_count_would_reset_it(moto_url: str) -> None:
    service, _ = anyio.run(
        _release_after_scaling, moto_url, "a2i-fixed-count", _with_fixed_desired_count()
    )
    assert service["desiredCount"] == 1, "MinTasks: the bug the template must not have"


def test_the_task_runs_the_worker_and_the_collector_on_the_health_port(
    released: tuple[Any, Any],
) -> None:
    _, task_definition = released
    containers = {c["name"]: c for c in task_definition["containerDefinitions"]}
    assert set(containers) == {"a2i-worker", "metrics-collector"}
    worker = containers["a2i-worker"]
    env = {e["name"]: e["value"] for e in worker["environment"]}
    assert env["A2I_WORKER_HEALTH_PORT"] == "9100"
    assert [p["containerPort"] for p in worker["portMappings"]] == [9100]
    assert worker["healthCheck"]["command"] == ["CMD", "python", "-m", "a2i_worker.probe", "livez"]
    assert worker["image"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/a2i-worker:test"
    collector = containers["metrics-collector"]
    assert collector["essential"] is False
    (config,) = collector["environment"]
    assert '"127.0.0.1:9100"' in config["value"]
    assert "/ecs/a2i-scaling/metrics" in config["value"]
