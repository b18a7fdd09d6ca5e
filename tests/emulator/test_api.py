"""The five operations over HTTP with an unmodified aioboto3 client: answers, errors, semantics."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import botocore.model
import botocore.parsers
import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from a2i_emulator import EmulatorControl
from a2i_emulator.validation import _check_constraints, _collect_patterns, operation_spec

from ._support import eventually, make_flow

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker import SageMakerClient
    from types_aiobotocore_sagemaker_a2i_runtime import AugmentedAIRuntimeClient

INPUT = {"InputContent": json.dumps({"document": "s3://in/1.pdf", "confidence": 0.4})}


async def _start(a2i: AugmentedAIRuntimeClient, flow_arn: str, name: str, **kw: Any) -> str:
    resp = await a2i.start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=flow_arn, HumanLoopInput=kw.pop("inp", INPUT), **kw
    )
    return resp["HumanLoopArn"]


async def test_start_describe_stop_delete(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    arn = await _start(a2i, flow_arn, "loop-1")
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:human-loop/loop-1"
    loop = await a2i.describe_human_loop(HumanLoopName="loop-1")
    assert loop["HumanLoopStatus"] == "InProgress"
    assert loop["FlowDefinitionArn"] == flow_arn
    assert isinstance(loop["CreationTime"], dt.datetime)
    assert "HumanLoopOutput" not in loop
    age = dt.datetime.now(dt.UTC) - loop["CreationTime"]
    assert dt.timedelta(0) <= age < dt.timedelta(seconds=10)
    with pytest.raises(a2i.exceptions.ValidationException, match="stop it"):
        await a2i.delete_human_loop(HumanLoopName="loop-1")
    await control.put_flow_reviewers("manual-flow", {"stop_delay": 0.05})
    await a2i.stop_human_loop(HumanLoopName="loop-1")
    assert (await a2i.describe_human_loop(HumanLoopName="loop-1"))["HumanLoopStatus"] == "Stopping"
    await a2i.stop_human_loop(HumanLoopName="loop-1")  # idempotent while Stopping
    await eventually(
        lambda: a2i.describe_human_loop(HumanLoopName="loop-1"),
        lambda d: d["HumanLoopStatus"] == "Stopped",
    )
    await a2i.stop_human_loop(HumanLoopName="loop-1")  # terminal: no-op, status kept
    assert (await a2i.describe_human_loop(HumanLoopName="loop-1"))["HumanLoopStatus"] == "Stopped"
    await a2i.delete_human_loop(HumanLoopName="loop-1")
    for call in (a2i.describe_human_loop, a2i.delete_human_loop, a2i.stop_human_loop):
        with pytest.raises(a2i.exceptions.ResourceNotFoundException):
            await call(HumanLoopName="loop-1")
    with pytest.raises(a2i.exceptions.ValidationException, match="cannot be reused"):
        await _start(a2i, flow_arn, "loop-1")
    counters = await control.counters()
    assert counters["operations"]["DeleteHumanLoop"]["validation_errors"] == 1
    assert counters["operations"]["DescribeHumanLoop"]["not_found"] == 1
    assert counters["loops_deleted"] == 1
    assert counters["max_starts_per_name"] == 1


async def test_same_name_idempotent_or_conflict(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    arn = await _start(a2i, flow_arn, "dup")
    assert await _start(a2i, flow_arn, "dup") == arn
    other = {"InputContent": json.dumps({"document": "s3://in/2.pdf"})}
    with pytest.raises(a2i.exceptions.ConflictException) as info:
        await _start(a2i, flow_arn, "dup", inp=other)
    assert info.value.response["Error"]["Code"] == "ConflictException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    with pytest.raises(a2i.exceptions.ConflictException):
        await _start(
            a2i, flow_arn, "dup", DataAttributes={"ContentClassifiers": ["FreeOfAdultContent"]}
        )
    await control.finish("dup", "Completed")
    with pytest.raises(a2i.exceptions.ValidationException):
        await _start(a2i, flow_arn, "dup")  # finished: even identical input is refused
    counters = await control.counters(detail=True)
    start = counters["operations"]["StartHumanLoop"]
    assert start["accepted"] == 2
    assert start["conflicts"] == 2
    assert start["validation_errors"] == 1
    assert start["idempotent_repeats"] == 1
    assert counters["idempotent_repeats"] == 1
    assert counters["starts_per_name"] == {"dup": 1}
    assert counters["names_started_more_than_once"] == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"HumanLoopName": "Bad_Name"}, "pattern"),
        ({"HumanLoopName": "x" * 64}, "length"),
        (
            {"FlowDefinitionArn": "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nope"},
            "does not exist",
        ),
        ({"HumanLoopInput": {"InputContent": "not json"}}, "JSON"),
        ({"HumanLoopInput": {"InputContent": "x" * 3_145_729}}, "length"),
    ],
)
async def test_start_validation_errors(
    a2i: AugmentedAIRuntimeClient, flow_arn: str, kwargs: dict[str, Any], fragment: str
) -> None:
    params: dict[str, Any] = {
        "HumanLoopName": "ok",
        "FlowDefinitionArn": flow_arn,
        "HumanLoopInput": INPUT,
        **kwargs,
    }
    # botocore validates min lengths client-side; these reach the server.
    with pytest.raises(a2i.exceptions.ValidationException, match=fragment) as info:
        await a2i.start_human_loop(**params)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


async def test_list_filters_sort_and_paging(
    a2i: AugmentedAIRuntimeClient,
    sagemaker: SageMakerClient,
    control: EmulatorControl,
    flow_arn: str,
) -> None:
    other = await make_flow(sagemaker, control, "other", "s3://b/o", {"mode": "manual"})
    names = [f"l-{i:02d}" for i in range(12)]
    for name in names:
        await _start(a2i, flow_arn, name)
    await _start(a2i, other, "elsewhere")
    seen: list[str] = []
    kwargs: dict[str, Any] = {
        "FlowDefinitionArn": flow_arn,
        "SortOrder": "Ascending",
        "MaxResults": 5,
    }
    pages = 0
    while True:
        page = await a2i.list_human_loops(**kwargs)
        pages += 1
        seen += [s["HumanLoopName"] for s in page["HumanLoopSummaries"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == names
    assert pages == 3
    desc = await a2i.list_human_loops(FlowDefinitionArn=flow_arn)
    assert [s["HumanLoopName"] for s in desc["HumanLoopSummaries"]] == names[::-1]
    summary = desc["HumanLoopSummaries"][0]
    assert summary["HumanLoopStatus"] == "InProgress"
    assert summary["FlowDefinitionArn"] == flow_arn
    created = [s["CreationTime"] for s in desc["HumanLoopSummaries"]]
    pivot = created[5]
    after = await a2i.list_human_loops(FlowDefinitionArn=flow_arn, CreationTimeAfter=pivot)
    assert all(s["CreationTime"] >= pivot for s in after["HumanLoopSummaries"])
    before = await a2i.list_human_loops(
        FlowDefinitionArn=flow_arn, CreationTimeBefore=pivot - dt.timedelta(days=1)
    )
    assert before["HumanLoopSummaries"] == []
    paginator = a2i.get_paginator("list_human_loops")
    total = 0
    async for page in paginator.paginate(
        FlowDefinitionArn=flow_arn, PaginationConfig={"PageSize": 4}
    ):
        total += len(page["HumanLoopSummaries"])
    assert total == 12
    with pytest.raises(a2i.exceptions.ValidationException, match="NextToken"):
        await a2i.list_human_loops(FlowDefinitionArn=flow_arn, NextToken="garbage")
    with pytest.raises(a2i.exceptions.ValidationException):
        await a2i.list_human_loops(FlowDefinitionArn=flow_arn, MaxResults=101)
    with pytest.raises(a2i.exceptions.ResourceNotFoundException):
        await a2i.list_human_loops(
            FlowDefinitionArn="arn:aws:sagemaker:us-east-1:123456789012:flow-definition/none"
        )


async def test_throttling_and_step_changes(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    await control.put_quotas({"rates": {"DescribeHumanLoop": {"rate": 0.001, "burst": 2}}})
    await _start(a2i, flow_arn, "t")
    await a2i.describe_human_loop(HumanLoopName="t")
    await a2i.describe_human_loop(HumanLoopName="t")
    with pytest.raises(a2i.exceptions.ThrottlingException) as info:
        await a2i.describe_human_loop(HumanLoopName="t")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    await _start(a2i, flow_arn, "t2")  # other operations keep their own bucket
    quotas = await control.put_quotas({"rates": {"DescribeHumanLoop": {"rate": 1000, "burst": 5}}})
    assert quotas["rates"]["DescribeHumanLoop"] == {"rate": 1000.0, "burst": 5}

    # In force at once: tokens refill at 1000/s from the change on (no free burst).
    async def describe_ok() -> bool:
        try:
            await a2i.describe_human_loop(HumanLoopName="t")
        except a2i.exceptions.ThrottlingException:
            return False
        return True

    await eventually(describe_ok, bool, within=1.0, every=0.005)
    await control.put_quotas({"rates": {"DescribeHumanLoop": None}})
    for _ in range(20):
        await a2i.describe_human_loop(HumanLoopName="t")
    counters = await control.counters()
    assert counters["operations"]["DescribeHumanLoop"]["throttled"] >= 1
    assert "DescribeHumanLoop" not in counters["rate_tokens"]  # unlimited again


async def test_counters_report_the_rate_buckets_tokens(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    counters = await control.counters()
    assert counters["rate_tokens"] == {}
    await control.put_quotas({"rates": {"StartHumanLoop": {"rate": 0.001, "burst": 3}}})
    await _start(a2i, flow_arn, "tok-1")
    counters = await control.counters()
    assert counters["rate_tokens"]["StartHumanLoop"] == pytest.approx(2.0, abs=0.01)


async def test_concurrency_quota(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    await control.put_quotas({"max_in_progress": 2})
    await _start(a2i, flow_arn, "q1")
    await _start(a2i, flow_arn, "q2")
    with pytest.raises(a2i.exceptions.ServiceQuotaExceededException) as info:
        await _start(a2i, flow_arn, "q3")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert await _start(a2i, flow_arn, "q1")  # an idempotent repeat creates nothing: allowed
    await control.finish("q1", "Expired")
    await _start(a2i, flow_arn, "q3")  # a loop finished: room again
    await control.put_quotas({"max_in_progress": 3})
    await _start(a2i, flow_arn, "q4")
    counters = await control.counters()
    assert counters["operations"]["StartHumanLoop"]["quota_rejected"] == 1
    assert counters["loops_by_status"]["InProgress"] == 3
    failed = await a2i.describe_human_loop(HumanLoopName="q1")
    assert failed["HumanLoopStatus"] == "Failed"
    assert failed["FailureCode"] == "Expired"


async def test_injected_faults(
    a2i: AugmentedAIRuntimeClient, control: EmulatorControl, flow_arn: str
) -> None:
    await control.put_faults({"operations": {"DescribeHumanLoop": {"error_rate": 1.0}}})
    with pytest.raises(a2i.exceptions.InternalServerException) as info:
        await a2i.describe_human_loop(HumanLoopName="any")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    await control.put_faults(
        {"operations": {"DescribeHumanLoop": {"error_rate": 0, "unavailable_rate": 1.0}}}
    )
    with pytest.raises(ClientError) as bare:
        await a2i.describe_human_loop(HumanLoopName="any")
    assert bare.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    await control.put_faults(
        {"operations": {"DescribeHumanLoop": None, "StartHumanLoop": {"latency_ms": [150, 150]}}}
    )
    loop = asyncio_loop()
    t0 = loop.time()
    await _start(a2i, flow_arn, "slow")
    assert loop.time() - t0 >= 0.15
    with pytest.raises(a2i.exceptions.ResourceNotFoundException):
        await a2i.describe_human_loop(HumanLoopName="any")
    counters = await control.counters()
    assert counters["operations"]["DescribeHumanLoop"]["injected_errors"] == 2
    assert counters["operations"]["DescribeHumanLoop"]["calls"] == 3


def asyncio_loop() -> Any:
    import asyncio

    return asyncio.get_running_loop()


async def test_auto_reviewers_finish_loops(
    a2i: AugmentedAIRuntimeClient, sagemaker: SageMakerClient, control: EmulatorControl
) -> None:
    arn = await make_flow(
        sagemaker,
        control,
        "auto",
        "s3://unused/out",
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.01, "high": 0.05},
            "outcomes": {"Expired": 1, "InternalError": 1},
        },
    )
    for i in range(10):
        await _start(a2i, arn, f"auto-{i}")
    counters = await eventually(
        control.counters, lambda c: c["loops_by_status"]["Failed"] == 10, within=5
    )
    assert counters["scheduled"] == 0
    codes = {
        (await a2i.describe_human_loop(HumanLoopName=f"auto-{i}"))["FailureCode"] for i in range(10)
    }
    assert codes == {"Expired", "InternalError"}


# -- every answer parses into the model's output shape ------------------------------------------


def _check_output(
    operation: str, status: int, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    model = operation_spec(operation)
    output_shape = model.output_shape
    assert output_shape is not None
    parser = botocore.parsers.create_parser("rest-json")
    parsed = parser.parse({"status_code": status, "headers": headers, "body": body}, output_shape)
    parsed.pop("ResponseMetadata")
    assert isinstance(parsed, dict)
    raw = json.loads(body) if body else {}
    assert set(raw) <= set(output_shape.members), "members outside the output shape"
    report = ParamValidator().validate(parsed, output_shape)
    assert not report.has_errors(), report.generate_report()
    patterns: dict[str, Any] = {}
    _collect_patterns(output_shape, patterns, set())
    _check_constraints(parsed, output_shape, "", patterns)
    _check_required(parsed, output_shape)
    return parsed


def _check_required(value: Any, shape: botocore.model.Shape) -> None:
    if isinstance(shape, botocore.model.StructureShape):
        for name in shape.required_members:
            assert name in value, f"required member {name} missing"
        for key, item in value.items():
            _check_required(item, shape.members[key])
    elif isinstance(shape, botocore.model.ListShape):
        for item in value:
            _check_required(item, shape.member)


async def test_answers_parse_into_output_shapes(
    url: str, control: EmulatorControl, flow_arn: str, a2i: AugmentedAIRuntimeClient
) -> None:
    await _start(a2i, flow_arn, "shape-a")
    await _start(a2i, flow_arn, "shape-b")
    await control.finish("shape-b", "InternalError")
    async with aiohttp.ClientSession() as http:

        async def call(operation: str, method: str, path: str, **kw: Any) -> dict[str, Any]:
            async with http.request(method, url + path, **kw) as resp:
                assert resp.status == 200, await resp.text()
                return _check_output(operation, resp.status, dict(resp.headers), await resp.read())

        started = await call(
            "StartHumanLoop",
            "POST",
            "/human-loops",
            json={
                "HumanLoopName": "shape-c",
                "FlowDefinitionArn": flow_arn,
                "HumanLoopInput": INPUT,
            },
        )
        assert started["HumanLoopArn"].endswith("/shape-c")
        for name in ("shape-a", "shape-b"):
            described = await call("DescribeHumanLoop", "GET", f"/human-loops/{name}")
            assert isinstance(described["CreationTime"], dt.datetime)
        listed = await call(
            "ListHumanLoops",
            "GET",
            "/human-loops",
            params={"FlowDefinitionArn": flow_arn, "MaxResults": "2"},
        )
        assert len(listed["HumanLoopSummaries"]) == 2
        assert "NextToken" in listed
        assert (
            await call(
                "StopHumanLoop", "POST", "/human-loops/stop", json={"HumanLoopName": "shape-a"}
            )
            == {}
        )
        assert await call("DeleteHumanLoop", "DELETE", "/human-loops/shape-b") == {}
        async with http.get(url + "/human-loops/shape-b") as resp:
            assert resp.status == 404
            assert resp.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
            assert "Message" in await resp.json()
