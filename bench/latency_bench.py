"""Issue 8 (latency): receive → StartHumanLoop acknowledged at a steady request rate.

A producer in this driver enqueues ``--rate`` requests/s (batches of five, on a fixed
schedule, each carrying its send time in ``metadata``) for ``--seconds``; one worker
process consumes them with no throttling in the emulator; fast reviewers finish every
loop. Three views of the latency, from three clocks on the same machine:

- the worker's histogram ``a2i_worker_receive_to_start_seconds`` (p50/p99 interpolated
  within buckets, and the exact share ≤ 50 ms, a bucket edge);
- from the results: emulator's loop CreationTime - worker's receive time;
- end to end: emulator's loop CreationTime - producer's send time (includes SQS).

Judged as well by counts (``benchlib.verify``): every request one result, one loop each.

    .venv/bin/python bench/latency_bench.py                 # 200/s for 30 s
    .venv/bin/python bench/latency_bench.py --rate 100 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from a2i_emulator.control import EmulatorControl
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.stack import LocalStack
from benchlib import (
    FAST_REVIEWERS,
    ResultsCollector,
    Workload,
    driver_clients,
    histogram_from_metrics,
    iso_seconds,
    percentile,
    queue_depth,
    start_worker,
    stop_worker,
    verify,
    worker_environ,
    write_json,
)

__all__ = ["run_latency"]


async def _send(aws: Any, url: str, entries: list[Any]) -> None:
    await aws.sqs.send_message_batch(QueueUrl=url, Entries=entries)


async def _produce(aws: Any, url: str, workload: Workload, rate: float, batch: int) -> float:
    """Send ``workload`` at ``rate``/s in batches on a fixed schedule; returns the lag."""
    confidences = workload.confidences()
    t0 = time.monotonic()
    worst_lag = 0.0
    async with anyio.create_task_group() as tg:
        for k, first in enumerate(range(0, workload.n, batch)):
            due = t0 + k * batch / rate
            delay = due - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            else:
                worst_lag = max(worst_lag, -delay)
            now = time.time()
            entries: list[Any] = [
                {"Id": str(j), "MessageBody": workload.body(i, confidences[i], sent_at=now)}
                for j, i in enumerate(range(first, min(first + batch, workload.n)))
            ]
            tg.start_soon(_send, aws, url, entries)
    return worst_lag


async def run_latency(
    a2i_url: str, env: StackEndpoints, workdir: Path, *, rate: float, seconds: float
) -> dict[str, Any]:
    workload = Workload(int(rate * seconds), tag="lat", seed=5)
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, FAST_REVIEWERS)
        async with driver_clients(env) as aws:
            environ = worker_environ(env, workdir, workload, receive_wait_seconds=20)
            worker = await start_worker(environ, workdir / "worker.log")
            try:
                s0 = worker.stats()
                collector = ResultsCollector(aws, env.results_queue_url, workload.n)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: collector.run(seconds + 120))
                    lag = await _produce(aws, env.requests_queue_url, workload, rate, 5)
                s1 = worker.stats()
                metrics = await worker.metrics_text()
                await collector.settle(1.0)
                left = await queue_depth(aws, env.requests_queue_url)
                counters = await control.counters()
            finally:
                await stop_worker(worker)
    verdict = verify(workload, collector, counters, requests_left=left)
    hist = histogram_from_metrics(metrics, "a2i_worker_receive_to_start_seconds")
    r2c: list[float] = []
    s2c: list[float] = []
    for res in collector.by_result.values():
        created = iso_seconds(res["timings"].get("loop_created_at"))
        received = iso_seconds(res["timings"].get("received_at"))
        if created is None or received is None:
            continue
        r2c.append(created - received)
        s2c.append(created - float(res["metadata"]["sent_at"]))
    return {
        "ok": verdict.ok,
        "problems": verdict.problems,
        **verdict.facts,
        "rate": rate,
        "seconds": seconds,
        "producer_worst_lag_ms": round(1000 * lag, 1),
        "worker_cpu_seconds": round(s1.cpu_seconds - s0.cpu_seconds, 2),
        "worker_cpu_share_of_one_core": round((s1.cpu_seconds - s0.cpu_seconds) / seconds, 2),
        "worker_peak_rss_mib": round(s1.peak_rss_bytes / 2**20, 1),
        "hist_count": hist.count,
        "hist_p50_ms": round(1000 * hist.quantile(0.5), 1),
        "hist_p99_ms": round(1000 * hist.quantile(0.99), 1),
        "hist_share_le_50ms": round(hist.fraction_le(0.05), 4),
        "receive_to_created_p50_ms": round(1000 * percentile(r2c, 0.5), 1),
        "receive_to_created_p99_ms": round(1000 * percentile(r2c, 0.99), 1),
        "send_to_created_p50_ms": round(1000 * percentile(s2c, 0.5), 1),
        "send_to_created_p99_ms": round(1000 * percentile(s2c, 0.99), 1),
    }


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    env = await stack.provision("lat")
    workdir = Path(tempfile.mkdtemp(prefix="a2i-worker-latency-"))
    out = await run_latency(stack.a2i_url, env, workdir, rate=args.rate, seconds=args.seconds)
    keys = [
        "requests",
        "activated",
        "distinct_results",
        "emulator_loops_total",
        "emulator_max_starts_per_name",
        "producer_worst_lag_ms",
        "worker_cpu_share_of_one_core",
        "hist_count",
        "hist_p50_ms",
        "hist_p99_ms",
        "hist_share_le_50ms",
        "receive_to_created_p50_ms",
        "receive_to_created_p99_ms",
        "send_to_created_p50_ms",
        "send_to_created_p99_ms",
    ]
    w = max(map(len, keys))
    for k in keys:
        print(f"{k:{w}}  {out[k]}")
    print("verdict:", "ok" if out["ok"] else "FAIL", *out["problems"])
    print(f"p99 receive->start <= 50 ms: {out['hist_share_le_50ms'] >= 0.99}")
    path = write_json(args.output, out)
    print(f"written {path}; worker log in {workdir}")
    print(json.dumps({"hist_p99_ms": out["hist_p99_ms"]}))
    return 0 if out["ok"] else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--output", default="latency_bench")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
