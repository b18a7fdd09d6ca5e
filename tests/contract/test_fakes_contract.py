"""The fakes (tests/fakes) against the real thing: one scenario, two backends, one answer.

Every scenario is a function of a :class:`Side` (clients + how to provoke what only a
test can provoke) that returns what a caller can observe: response keys, values, error
codes and statuses. It runs on the fake and on the real part (moto server for SQS and
S3, the project's A2I emulator, the SQLite ledger), and both answers must be equal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.ledger.protocol import Ledger, LoopUpdate, Phase, StartPayload
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.local.endpoints import StackEndpoints
from fakes import FakeA2IRuntime, FakeS3, FakeSqs, ManualClock, MemoryLedger


@dataclass
class Side:
    sqs: Any
    s3: Any
    a2i: Any
    flow: str
    bucket: str
    finish: Callable[[str], Awaitable[None]]  # a reviewer completes the loop
    quota: Callable[[int | None], Awaitable[None]]  # the open-loop cap
    throttle_starts: Callable[[], Awaitable[None]]  # the next start is throttled


async def _error(call: Awaitable[Any]) -> tuple[str, int]:
    try:
        await call
    except ClientError as exc:
        return (
            str(exc.response["Error"]["Code"]),
            int(exc.response["ResponseMetadata"]["HTTPStatusCode"]),
        )
    raise AssertionError("expected an error answer")


# -- scenarios ----------------------------------------------------------------------


async def sqs_send_receive_delete(side: Side) -> dict[str, Any]:
    name = f"c-{uuid.uuid4().hex[:8]}"
    url = (await side.sqs.create_queue(QueueName=name))["QueueUrl"]
    sent = await side.sqs.send_message(QueueUrl=url, MessageBody="hello")

    async def recv() -> dict[str, Any]:
        resp: dict[str, Any] = await side.sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
        )
        return resp

    first = (await recv())["Messages"][0]
    second = (await recv())["Messages"][0]
    await side.sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=600
    )
    hidden = await side.sqs.receive_message(QueueUrl=url)
    await side.sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])
    batch = await side.sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "b", "MessageBody": "y"}],
    )
    got = (await side.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10))["Messages"]
    deleted = await side.sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
    )
    bad = await side.sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=[{"Id": "z", "ReceiptHandle": "nope", "VisibilityTimeout": 0}]
    )
    return {
        "sent_keys": sorted(k for k in sent if k != "ResponseMetadata"),
        "message_keys": sorted(k for k in first if k != "MessageAttributes"),
        "same_id": first["MessageId"] == sent["MessageId"] == second["MessageId"],
        "counts": [
            first["Attributes"]["ApproximateReceiveCount"],
            second["Attributes"]["ApproximateReceiveCount"],
        ],
        "sent_timestamp": first["Attributes"]["SentTimestamp"].isdigit(),
        "hidden": hidden.get("Messages", []),
        "batch": sorted(e["Id"] for e in batch["Successful"]),
        "bodies": sorted(m["Body"] for m in got),
        "deleted": len(deleted["Successful"]),
        "bad_batch": [(f["Id"], f["Code"]) for f in bad.get("Failed", [])],
        "no_queue": await _error(side.sqs.send_message(QueueUrl=url + "-nope", MessageBody="x")),
    }


async def sqs_redrive_after_max_receives(side: Side) -> dict[str, Any]:
    name = f"c-{uuid.uuid4().hex[:8]}"
    dlq = (await side.sqs.create_queue(QueueName=name + "-dlq"))["QueueUrl"]
    arn = (await side.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 2})
    url = (await side.sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy}))[
        "QueueUrl"
    ]
    sent = await side.sqs.send_message(QueueUrl=url, MessageBody="poison")
    counts = []
    for _ in range(3):
        resp = await side.sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
        )
        counts.append(
            [m["Attributes"]["ApproximateReceiveCount"] for m in resp.get("Messages", [])]
        )
    moved = (await side.sqs.receive_message(QueueUrl=dlq)).get("Messages", [])
    attrs = await side.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    return {
        "counts": counts,
        "moved": [(m["Body"], m["MessageId"] == sent["MessageId"]) for m in moved],
        "policy": json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"],
    }


async def s3_objects_and_errors(side: Side) -> dict[str, Any]:
    key = f"c/{uuid.uuid4().hex}.json"
    await side.s3.put_object(Bucket=side.bucket, Key=key, Body=b'{"a": 1}')
    obj = await side.s3.get_object(Bucket=side.bucket, Key=key)
    async with obj["Body"] as stream:
        data = await stream.read()
    head = await side.s3.head_object(Bucket=side.bucket, Key=key)
    return {
        "data": data,
        "length": [obj["ContentLength"], head["ContentLength"]],
        "missing": await _error(side.s3.get_object(Bucket=side.bucket, Key=key + "x")),
        "missing_head": await _error(side.s3.head_object(Bucket=side.bucket, Key=key + "x")),
        "no_bucket": await _error(side.s3.get_object(Bucket=f"nb-{uuid.uuid4().hex[:8]}", Key="k")),
    }


def _loop(name: str) -> str:
    return f"c-{name}-{uuid.uuid4().hex[:8]}"


async def a2i_start_describe_stop_delete(side: Side) -> dict[str, Any]:
    a2i, name = side.a2i, _loop("one")
    start = {"HumanLoopName": name, "FlowDefinitionArn": side.flow}
    first = await a2i.start_human_loop(**start, HumanLoopInput={"InputContent": '{"x": 1}'})
    again = await a2i.start_human_loop(**start, HumanLoopInput={"InputContent": '{"x": 1}'})
    desc = await a2i.describe_human_loop(HumanLoopName=name)
    conflict = await _error(a2i.start_human_loop(**start, HumanLoopInput={"InputContent": "{}"}))
    busy = await _error(a2i.delete_human_loop(HumanLoopName=name))
    await a2i.stop_human_loop(HumanLoopName=name)
    stopping = (await a2i.describe_human_loop(HumanLoopName=name))["HumanLoopStatus"]
    other = _loop("two")
    await a2i.start_human_loop(
        HumanLoopName=other,
        FlowDefinitionArn=side.flow,
        HumanLoopInput={"InputContent": '{"y": 2}'},
    )
    await side.finish(other)
    done = await a2i.describe_human_loop(HumanLoopName=other)
    out = await side.s3.get_object(
        Bucket=done["HumanLoopOutput"]["OutputS3Uri"].removeprefix("s3://").split("/", 1)[0],
        Key=done["HumanLoopOutput"]["OutputS3Uri"].removeprefix("s3://").split("/", 1)[1],
    )
    async with out["Body"] as stream:
        doc = json.loads(await stream.read())
    reuse = await _error(
        a2i.start_human_loop(
            HumanLoopName=other,
            FlowDefinitionArn=side.flow,
            HumanLoopInput={"InputContent": '{"y": 2}'},
        )
    )
    listed = await a2i.list_human_loops(
        FlowDefinitionArn=side.flow,
        SortOrder="Ascending",
        CreationTimeAfter=desc["CreationTime"] - timedelta(seconds=1),
    )
    await a2i.delete_human_loop(HumanLoopName=other)
    return {
        "start_keys": sorted(k for k in first if k != "ResponseMetadata"),
        "idempotent": first["HumanLoopArn"] == again["HumanLoopArn"] == desc["HumanLoopArn"],
        "describe_keys": sorted(k for k in desc if k != "ResponseMetadata"),
        "status": desc["HumanLoopStatus"],
        "aware_time": desc["CreationTime"].tzinfo is not None,
        "conflict": conflict,
        "busy_delete": busy,
        "stopping": stopping,
        "done": (done["HumanLoopStatus"], sorted(k for k in done if k != "ResponseMetadata")),
        "output": (
            doc["humanLoopName"] == other,
            sorted(doc),
            isinstance(doc["humanAnswers"], list),
        ),
        "name_reused": reuse,
        "listed": [
            (s["HumanLoopName"] == n, s["HumanLoopStatus"], sorted(s))
            for s, n in zip(listed["HumanLoopSummaries"], [name, other], strict=False)
        ],
        "deleted": await _error(a2i.describe_human_loop(HumanLoopName=other)),
        "unknown": await _error(a2i.stop_human_loop(HumanLoopName=_loop("none"))),
        "no_flow": await _error(
            a2i.start_human_loop(
                HumanLoopName=_loop("nf"),
                FlowDefinitionArn=side.flow + "-missing",
                HumanLoopInput={"InputContent": "{}"},
            )
        ),
    }


async def a2i_quota_and_throttling(side: Side) -> dict[str, Any]:
    a2i = side.a2i

    def start(name: str) -> Awaitable[Any]:
        call: Awaitable[Any] = a2i.start_human_loop(
            HumanLoopName=name, FlowDefinitionArn=side.flow, HumanLoopInput={"InputContent": "{}"}
        )
        return call

    await side.quota(1)
    await start(_loop("q1"))
    over = await _error(start(_loop("q2")))
    await side.quota(None)
    await side.throttle_starts()
    throttled = await _error(start(_loop("t1")))
    return {"quota": over, "throttled": throttled}


async def ledger_walk(ledger: Ledger, clock: ManualClock) -> list[Any]:
    """A request's whole life through the protocol; every answer, as values."""
    now = clock()
    flow = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"
    out: list[Any] = [await ledger.claim("r", "fp", route="main", received_at=now)]
    out.append(await ledger.claim("r", "other", route="main", received_at=now))
    out.append(
        await ledger.mark_starting(
            "r",
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name="l1",
            decision={"activated": True},
            context={"request_id": "r"},
            payload=StartPayload(flow, '{"a": 1}'),
            next_check_at=now + timedelta(seconds=90),
        )
    )
    clock.advance(1)
    out.append(await ledger.request_cancel("r"))
    out.append(
        await ledger.mark_open(
            "r", loop_name="l1", loop_arn="arn", loop_created_at=now, next_check_at=now
        )
    )
    out.append(await ledger.open_loops_by_flow())
    out.append(await ledger.due_for_check(clock() + timedelta(hours=1), 10))
    out.append(await ledger.note_try("r", clock() + timedelta(seconds=30)))
    out.append(await ledger.apply_loop_update(LoopUpdate("l1", "Stopping", clock())))
    out.append(await ledger.apply_loop_update(LoopUpdate("l1", "InProgress", clock())))
    clock.advance(5)
    out.append(await ledger.apply_loop_update(LoopUpdate("l1", "Stopped", clock())))
    out.append(await ledger.get_by_loop("l1"))
    out.append(
        await ledger.store_result(
            "r", expected=[Phase.OPEN], result={"outcome": "stopped"}, result_id="x"
        )
    )
    out.append(
        await ledger.store_result(
            "r", expected=[Phase.OPEN], result={"outcome": "y"}, result_id="y"
        )
    )
    out.append(await ledger.unpublished(10))
    out.append(await ledger.mark_published_many([("r", "x"), ("r", "x")]))
    out.append(await ledger.mark_dlq_copied("r"))
    out.append(await ledger.count_by_phase())
    out.append(await ledger.get("r"))
    return out


