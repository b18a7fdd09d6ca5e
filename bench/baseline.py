"""The floor for the worker's CPU per request: the same AWS calls and nothing else.

Same aioboto3 clients as the worker (``a2i_worker.aws.AwsClients``), same calls per
request: ReceiveMessage (10), StartHumanLoop per activated message, DeleteMessageBatch,
ReceiveMessage on the events queue, GetObject output.json, SendMessageBatch of results,
DeleteMessageBatch of events. No ledger, no rules engine, no pydantic, no logs, no
metrics, no retries beyond botocore's. It is not a worker (a crash loses work); it
only measures what the calls themselves cost on this machine.

Run by ``worker_bench.py`` as its own process, with the environment of one stack
environment (``StackEndpoints.env()``); prints one JSON line with its CPU seconds
(``time.process_time``, from the first receive to the last result sent) and peak RSS.

    .venv/bin/python bench/baseline.py --n 10000 --threshold 0.5 --flow-arn ARN
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from typing import Any

import anyio

from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ

__all__ = ["main", "run_baseline"]


async def run_baseline(
    n: int,
    threshold: float,
    flow_arn: str,
    *,
    receivers: int = 8,
    within: float = 600.0,
    starts_only: bool = False,
) -> dict[str, Any]:
    """``starts_only``: receive, StartHumanLoop, delete; done when ``n`` requests were
    handled (latency_bench's bare start path: no events, outputs or results)."""
    environ = dict(os.environ)
    requests_url = environ["A2I_WORKER_REQUESTS_QUEUE_URL"]
    events_url = environ["A2I_WORKER_EVENTS_QUEUE_URL"]
    results_url = environ["A2I_WORKER_RESULTS_QUEUE_URL"]
    settings = AwsClientSettings(endpoint_urls=endpoints_from_environ(environ))
    sent = 0
    handled = 0
    pending: list[str] = []
    wake = anyio.Event()
    done = anyio.Event()
    async with AwsClients(settings, environ=environ) as aws:
        sqs, a2i, s3 = aws.sqs, aws.a2i, aws.s3
        cpu0 = time.process_time()
        t0 = time.monotonic()

        def emit(body: dict[str, Any]) -> None:
            nonlocal wake
            pending.append(json.dumps(body, separators=(",", ":")))
            wake.set()

        async def start(msg: Any) -> None:
            req = json.loads(msg["Body"])
            if req["input"]["confidence"] < threshold:
                await a2i.start_human_loop(
                    HumanLoopName=req["request_id"],
                    FlowDefinitionArn=flow_arn,
                    HumanLoopInput={"InputContent": json.dumps(req["input"])},
                )
            else:
                emit(
                    {
                        "result_id": "r-" + req["request_id"],
                        "request_id": req["request_id"],
                        "outcome": "not_activated",
                    }
                )

        async def requests_loop() -> None:
            nonlocal handled
            while not done.is_set():
                resp = await sqs.receive_message(
                    QueueUrl=requests_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                msgs = resp.get("Messages", [])
                if not msgs:
                    continue
                async with anyio.create_task_group() as tg:
                    for m in msgs:
                        tg.start_soon(start, m)
                await sqs.delete_message_batch(
                    QueueUrl=requests_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(msgs)
                    ],
                )
                handled += len(msgs)
                if starts_only and handled >= n:
                    done.set()

        async def finish(msg: Any) -> None:
            detail = json.loads(msg["Body"])["detail"]
            uri = detail["humanLoopOutput"]["outputS3Uri"]
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            obj = await s3.get_object(Bucket=bucket, Key=key)
            async with obj["Body"] as stream:
                doc = json.loads(await stream.read())
            name = detail["humanLoopName"]
            emit(
                {
                    "result_id": "r-" + name,
                    "request_id": name,
                    "outcome": "completed",
                    "human_answers": doc.get("humanAnswers", []),
                    # what reconcile_bench times: loop created -> result produced
                    "produced_at": datetime.now(UTC).isoformat(),
                    "timings": {"loop_created_at": detail.get("creationTime")},
                }
            )

        async def events_loop() -> None:
            while not done.is_set():
                resp = await sqs.receive_message(
                    QueueUrl=events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                )
                msgs = resp.get("Messages", [])
                if not msgs:
                    continue
                async with anyio.create_task_group() as tg:
                    for m in msgs:
                        tg.start_soon(finish, m)
                await sqs.delete_message_batch(
                    QueueUrl=events_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(msgs)
                    ],
                )

        async def send(chunk: list[str]) -> None:
            nonlocal sent
            await sqs.send_message_batch(
                QueueUrl=results_url,
                Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)],
            )
            sent += len(chunk)
            if sent >= n:
                done.set()

        async def results_loop() -> None:
            nonlocal wake
            while not done.is_set():
                await wake.wait()
                wake = anyio.Event()
                await anyio.sleep(0.02)  # linger, as the worker's outbox does
                batch, pending[:] = pending[:], []
                async with anyio.create_task_group() as tg:
                    for i in range(0, len(batch), 10):
                        tg.start_soon(send, batch[i : i + 10])

        with anyio.move_on_after(within):
            async with anyio.create_task_group() as tg:
                for _ in range(receivers):
                    tg.start_soon(requests_loop)
                if not starts_only:
                    for _ in range(max(1, receivers // 2)):
                        tg.start_soon(events_loop)
                    tg.start_soon(results_loop)
                await done.wait()
                tg.cancel_scope.cancel()
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
    return {
        "sent": sent,
        "handled": handled,
        "cpu_seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--flow-arn", required=True)
    parser.add_argument("--receivers", type=int, default=8)
    parser.add_argument("--within", type=float, default=600.0)
    parser.add_argument("--starts-only", action="store_true", help="the start path alone")
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop (asyncio: what a minimal script uses; the floor of issue 8)",
    )
    args = parser.parse_args()
    report = anyio.run(
        lambda: run_baseline(
            args.n,
            args.threshold,
            args.flow_arn,
            receivers=args.receivers,
            within=args.within,
            starts_only=args.starts_only,
        ),
        backend_options={"use_uvloop": args.loop == "uvloop"},
    )
    report["loop"] = args.loop
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
