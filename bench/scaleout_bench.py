"""Issue 8 (scale-out): 1, 2 and 3 worker processes sharing SQS and a DynamoDB ledger.

For each replica count: a fresh stack environment and a fresh ledger table in moto's
DynamoDB (``a2i_worker.ledger.dynamodb.create_table``), a backlog of ``--n`` requests
(about half activated), ``k`` worker processes started together, results drained
until every request has one. Judged by the emulator (one loop per activated request,
no name started twice) and the results queue (one result per request); throughput is
requests / wall time from the first worker ready to the last result. CPU of each
worker and of the moto process come from /proc, to show what saturates.

    .venv/bin/python bench/scaleout_bench.py                   # 3,000 requests, k = 1, 2, 3
    .venv/bin/python bench/scaleout_bench.py --n 500 --replicas 1 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from a2i_emulator.control import EmulatorControl
from a2i_worker.ledger.dynamodb_table import create_table
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.processes import proc_stats
from a2i_worker.local.stack import LocalStack, MotoSubprocess
from benchlib import (
    FAST_REVIEWERS,
    ResultsCollector,
    Workload,
    driver_clients,
    enqueue,
    queue_depth,
    start_worker,
    stop_worker,
    verify,
    worker_environ,
    write_json,
)

__all__ = ["run_replicas"]


async def run_replicas(
    stack: LocalStack, env: StackEndpoints, workdir: Path, *, n: int, k: int
) -> dict[str, Any]:
    workload = Workload(n, tag=f"so{k}", seed=13)
    table = f"ledger-{env.flow_definition_name}"
    moto = stack.moto_server
    moto_pid = moto.pid if isinstance(moto, MotoSubprocess) else os.getpid()
    async with EmulatorControl(stack.a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, FAST_REVIEWERS)
        async with driver_clients(env) as aws:
            await create_table(aws.dynamodb, table)
            await enqueue(aws, env, workload.bodies())
            workers = []
            try:
                for i in range(k):
                    wdir = workdir / f"w{i}"
                    wdir.mkdir(parents=True, exist_ok=True)
                    environ = worker_environ(env, wdir, workload, ledger_url=f"dynamodb://{table}")
                    workers.append(await start_worker(environ, wdir / "worker.log", f"w{i}"))
                before = [w.stats() for w in workers]
                moto0 = proc_stats(moto_pid) if moto_pid else None
                t0 = time.monotonic()
                collector = ResultsCollector(aws, env.results_queue_url, n)
                await collector.run(600)
                wall = (collector.last_at or time.monotonic()) - t0
                after = [w.stats() for w in workers]
                moto1 = proc_stats(moto_pid) if moto_pid else None
                await collector.settle(1.0)
                left = await queue_depth(aws, env.requests_queue_url)
                counters = await control.counters()
            finally:
                for w in workers:
                    await stop_worker(w)
    verdict = verify(workload, collector, counters, requests_left=left)
    cpu = [round(a.cpu_seconds - b.cpu_seconds, 2) for a, b in zip(after, before, strict=True)]
    moto_cpu = round(moto1.cpu_seconds - moto0.cpu_seconds, 2) if moto0 and moto1 else None
    return {
        "ok": verdict.ok,
        "problems": verdict.problems,
        **verdict.facts,
        "replicas": k,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(n / wall, 1),
        "worker_cpu_seconds": cpu,
        "worker_cpu_ms_per_request": round(1000 * sum(cpu) / n, 2),
        "workers_cpu_cores_busy": round(sum(cpu) / wall, 2),
        "moto_cpu_seconds": moto_cpu,
        "moto_cpu_cores_busy": round(moto_cpu / wall, 2) if moto_cpu is not None else None,
        "worker_peak_rss_mib": [round(a.peak_rss_bytes / 2**20, 1) for a in after],
    }


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    root = Path(tempfile.mkdtemp(prefix="a2i-worker-scaleout-"))
    rows = []
    for k in args.replicas:
        env = await stack.provision(f"so{k}")
        rows.append(await run_replicas(stack, env, root / f"k{k}", n=args.n, k=k))
    cols = [
        ("replicas", "replicas"),
        ("req/s", "requests_per_second"),
        ("wall s", "wall_seconds"),
        ("loops", "emulator_loops_total"),
        ("results", "distinct_results"),
        ("max starts/name", "emulator_max_starts_per_name"),
        ("worker CPU ms/req", "worker_cpu_ms_per_request"),
        ("workers cores busy", "workers_cpu_cores_busy"),
        ("moto cores busy", "moto_cpu_cores_busy"),
    ]
    print(" | ".join(c for c, _ in cols) + " | verdict")
    for r in rows:
        print(" | ".join(str(r[k]) for _, k in cols) + " | " + ("ok" if r["ok"] else "FAIL"))
        for p in r["problems"]:
            print("PROBLEM:", p)
    path = write_json(args.output, {"n": args.n, "rows": rows})
    print(f"written {path}; worker logs in {root}")
    return 0 if all(r["ok"] for r in rows) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", default="scaleout_bench")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
