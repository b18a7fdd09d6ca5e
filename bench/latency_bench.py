"""Issue 8 (latency): receive → StartHumanLoop acknowledged at a steady request rate.

A producer in this driver enqueues ``--rate`` requests/s (batches of five, on a fixed
schedule, each carrying its send time in ``metadata``) for ``--seconds``; one worker
process consumes them with no throttling in the emulator. With ``--reviewers manual``
(default) the loops stay open until every one has started, then reviewers submit them
all: the window measures the start path alone (no outputs, events and results competing
for the two cores); ``--reviewers fast`` finishes each loop within 0.5 s, during the
window. Three views of the latency, from three clocks on the same machine:

- the worker's histogram ``a2i_worker_receive_to_start_seconds`` (p50/p99 interpolated
  within buckets, and the exact share ≤ 50 ms, a bucket edge);
- from the results: emulator's loop CreationTime - worker's receive time;
- end to end: emulator's loop CreationTime - producer's send time (includes SQS).

Then the bare calls at the same rate (``baseline.py --starts-only``: receive,
StartHumanLoop, delete and nothing else, same producer, same clocks): the worker-added
latency is the worker's end-to-end p50/p99 minus the bare calls' (issue 19).

Judged as well by counts (``benchlib.verify``): every request one result, one loop each.

    .venv/bin/python bench/latency_bench.py                 # 200/s for 30 s
    .venv/bin/python bench/latency_bench.py --rate 100 --seconds 10
    .venv/bin/python bench/latency_bench.py --rate 50 --reviewers fast
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import A2I_SERVICE, AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.stack import LocalStack
from a2i_worker.naming import loop_name
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


async def _produce(
    aws: Any,
    url: str,
    workload: Workload,
    rate: float,
    batch: int,
    sent: dict[str, float] | None = None,
) -> float:
    """Send ``workload`` at ``rate``/s in batches on a fixed schedule; returns the lag.
    ``sent`` gets each request id's send time."""
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
            if sent is not None:
                for i in range(first, min(first + batch, workload.n)):
                    sent[workload.request_id(i)] = now
            entries: list[Any] = [
                {"Id": str(j), "MessageBody": workload.body(i, confidences[i], sent_at=now)}
                for j, i in enumerate(range(first, min(first + batch, workload.n)))
            ]
            tg.start_soon(_send, aws, url, entries)
    return worst_lag


async def _started(worker: Any, n: int, within: float) -> str:
    """Wait until the worker's histogram counts ``n`` starts; returns the metrics text."""
    deadline = time.monotonic() + within
    while True:
        text = str(await worker.metrics_text())
        hist = histogram_from_metrics(text, "a2i_worker_receive_to_start_seconds")
        if hist.count >= n or time.monotonic() > deadline:
            return text
        await anyio.sleep(0.2)


async def _finish_all(control: EmulatorControl, names: list[str]) -> None:
    """Reviewers submit every open loop now (16 at a time)."""
    limit = anyio.Semaphore(16)

    async def one(name: str) -> None:
        async with limit:
            await control.finish(name, "Completed", answers={"label": "cat"})

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(one, name)


async def run_latency(
    a2i_url: str,
    env: StackEndpoints,
    workdir: Path,
    *,
    rate: float,
    seconds: float,
    reviewers: str = "manual",
) -> dict[str, Any]:
    workload = Workload(int(rate * seconds), tag="lat", seed=5)
    manual = reviewers == "manual"
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(
            env.flow_definition_name, {"mode": "manual"} if manual else FAST_REVIEWERS
        )
        async with driver_clients(env) as aws:
            environ = worker_environ(env, workdir, workload, receive_wait_seconds=20)
            worker = await start_worker(environ, workdir / "worker.log")
            try:
                s0 = worker.stats()
                collector = ResultsCollector(aws, env.results_queue_url, workload.n)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(lambda: collector.run(seconds + 180))
                    lag = await _produce(aws, env.requests_queue_url, workload, rate, 5)
                    t_end = time.monotonic()
                    # The measured window: every activated request's loop started.
                    metrics = await _started(worker, len(workload.activated()), 60.0)
                    drain = time.monotonic() - t_end
                    s1 = worker.stats()
                    if manual:  # only now do reviewers submit (outputs, events, results)
                        await _finish_all(
                            control,
                            [
                                loop_name(env.flow_definition_arn, rid, 1)
                                for rid in sorted(workload.activated())
                            ],
                        )
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
        "reviewers": reviewers,
        "drain_after_producer_s": round(drain, 2),
        "worker_cpu_seconds": round(s1.cpu_seconds - s0.cpu_seconds, 2),
        "worker_cpu_share_of_one_core": round(
            (s1.cpu_seconds - s0.cpu_seconds) / (seconds + drain), 2
        ),
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