# -- the two sides -----------------------------------------------------------------

SCENARIOS = [
    sqs_send_receive_delete,
    sqs_redrive_after_max_receives,
    s3_objects_and_errors,
    a2i_start_describe_stop_delete,
    a2i_quota_and_throttling,
]


def _fake_side() -> Side:
    clock = ManualClock()
    s3 = FakeS3()
    s3.buckets["outputs"] = {}
    a2i = FakeA2IRuntime(clock, s3=s3)
    flow = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/contract"
    a2i.add_flow(flow, "outputs", "a2i")

    async def finish(name: str) -> None:
        a2i.finish(name, "Completed")

    async def quota(cap: int | None) -> None:
        a2i.max_in_progress = cap

    async def throttle() -> None:
        a2i.answer_next("StartHumanLoop", "ThrottlingException")

    return Side(FakeSqs(clock), s3, a2i, flow, "outputs", finish, quota, throttle)


def _real_side(aws: AwsClients, env: StackEndpoints, emulator: EmulatorControl) -> Side:
    async def finish(name: str) -> None:
        await emulator.finish(name, "Completed")

    async def quota(cap: int | None) -> None:
        await emulator.put_quotas({"max_in_progress": cap})

    async def throttle() -> None:
        await emulator.put_quotas({"rates": {"StartHumanLoop": {"rate": 0.001, "burst": 1}}})
        # spend the one token: the next start is throttled
        await aws.a2i.start_human_loop(
            HumanLoopName=_loop("spend"),
            FlowDefinitionArn=env.flow_definition_arn,
            HumanLoopInput={"InputContent": "{}"},
        )

    return Side(
        aws.sqs,
        aws.s3,
        aws.a2i,
        env.flow_definition_arn,
        env.output_bucket,
        finish,
        quota,
        throttle,
    )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
async def test_fake_answers_as_the_real_thing(
    scenario: Callable[[Side], Awaitable[dict[str, Any]]],
    aws: AwsClients,
    env: StackEndpoints,
    emulator: EmulatorControl,
) -> None:
    await emulator.put_reviewers({"mode": "manual", "stop_delay": 600})
    real = await scenario(_real_side(aws, env, emulator))
    fake = await scenario(_fake_side())
    assert fake == real


async def test_memory_ledger_answers_as_the_sqlite_ledger(tmp_path: Path) -> None:
    sql_clock, mem_clock = ManualClock(), ManualClock()
    sqlite = SqliteLedger(tmp_path / "l.db", clock=sql_clock)
    await sqlite.open()
    try:
        real = await ledger_walk(sqlite, sql_clock)
    finally:
        await sqlite.close()
    fake = await ledger_walk(MemoryLedger(clock=mem_clock), mem_clock)
    assert fake == real
