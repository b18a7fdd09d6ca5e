"""Throughput and memory of the A2I emulator: StartHumanLoop calls/s accepted, RSS at N loops.

Run by hand: ``.venv/bin/python bench/emulator_throughput.py [--total 100000] [--procs 3]``.
Starts ``a2i-emulator serve`` in its own process on an ephemeral 127.0.0.1 port, drives
StartHumanLoop from ``--procs`` client processes (raw aiohttp by default, or aioboto3 with
``--client aioboto3``), bounded by ``--total`` calls and ``--max-seconds``, then judges by the
emulator's own counters and its RSS. Prints a table, writes bench/results/emulator_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "emulator_throughput.json"


def _http(url: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _drive_raw(
    url: str, flow_arn: str, worker: int, count: int, concurrency: int, deadline: float
) -> dict[str, int]:
    import aiohttp

    stats = {"ok": 0, "errors": 0}
    names = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    content = json.dumps({"document": "s3://bench/in.pdf", "confidence": 0.42})
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one_lane() -> None:
            for i in names:
                if time.time() > deadline:
                    return
                body = {
                    "HumanLoopName": f"b-{worker}-{i}",
                    "FlowDefinitionArn": flow_arn,
                    "HumanLoopInput": {"InputContent": content},
                }
                async with http.post(f"{url}/human-loops", json=body) as resp:
                    await resp.read()
                    stats["ok" if resp.status == 200 else "errors"] += 1

        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    return stats


async def _drive_boto(
    url: str, flow_arn: str, worker: int, count: int, concurrency: int, deadline: float
) -> dict[str, int]:
    import aioboto3
    from botocore.config import Config

    stats = {"ok": 0, "errors": 0}
    names = iter(range(count))
    content = json.dumps({"document": "s3://bench/in.pdf", "confidence": 0.42})
    cfg = Config(retries={"total_max_attempts": 1}, max_pool_connections=concurrency)
    async with aioboto3.Session().client(
        "sagemaker-a2i-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=cfg,
    ) as a2i:

        async def one_lane() -> None:
            for i in names:
                if time.time() > deadline:
                    return
                try:
                    await a2i.start_human_loop(
                        HumanLoopName=f"b-{worker}-{i}",
                        FlowDefinitionArn=flow_arn,
                        HumanLoopInput={"InputContent": content},
                    )
                    stats["ok"] += 1
                except Exception:
                    stats["errors"] += 1

        await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    return stats


def _client_process(args: tuple[str, str, str, int, int, int, float, Any]) -> None:
    client, url, flow_arn, worker, count, concurrency, deadline, queue = args
    drive = _drive_raw if client == "raw" else _drive_boto
    stats = asyncio.run(drive(url, flow_arn, worker, count, concurrency, deadline))
    queue.put(stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--total", type=int, default=100_000, help="StartHumanLoop calls in all")
    parser.add_argument("--procs", type=int, default=3, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="in-flight calls per process")
    parser.add_argument("--client", choices=["raw", "aioboto3"], default="raw")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "a2i_emulator.cli",
            "serve",
            "--port",
            "0",
            "--seed",
            "1",
            "--flow",
            "bench=manual",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        rss_idle = _rss_mib(server.pid)
        # `serve --flow bench=manual` created it, Active and with manual reviewers
        flow_arn = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/bench"
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        per_proc = args.total // args.procs
        t0 = time.time()
        deadline = t0 + args.max_seconds
        procs = [
            ctx.Process(
                target=_client_process,
                args=(
                    (args.client, url, flow_arn, w, per_proc, args.concurrency, deadline, queue),
                ),
            )
            for w in range(args.procs)
        ]
        for p in procs:
            p.start()
        # Judge by the emulator's counters: rate over the busy window (after clients warm up).
        samples: list[tuple[float, int]] = []
        while any(p.is_alive() for p in procs):
            counters = _http(f"{url}/_emulator/counters")
            samples.append((time.time(), counters["operations"]["StartHumanLoop"]["accepted"]))
            time.sleep(0.5)
        client_stats = [queue.get(timeout=10) for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.time() - t0
        counters = _http(f"{url}/_emulator/counters")
        rss_loaded = _rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    start = counters["operations"]["StartHumanLoop"]
    busy = [(t, n) for t, n in samples if 0 < n < start["accepted"]]
    if len(busy) >= 2:
        steady_rate = (busy[-1][1] - busy[0][1]) / (busy[-1][0] - busy[0][0])
    else:
        steady_rate = start["accepted"] / elapsed
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": mp.cpu_count(), "python": platform.python_version()},
        "params": {
            "total": args.total,
            "procs": args.procs,
            "concurrency_per_proc": args.concurrency,
            "client": args.client,
        },
        "start_calls": start["calls"],
        "start_accepted": start["accepted"],
        "start_errors_seen_by_clients": sum(s["errors"] for s in client_stats),
        "elapsed_s": round(elapsed, 2),
        "accepted_per_s_overall": round(start["accepted"] / elapsed, 1),
        "accepted_per_s_steady": round(steady_rate, 1),
        "loops_in_memory": counters["loops_total"],
        "loops_in_progress": counters["loops_by_status"]["InProgress"],
        "max_starts_per_name": counters["max_starts_per_name"],
        "rss_mib_idle": round(rss_idle, 1),
        "rss_mib_loaded": round(rss_loaded, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