async def run_bare_latency(
    a2i_url: str, env: StackEndpoints, *, rate: float, seconds: float
) -> dict[str, Any]:
    """The bare start path at the same rate: ``baseline.py --starts-only`` (receive,
    StartHumanLoop, delete, nothing else) against the same producer. Send -> loop
    CreationTime, from the emulator's own ListHumanLoops."""
    workload = Workload(int(rate * seconds), tag="bare", seed=5)
    sent: dict[str, float] = {}
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, {"mode": "manual"})
        async with driver_clients(env) as aws:
            cmd = [
                sys.executable,
                str(Path(__file__).with_name("baseline.py")),
                *("--n", str(workload.n), "--threshold", str(workload.threshold)),
                *("--flow-arn", env.flow_definition_arn, "--within", str(seconds + 120)),
                *("--starts-only", "--loop", "uvloop"),
            ]
            environ = {**os.environ, **env.env()}
            async with await anyio.open_process(cmd, env=environ) as proc:
                await anyio.sleep(1.0)  # its clients are up before the first send
                await _produce(aws, env.requests_queue_url, workload, rate, 5, sent)
                await proc.wait()
        created: dict[str, float] = {}
        environ = {**env.env(), "AWS_ACCESS_KEY_ID": "latency-bench-reader"}
        async with AwsClients(
            AwsClientSettings(endpoint_urls=endpoints_from_environ(environ)),
            environ=environ,
            services=(A2I_SERVICE,),
        ) as reader:
            paginator = reader.a2i.get_paginator("list_human_loops")
            async for page in paginator.paginate(FlowDefinitionArn=env.flow_definition_arn):
                for summary in page.get("HumanLoopSummaries", []):
                    created[summary["HumanLoopName"]] = summary["CreationTime"].timestamp()
    s2c = [created[rid] - sent[rid] for rid in workload.activated() if rid in created]
    return {
        "loops": len(s2c),
        "activated": len(workload.activated()),
        "send_to_created_p50_ms": round(1000 * percentile(s2c, 0.5), 1),
        "send_to_created_p99_ms": round(1000 * percentile(s2c, 0.99), 1),
    }


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    env = await stack.provision("lat")
    workdir = Path(tempfile.mkdtemp(prefix="a2i-worker-latency-"))
    out = await run_latency(
        stack.a2i_url,
        env,
        workdir,
        rate=args.rate,
        seconds=args.seconds,
        reviewers=args.reviewers,
    )
    keys = [
        "requests",
        "activated",
        "distinct_results",
        "emulator_loops_total",
        "emulator_max_starts_per_name",
        "producer_worst_lag_ms",
        "drain_after_producer_s",
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
    if not args.no_bare:
        bare = await run_bare_latency(
            stack.a2i_url, await stack.provision("latbare"), rate=args.rate, seconds=args.seconds
        )
        out["bare"] = bare
        for q in ("p50", "p99"):
            added = out[f"send_to_created_{q}_ms"] - bare[f"send_to_created_{q}_ms"]
            out[f"worker_added_{q}_ms"] = round(added, 1)
        print(
            f"bare calls at {args.rate:g}/s: send->created p50 {bare['send_to_created_p50_ms']} ms,"
            f" p99 {bare['send_to_created_p99_ms']} ms ({bare['loops']}/{bare['activated']} loops)"
        )
        print(
            f"worker-added latency: p50 {out['worker_added_p50_ms']} ms, "
            f"p99 {out['worker_added_p99_ms']} ms (target p99 <= 10 ms)"
        )
    print(f"p99 receive->start <= 50 ms: {out['hist_share_le_50ms'] >= 0.99}")
    path = write_json(args.output, out)
    print(f"written {path}; worker log in {workdir}")
    print(json.dumps({"hist_p99_ms": out["hist_p99_ms"]}))
    return 0 if out["ok"] else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--reviewers",
        choices=["manual", "fast"],
        default="manual",
        help="manual: loops stay open while the load runs, reviewers submit them all "
        "afterwards (the start path alone); fast: reviewers finish within 0.5 s, so "
        "outputs, events and results load the same two cores during the window",
    )
    parser.add_argument(
        "--no-bare", action="store_true", help="skip the bare calls at the same rate"
    )
    parser.add_argument("--output", default="latency_bench")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
