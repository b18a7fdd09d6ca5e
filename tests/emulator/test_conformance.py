"""The emulator against the botocore models: every operation served, every answer as sent.

- The A2I runtime model's operations are exactly the ones served; the SageMaker subset
  exists in its model; every modeled error of every served operation has the model's status.
- Raw bodies (captured before botocore parses them) are checked against the output shapes:
  only the shape's members, no ``null``, required members present, timestamps in the
  member's ``timestampFormat`` (else the protocol default), enums respected.

The real-client suites in tests/clients check the same answers through the AWS CLI and
the AWS SDK for JavaScript v3.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import botocore.model
import pytest

from a2i_emulator import EmulatorControl
from a2i_emulator.model import (
    A2I_OPERATIONS,
    A2I_RUNTIME,
    ALL_OPERATIONS,
    SAGEMAKER,
    SAGEMAKER_OPERATIONS,
    declared_errors,
    error_status,
    operation_model,
    service_model,
)
from a2i_emulator.wire import OutputShapeError, error_response, serialize_output

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient
    from types_aiobotocore_sagemaker_a2i_runtime.type_defs import HumanLoopInputTypeDef

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_every_a2i_runtime_operation_is_served() -> None:
    assert set(A2I_OPERATIONS) == set(service_model(A2I_RUNTIME).operation_names)
    assert set(SAGEMAKER_OPERATIONS) <= set(service_model(SAGEMAKER).operation_names)


@pytest.mark.parametrize("operation", ALL_OPERATIONS)
def test_every_declared_error_has_the_models_status(operation: str) -> None:
    op = operation_model(operation)
    service = op.service_model.service_name
    for shape in op.error_shapes:
        status, headers, body = error_response(service, shape.name, "why")
        assert status == shape.metadata.get("error", {}).get("httpStatusCode", 400)
        assert headers["x-amzn-ErrorType"] == shape.name
        decoded = json.loads(body)
        assert decoded["Message"] == "why"
        if op.service_model.protocol == "json":
            assert decoded["__type"] == shape.name
        assert shape.name in declared_errors(operation)
    assert error_status(A2I_RUNTIME, "ThrottlingException") == 429
    assert error_status(SAGEMAKER, "ValidationException") == 400


def test_the_serializer_refuses_what_the_model_does_not_allow() -> None:
    with pytest.raises(OutputShapeError, match="required member CreationTime"):
        serialize_output(
            "DescribeHumanLoop",
            {
                "HumanLoopStatus": "InProgress",
                "HumanLoopName": "n",
                "HumanLoopArn": "a",
                "FlowDefinitionArn": "f",
            },
        )
    with pytest.raises(OutputShapeError, match="not in the model"):
        serialize_output("StartHumanLoop", {"HumanLoopArn": "a", "Extra": 1})
    with pytest.raises(OutputShapeError, match="is not one of"):
        serialize_output(
            "DescribeHumanLoop",
            {
                "CreationTime": 0,
                "HumanLoopStatus": "Sleeping",
                "HumanLoopName": "n",
                "HumanLoopArn": "a",
                "FlowDefinitionArn": "f",
            },
        )
    # optional members given as None are absent on the wire, never null
    body = json.loads(
        serialize_output("ListHumanLoops", {"HumanLoopSummaries": [], "NextToken": None})
    )
    assert body == {"HumanLoopSummaries": []}


def _check(value: Any, shape: botocore.model.Shape, protocol: str, path: str) -> None:
    assert value is not None, f"{path}: null on the wire"
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, botocore.model.StructureShape)
        assert isinstance(value, dict), path
        assert set(value) <= set(shape.members), f"{path}: {set(value) - set(shape.members)}"
        for name in shape.required_members:
            assert name in value, f"{path}: required {name} missing"
        for name, item in value.items():
            _check(item, shape.members[name], protocol, f"{path}.{name}")
    elif kind == "list":
        assert isinstance(shape, botocore.model.ListShape)
        for i, item in enumerate(value):
            _check(item, shape.member, protocol, f"{path}[{i}]")
    elif kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat", "unixTimestamp")
        if fmt == "iso8601":
            assert isinstance(value, str), f"{path}: {value!r}"
            assert ISO_MS.match(value), f"{path}: {value!r}"
        else:
            assert isinstance(value, int | float), f"{path}: {value!r}"
    elif kind == "string":
        assert isinstance(value, str), path
        enum = shape.metadata.get("enum")
        assert not enum or value in enum, f"{path}: {value!r}"


class _Raw:
    """Raw response bodies by operation, captured before botocore parses them."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[Any]] = {}

    def __call__(self, operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict["status_code"] == 200:
            self.bodies.setdefault(operation_model.name, []).append(
                json.loads(response_dict["body"] or b"{}")
            )


async def test_raw_answers_fit_the_output_shapes(
    a2i: AugmentedAIRuntimeClient,
    sagemaker: SageMakerClient,
    control: EmulatorControl,
    flow_arn: str,
) -> None:
    raw = _Raw()
    for client in (a2i, sagemaker):
        client.meta.events.register("before-parse.*", raw)
    inp: HumanLoopInputTypeDef = {"InputContent": "{}"}
    await a2i.start_human_loop(HumanLoopName="c-1", FlowDefinitionArn=flow_arn, HumanLoopInput=inp)
    await a2i.start_human_loop(HumanLoopName="c-2", FlowDefinitionArn=flow_arn, HumanLoopInput=inp)
    await control.finish("c-2", "Expired")
    await a2i.describe_human_loop(HumanLoopName="c-1")
    await a2i.describe_human_loop(HumanLoopName="c-2")
    await a2i.list_human_loops(FlowDefinitionArn=flow_arn, MaxResults=1)
    await a2i.stop_human_loop(HumanLoopName="c-1")
    await a2i.delete_human_loop(HumanLoopName="c-2")
    await sagemaker.describe_flow_definition(FlowDefinitionName="manual-flow")
    await sagemaker.list_flow_definitions(MaxResults=1)
    await sagemaker.describe_human_task_ui(HumanTaskUiName="manual-flow-ui")
    await sagemaker.list_human_task_uis()
    assert set(raw.bodies) >= {
        "StartHumanLoop",
        "DescribeHumanLoop",
        "ListHumanLoops",
        "StopHumanLoop",
        "DeleteHumanLoop",
        "DescribeFlowDefinition",
        "ListFlowDefinitions",
        "DescribeHumanTaskUi",
        "ListHumanTaskUis",
    }
    for operation, bodies in raw.bodies.items():
        op = operation_model(operation)
        for body in bodies:
            assert op.output_shape is not None
            _check(body, op.output_shape, op.service_model.protocol, operation)
    failed = raw.bodies["DescribeHumanLoop"][1]
    assert failed["FailureCode"] == "Expired"
    assert "HumanLoopOutput" not in failed
