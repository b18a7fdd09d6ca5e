"""Faults that stand for decisions of A2I or of the account, not for outages:

- ``operations.<Op>.error_code``: what ``error_rate`` answers (a refusal such as
  AccessDeniedException instead of the internal error), checked against the model;
- ``outputs.missing``: a loop completes and names an output.json that was never written.
"""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from a2i_emulator import ControlAPIError, EmulatorControl
from a2i_emulator.faults import FaultConfig
from a2i_emulator.model import ALL_OPERATIONS

from ._support import CREDS, make_flow, unique

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient
    from types_aiobotocore_sagemaker_a2i_runtime.type_defs import HumanLoopInputTypeDef

INPUT: HumanLoopInputTypeDef = {"InputContent": json.dumps({"confidence": 0.4})}


def test_error_code_and_missing_outputs_merge_and_decide() -> None:
    faults = FaultConfig().merged(
        {
            "operations": {
                "StartHumanLoop": {"error_rate": 1.0, "error_code": "AccessDeniedException"}
            },
            "outputs": {"missing": 1.0},
        },
        ALL_OPERATIONS,
    )
    start = faults.for_operation("StartHumanLoop")
    assert start.error_code == "AccessDeniedException"
    assert start.decide(random.Random(1)).status == 500  # error_rate hit: error_code answers
    assert faults.outputs.skip_write(random.Random(1))
    shown = faults.to_json(ALL_OPERATIONS)
    assert shown["operations"]["StartHumanLoop"]["error_code"] == "AccessDeniedException"
    assert shown["outputs"] == {"missing": 1.0}
    # A later patch keeps what it does not name; null goes back to the internal error.
    later = faults.merged({"operations": {"StartHumanLoop": {"error_rate": 0.5}}}, ALL_OPERATIONS)
    assert later.for_operation("StartHumanLoop").error_code == "AccessDeniedException"
    assert later.outputs.missing == 1.0
    reset = later.merged({"operations": {"StartHumanLoop": {"error_code": None}}}, ALL_OPERATIONS)
    assert reset.for_operation("StartHumanLoop").error_code is None
    assert not FaultConfig().outputs.skip_write(random.Random(1))
    with pytest.raises(ValueError, match="error_code"):
        faults.merged({"operations": {"StartHumanLoop": {"error_code": 3}}}, ALL_OPERATIONS)
    with pytest.raises(ValueError, match="probability"):
        faults.merged({"outputs": {"missing": 2}}, ALL_OPERATIONS)
    with pytest.raises(ValueError, match=r"faults\.outputs"):
        faults.merged({"outputs": {"skip": 1}}, ALL_OPERATIONS)


async def test_injected_access_denied_and_validation_refusals(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    await control.put_faults(
        {
            "operations": {
                "StartHumanLoop": {"error_rate": 1.0, "error_code": "AccessDeniedException"}
            }
        }
    )
    with pytest.raises(ClientError) as denied:
        await a2i.start_human_loop(
            HumanLoopName="denied", FlowDefinitionArn=flow_arn, HumanLoopInput=INPUT
        )
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    await control.put_faults(
        {"operations": {"StartHumanLoop": {"error_code": "ValidationException"}}}
    )
    with pytest.raises(a2i.exceptions.ValidationException):
        await a2i.start_human_loop(
            HumanLoopName="invalid", FlowDefinitionArn=flow_arn, HumanLoopInput=INPUT
        )
    counters = await control.counters()
    start = counters["operations"]["StartHumanLoop"]
    assert (start["calls"], start["injected_errors"], start["accepted"]) == (2, 2, 0)
    assert counters["loops_total"] == 0, "a refused start makes no loop"


async def test_an_error_the_operation_cannot_answer_is_refused(control: EmulatorControl) -> None:
    with pytest.raises(ControlAPIError) as info:
        await control.put_faults(
            {"operations": {"StopHumanLoop": {"error_rate": 1, "error_code": "ConflictException"}}}
        )
    assert info.value.status == 400
    assert "StopHumanLoop cannot answer ConflictException" in info.value.reason
    faults = await control.get_faults()
    assert faults["operations"]["StopHumanLoop"]["error_rate"] == 0, "nothing applied"


async def test_missing_output_completes_the_loop_without_writing_it(
    a2i: AugmentedAIRuntimeClient,
    control: EmulatorControl,
    sagemaker: SageMakerClient,
    moto_url: str,
    aws_session: Any,
) -> None:
    async with aws_session.client("s3", endpoint_url=moto_url, **CREDS) as s3:
        bucket, name = unique("out"), unique("flow")
        await s3.create_bucket(Bucket=bucket)
        arn = await make_flow(sagemaker, control, name, f"s3://{bucket}/out", {"mode": "manual"})
        await control.put_faults({"outputs": {"missing": 1.0}})
        await a2i.start_human_loop(
            HumanLoopName="gone", FlowDefinitionArn=arn, HumanLoopInput=INPUT
        )
        done = await control.finish("gone", "Completed")
        assert done["HumanLoopStatus"] == "Completed"
        uri = done["HumanLoopOutput"]["OutputS3Uri"]
        key = uri.removeprefix(f"s3://{bucket}/")
        with pytest.raises(ClientError) as info:
            await s3.head_object(Bucket=bucket, Key=key)
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        # Without the fault the next loop's output is written as usual.
        await control.put_faults({"outputs": {"missing": 0}})
        await a2i.start_human_loop(
            HumanLoopName="kept", FlowDefinitionArn=arn, HumanLoopInput=INPUT
        )
        kept = await control.finish("kept", "Completed")
        kept_key = kept["HumanLoopOutput"]["OutputS3Uri"].removeprefix(f"s3://{bucket}/")
        await s3.head_object(Bucket=bucket, Key=kept_key)
    counters = await control.counters()
    assert (counters["outputs_skipped"], counters["outputs_written"]) == (1, 1)
    assert counters["loops_by_status"]["Completed"] == 2
