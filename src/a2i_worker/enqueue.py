"""``a2i-worker enqueue``: JSONL lines → the requests queue, ten per SendMessageBatch.

Lines are sent as they are (the worker validates and rejects with reasons); blank
lines are skipped. Failed entries are retried a few times (``backoff.SQS_SEND``) and
then counted, never silently dropped: the command exits non-zero when any line was not
accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from a2i_worker.aws import AwsClients, AwsClientSettings
from a2i_worker.backoff import SQS_SEND, Backoff
from a2i_worker.classify import classify

if TYPE_CHECKING:
    from types_aiobotocore_sqs.client import SQSClient

__all__ = ["enqueue_lines", "send_batches"]

_MAX_BODY = 262_144


async def send_batches(
    sqs: SQSClient,
    queue_url: str,
    bodies: Iterable[str],
    *,
    concurrency: int = 8,
    on_sent: Any = None,
) -> dict[str, Any]:
    """Send ``bodies`` in batches of ten with bounded concurrency; returns counts.

    A call that raises a retryable error, or the entries SQS did not accept, are retried
    under :data:`a2i_worker.backoff.SQS_SEND`; pass a client with botocore retries off
    (:attr:`AwsClients.sqs_no_retries`) so that the two do not stack.
    """
    report: dict[str, Any] = {"sent": 0, "failed": 0, "too_large": 0, "last_error": None}
    sem = anyio.Semaphore(concurrency)

    async def send(batch: list[str]) -> None:
        async with sem:
            pending = list(enumerate(batch))
            backoff = Backoff(SQS_SEND)
            while True:
                entries: list[Any] = [{"Id": str(i), "MessageBody": b} for i, b in pending]
                try:
                    resp = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                except Exception as exc:
                    c = classify(exc)
                    report["last_error"] = c.code
                    if c.retryable and await backoff.retry():
                        continue
                    break
                failed = {f["Id"] for f in resp.get("Failed", [])}
                ok = len(pending) - len(failed)
                report["sent"] += ok
                if on_sent:
                    on_sent(ok)
                pending = [(i, b) for i, b in pending if str(i) in failed]
                if not pending or not await backoff.retry():
                    break
            report["failed"] += len(pending)

    async with anyio.create_task_group() as tg:
        batch: list[str] = []
        for body in bodies:
            if len(body.encode("utf-8")) > _MAX_BODY:
                report["too_large"] += 1
                report["failed"] += 1
                continue
            batch.append(body)
            if len(batch) == 10:
                tg.start_soon(send, batch)
                batch = []
        if batch:
            tg.start_soon(send, batch)
    return report


async def enqueue_lines(stream: TextIO, queue_url: str) -> dict[str, Any]:
    lines = [line.rstrip("\n") for line in stream]
    bodies = [line for line in lines if line.strip()]
    async with AwsClients(AwsClientSettings(), services=("sqs",)) as aws:
        with Progress(
            TextColumn("enqueue"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        ) as progress:
            task = progress.add_task("enqueue", total=len(bodies))
            report = await send_batches(
                aws.sqs_no_retries, queue_url, bodies, on_sent=lambda n: progress.advance(task, n)
            )
    report["blank_lines"] = len(lines) - len(bodies)
    return report
