"""moto SQS over HTTP: keep-alive vs Connection: close, and the O(n) patches at backlogs.

moto runs in its own process (``python -m a2i_worker.local.moto_server``), so this
process (aioboto3, the client) is measured apart from the server. Everything binds
127.0.0.1 and every phase is bounded in count. Prints a table; writes
``bench/results/moto_sqs.json``.

    .venv/bin/python bench/moto_sqs.py            # full run (6 min at load avg 11 on 2 cores)
    .venv/bin/python bench/moto_sqs.py --quick    # smaller counts, smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aioboto3
import moto
from aiobotocore.config import AioConfig

from a2i_worker.local.stack import MotoSubprocess

RESULTS = Path(__file__).parent / "results" / "moto_sqs.json"
SESSION = aioboto3.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
)
CONFIG = AioConfig(max_pool_connections=64, retries={"total_max_attempts": 1})


def _cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc; 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _measure(
    call: Callable[[], Awaitable[Any]], total: int, parallel: int, server_pid: int
) -> dict[str, float]:
    """Wall rate, and client/server CPU per call, of ``total`` calls by ``parallel`` callers.

    CPU per call is the robust number on a shared machine: wall rates move with the load.
    """
    per_worker = total // parallel

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    server_cpu = _cpu_seconds(server_pid)
    client_cpu = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(parallel)))
    wall = time.perf_counter() - start
    n = per_worker * parallel
    return {
        "calls_per_s": n / wall,
        "client_cpu_ms_per_call": (time.process_time() - client_cpu) / n * 1000,
        "server_cpu_ms_per_call": (_cpu_seconds(server_pid) - server_cpu) / n * 1000,
    }


async def _rate(call: Callable[[], Awaitable[Any]], total: int, parallel: int) -> float:
    """Calls per second for ``total`` calls made by ``parallel`` concurrent callers."""
    per_worker = total // parallel

    async def worker() -> None:
        for _ in range(per_worker):
            await call()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(parallel)))
    return per_worker * parallel / (time.perf_counter() - start)


async def connection_modes(calls: int, rounds: int) -> list[dict[str, Any]]:
    """Both server modes, interleaved ``rounds`` times; the median of each measure."""
    samples: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    modes = (("connection-close", ("--connection-close",)), ("keep-alive", ()))
    for _, (mode, extra) in itertools.product(range(rounds), modes):
        server = MotoSubprocess(extra_args=extra)
        url = server.start()
        assert server.pid is not None
        try:
            async with SESSION.client("sqs", endpoint_url=url, config=CONFIG) as sqs:
                queue = (await sqs.create_queue(QueueName="bench-conn"))["QueueUrl"]

                async def send(sqs: Any = sqs, queue: str = queue) -> None:
                    await sqs.send_message(QueueUrl=queue, MessageBody="x" * 200)

                async def receive(sqs: Any = sqs, queue: str = queue) -> None:
                    await sqs.receive_message(
                        QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=0
                    )

                await _rate(send, 20, 1)  # warm up the connection pool and moto
                for op, call in (("SendMessage", send), ("ReceiveMessage", receive)):
                    for parallel in (1, 50):
                        sample = await _measure(call, calls, parallel, server.pid)
                        samples.setdefault((mode, op, parallel), []).append(sample)
        finally:
            server.stop()
    return [
        {
            "mode": mode,
            "op": op,
            "parallel": parallel,
            "rounds": len(runs),
            **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
        }
        for (mode, op, parallel), runs in samples.items()
    ]


async def backlog(patches: str, depth: int, cycles: int) -> dict[str, Any]:
    """Fill a queue to ``depth``, then time receive(10)/delete_batch/visibility cycles."""
    server = MotoSubprocess(extra_args=("--patches", patches))
    url = server.start()
    try:
        async with SESSION.client("sqs", endpoint_url=url, config=CONFIG) as sqs:
            queue = (await sqs.create_queue(QueueName="bench-backlog"))["QueueUrl"]
            batch = [{"Id": str(i), "MessageBody": "x" * 200} for i in range(10)]
            sent = 0
            fill_start = time.perf_counter()

            async def filler() -> None:
                nonlocal sent
                while sent < depth:
                    sent += 10
                    await sqs.send_message_batch(QueueUrl=queue, Entries=batch)

            await asyncio.gather(*(filler() for _ in range(8)))
            fill_s = time.perf_counter() - fill_start
            # Send-batch rate *at* depth (the fill rate averages over 0..depth).
            t = time.perf_counter()
            for _ in range(10):
                await sqs.send_message_batch(QueueUrl=queue, Entries=batch)
            send_at_depth_ms = (time.perf_counter() - t) / 10 * 1000

            receive_ms: list[float] = []
            delete_ms: list[float] = []
            visibility_ms: list[float] = []
            for _ in range(cycles):
                t = time.perf_counter()
                got = await sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=300
                )
                receive_ms.append((time.perf_counter() - t) * 1000)
                handles = [m["ReceiptHandle"] for m in got.get("Messages", [])]
                t = time.perf_counter()
                await sqs.change_message_visibility_batch(
                    QueueUrl=queue,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 600}
                        for i, h in enumerate(handles)
                    ],
                )
                visibility_ms.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await sqs.delete_message_batch(
                    QueueUrl=queue,
                    Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)],
                )
                delete_ms.append((time.perf_counter() - t) * 1000)
    finally:
        server.stop()
    return {
        "patches": patches,
        "depth": depth,
        "fill_send_batch_calls_per_s": depth / 10 / fill_s,
        "send_batch_ms_at_depth": send_at_depth_ms,
        "receive10_ms_median": statistics.median(receive_ms),
        "change_visibility_batch10_ms_median": statistics.median(visibility_ms),
        "delete_batch10_ms_median": statistics.median(delete_ms),
    }


def _short(patches: str) -> str:
    return "all but lazy receive" if patches.count(",") == 2 else patches


def _print(results: dict[str, Any]) -> None:
    print(f"moto {results['moto']} in a subprocess; client: aioboto3, one process")
    print(
        f"\n{'server':<18}{'op':<16}{'parallel':>9}{'calls/s':>10}"
        f"{'client ms CPU':>15}{'server ms CPU':>15}   (medians)"
    )
    for r in results["connection"]:
        print(
            f"{r['mode']:<18}{r['op']:<16}{r['parallel']:>9}{r['calls_per_s']:>10.0f}"
            f"{r['client_cpu_ms_per_call']:>15.2f}{r['server_cpu_ms_per_call']:>15.2f}"
        )
    print(
        f"\n{'patches':<24}{'depth':>7}{'fill batch/s':>13}{'send10 ms':>10}"
        f"{'recv10 ms':>10}{'vis10 ms':>9}{'del10 ms':>9}"
    )
    for r in results["backlog"]:
        print(
            f"{_short(r['patches']):<24}{r['depth']:>7}{r['fill_send_batch_calls_per_s']:>13.0f}"
            f"{r['send_batch_ms_at_depth']:>10.1f}{r['receive10_ms_median']:>10.1f}"
            f"{r['change_visibility_batch10_ms_median']:>9.1f}"
            f"{r['delete_batch10_ms_median']:>9.1f}"
        )


async def main(quick: bool) -> None:
    calls = 200 if quick else 1000
    cycles = 10 if quick else 30
    plan: list[tuple[str, int]] = [("all", 1000), ("none", 1000), ("all", 10_000)]
    if not quick:
        plan += [
            ("sqs-retention-check,sqs-send-message,sqs-delete-message", 10_000),
            ("all", 50_000),
        ]
    results: dict[str, Any] = {
        "moto": moto.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "quick": quick,
        "load_average_at_start": os.getloadavg(),
        "connection": await connection_modes(calls, 1 if quick else 3),
        "backlog": [await backlog(p, d, cycles) for p, d in plan],
    }
    _print(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
