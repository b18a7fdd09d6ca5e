"""Issue 3 / issue 8 (CPU): a pre-enqueued backlog through the whole local stack.

moto runs in its own process, the emulator in a thread of this driver, the worker as
its own process (the real ``a2i-worker run``), the baseline (``baseline.py``) as its own
process on a second environment of the same stack, one after the other so they never
compete for the two cores. Each phase: enqueue ``--n`` requests (about half activated
by a confidence rule), start the consumer, drain the results queue until every request
has a result. Judged by the emulator's counters and the results queue (see
``benchlib.verify``); CPU and peak RSS of the worker from /proc, of the baseline from
its own ``process_time``.

    .venv/bin/python bench/worker_bench.py                 # 10k requests + baseline
    .venv/bin/python bench/worker_bench.py --n 1000 --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
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
    BASELINE_KEY,
    FAST_REVIEWERS,
    WORKER_KEY,
    ResultsCollector,
    Workload,
    calls_between,
    driver_clients,
    enqueue,
    finish_lag_figures,
    histogram_from_metrics,
    iso_seconds,
    moto_calls,
    percentile,
    queue_depth,
    start_worker,
    stop_worker,
    verify,
    worker_environ,
    write_json,
)

__all__ = ["run_baseline_phase", "run_worker_phase"]


async def _wait_queue_empty(aws: Any, url: str, within: float) -> int:
    deadline = time.monotonic() + within
    while True:
        left = await queue_depth(aws, url)
        if left == 0 or time.monotonic() > deadline:
            return left
        await anyio.sleep(0.2)


async def run_worker_phase(
    a2i_url: str,
    env: StackEndpoints,
    workload: Workload,
    workdir: Path,
    *,
    within: float = 600.0,
    settings: dict[str, Any] | None = None,
    max_describes_per_loop: float | None = None,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """Backlog of ``workload`` → one worker process → every result. Returns the figures."""
    await anyio.Path(workdir).mkdir(parents=True, exist_ok=True)
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, FAST_REVIEWERS)
        async with driver_clients(env) as aws:
            t_enq = time.monotonic()
            await enqueue(aws, env, workload.bodies())
            enqueue_s = time.monotonic() - t_enq
            environ = worker_environ(env, workdir, workload, **(settings or {}))
            calls0 = await moto_calls(env.moto_url)
            worker = await start_worker(environ, workdir / "worker.log")
            try:
                spy = _start_profiler(worker.pid, profile_to) if profile_to else None
                s0 = worker.stats()
                t0 = time.monotonic()
                collector = ResultsCollector(aws, env.results_queue_url, workload.n)
                await collector.run(within)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
                t1 = time.monotonic()
                s1 = worker.stats()
                metrics = await worker.metrics_text()
                await collector.settle(1.0)
                left = await _wait_queue_empty(aws, env.requests_queue_url, 10.0)
                counters = await control.counters()
                calls = calls_between(calls0, await moto_calls(env.moto_url), WORKER_KEY)
            finally:
                await stop_worker(worker)
    verdict = verify(
        workload,
        collector,
        counters,
        requests_left=left,
        max_describes_per_loop=max_describes_per_loop,
    )
    hist = histogram_from_metrics(metrics, "a2i_worker_receive_to_start_seconds")
    # Independent of the worker's histogram: emulator creation time - worker receive time.
    r2c = [
        c - r
        for res in collector.by_result.values()
        if (c := iso_seconds(res["timings"].get("loop_created_at"))) is not None
        and (r := iso_seconds(res["timings"].get("received_at"))) is not None
    ]
    wall = (collector.last_at or t1) - t0
    cpu = s1.cpu_seconds - s0.cpu_seconds
    return {
        "ok": verdict.ok,
        "problems": verdict.problems,
        **verdict.facts,
        "enqueue_seconds": round(enqueue_s, 2),
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(workload.n / wall, 1) if wall else None,
        "worker_cpu_seconds": round(cpu, 2),
        "worker_cpu_ms_per_request": round(1000 * cpu / workload.n, 3),
        "worker_peak_rss_mib": round(s1.peak_rss_bytes / 2**20, 1),
        "hist_receive_to_start_count": hist.count,
        "hist_receive_to_start_p50_ms": round(1000 * hist.quantile(0.5), 1),
        "hist_receive_to_start_p99_ms": round(1000 * hist.quantile(0.99), 1),
        "results_receive_to_created_p50_ms": round(1000 * percentile(r2c, 0.5), 1),
        "results_receive_to_created_p99_ms": round(1000 * percentile(r2c, 0.99), 1),
        "aws_calls": calls,
        "aws_calls_per_request": round(sum(calls.values()) / workload.n, 3),
    }


def _start_profiler(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy (installed separately) sampling ``pid`` into collapsed stacks at ``path``."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-f", "raw", "-r", "200", "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def run_baseline_phase(
    a2i_url: str,
    env: StackEndpoints,
    workload: Workload,
    *,
    within: float = 600.0,
    loop: str = "asyncio",
    reviewers: dict[str, Any] | None = None,
    review_delay: float | None = None,
) -> dict[str, Any]:
    """The same backlog through ``baseline.py`` (own process); judged the same way.
    With ``review_delay`` (fixed-delay ``reviewers``) also its finish -> result lags."""
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, reviewers or FAST_REVIEWERS)
        async with driver_clients(env) as aws:
            await enqueue(aws, env, workload.bodies())
            cmd = [
                sys.executable,
                str(Path(__file__).with_name("baseline.py")),
                "--n",
                str(workload.n),
                "--threshold",
                str(workload.threshold),
                "--flow-arn",
                env.flow_definition_arn,
                "--within",
                str(within),
                "--loop",
                loop,
            ]
            environ = {**os.environ, **env.env(), "AWS_ACCESS_KEY_ID": BASELINE_KEY}
            calls0 = await moto_calls(env.moto_url)
            proc = await anyio.open_process(cmd, env=environ, stdout=subprocess.PIPE)
            collector = ResultsCollector(aws, env.results_queue_url, workload.n)
            t0 = time.monotonic()
            async with proc:
                await collector.run(within)
                assert proc.stdout is not None
                out = b"".join([chunk async for chunk in proc.stdout])
                await proc.wait()
            t1 = time.monotonic()
            await collector.settle(1.0)
            left = await _wait_queue_empty(aws, env.requests_queue_url, 10.0)
            counters = await control.counters()
            calls = calls_between(calls0, await moto_calls(env.moto_url), BASELINE_KEY)
    report = json.loads(out.decode().strip().splitlines()[-1])
    verdict = verify(workload, collector, counters, requests_left=left)
    return {
        "ok": verdict.ok,
        "problems": verdict.problems,
        **verdict.facts,
        "wall_seconds": round(t1 - t0, 2),
        "cpu_seconds": report["cpu_seconds"],
        "cpu_ms_per_request": round(1000 * report["cpu_seconds"] / workload.n, 3),
        "peak_rss_mib": round(report["peak_rss_bytes"] / 2**20, 1),
        "aws_calls": calls,
        "aws_calls_per_request": round(sum(calls.values()) / workload.n, 3),
        **(finish_lag_figures(collector, review_delay) if review_delay is not None else {}),
    }


def _table(rows: list[tuple[str, Any, Any]]) -> str:
    w = max(len(r[0]) for r in rows)
    lines = [f"{'':{w}}  {'worker':>12}  {'baseline':>12}"]
    lines += [f"{k:{w}}  {v!s:>12}  {b!s:>12}" for k, v, b in rows]
    return "\n".join(lines)


def _calls_table(work: dict[str, Any], base: dict[str, Any]) -> str:
    """AWS calls per request by operation, as counted by moto."""
    wc, bc = work.get("aws_calls", {}), base.get("aws_calls", {})
    n = work["requests"]
    rows = [
        (op, round(wc.get(op, 0) / n, 3), round(bc[op] / n, 3) if op in bc else "")
        for op in sorted(set(wc) | set(bc))
    ]
    rows.append(
        (
            "AWS calls per request (moto)",
            work["aws_calls_per_request"],
            base.get("aws_calls_per_request", ""),
        )
    )
    return _table(rows)


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="a2i-worker-bench-"))
    runs: list[dict[str, Any]] = []
    base: dict[str, Any] = {}
    base_uv: dict[str, Any] = {}
    work: dict[str, Any] = {}
    for r in range(args.repeat):
        # Interleaved, one process at a time: machine noise hits every contender alike.
        run: dict[str, Any] = {}
        if not args.no_baseline:
            benv = await stack.provision(f"bl{r}")
            base = await run_baseline_phase(stack.a2i_url, benv, Workload(args.n, tag="bl"))
            run["baseline"] = base
        wenv = await stack.provision(f"wb{r}")
        work = await run_worker_phase(
            stack.a2i_url,
            wenv,
            Workload(args.n, tag="wb"),
            workdir / str(r),
            profile_to=args.profile,
            # The production default: the sweeper is a safety net for lost events, not
            # part of the path measured (with 60 s, a 10k backlog that saturates moto
            # delays events past it and the sweeper adds ~0.5 Describe per loop).
            settings={"overdue_after_seconds": 900},
        )
        run["worker"] = work
        if args.uvloop_baseline:
            uenv = await stack.provision(f"bu{r}")
            base_uv = await run_baseline_phase(
                stack.a2i_url, uenv, Workload(args.n, tag="bu"), loop="uvloop"
            )
            run["baseline_uvloop"] = base_uv
        runs.append(run)
        print(
            f"run {r + 1}/{args.repeat}: worker {work['worker_cpu_ms_per_request']} ms/request"
            + (f", baseline {base['cpu_ms_per_request']}" if base else "")
            + (f", baseline on uvloop {base_uv['cpu_ms_per_request']}" if base_uv else ""),
            flush=True,
        )
    medians = _medians(runs)
    ratio = round(medians["worker"] / medians["baseline"], 2) if "baseline" in medians else None
    ratio_uv = (
        round(medians["worker"] / medians["baseline_uvloop"], 2)
        if "baseline_uvloop" in medians
        else None
    )
    rows = [
        ("requests", work["requests"], base.get("requests")),
        (
            "activated / loops",
            f"{work['activated']}/{work['emulator_loops_total']}",
            f"{base.get('activated')}/{base.get('emulator_loops_total')}",
        ),
        ("distinct results", work["distinct_results"], base.get("distinct_results")),
        (
            "max starts per name",
            work["emulator_max_starts_per_name"],
            base.get("emulator_max_starts_per_name"),
        ),
        ("Describe calls", work["emulator_describe_calls"], base.get("emulator_describe_calls")),
        ("wall s", work["wall_seconds"], base.get("wall_seconds")),
        (
            "requests/s",
            work["requests_per_second"],
            round(args.n / base["wall_seconds"], 1) if base else None,
        ),
        ("CPU ms/request", work["worker_cpu_ms_per_request"], base.get("cpu_ms_per_request")),
        ("peak RSS MiB", work["worker_peak_rss_mib"], base.get("peak_rss_mib")),
        ("recv→start p50 ms (hist)", work["hist_receive_to_start_p50_ms"], ""),
        ("recv→start p99 ms (hist)", work["hist_receive_to_start_p99_ms"], ""),
        ("recv→created p99 ms (results)", work["results_receive_to_created_p99_ms"], ""),
        (
            "verdict",
            "ok" if work["ok"] else "FAIL",
            ("ok" if base["ok"] else "FAIL") if base else "",
        ),
    ]
    print(_table(rows))
    print(_calls_table(work, base))
    print(f"median CPU ms/request over {args.repeat} run(s): {medians}")
    if ratio is not None:
        print(f"worker CPU per request = {ratio} x baseline (median; target ≤ 1.5)")
    if ratio_uv is not None:
        print(f"worker CPU per request = {ratio_uv} x the baseline on uvloop")
    problems = [p for run in runs for phase in run.values() for p in phase["problems"]]
    for p in problems:
        print("PROBLEM:", p)
    path = write_json(
        args.output,
        {
            "n": args.n,
            "repeat": args.repeat,
            "worker": work,
            "baseline": base,
            "baseline_uvloop": base_uv,
            "median_cpu_ms_per_request": medians,
            "cpu_ratio": ratio,
            "cpu_ratio_to_uvloop_baseline": ratio_uv,
            "runs": runs,
        },
    )
    print(f"written {path}; worker logs in {workdir}")
    return 0 if not problems else 1


def _medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Median CPU ms per request of each contender over the runs."""
    keys = {"worker": "worker_cpu_ms_per_request", "baseline": "cpu_ms_per_request"}
    keys["baseline_uvloop"] = "cpu_ms_per_request"
    out: dict[str, float] = {}
    for name, key in keys.items():
        values = [run[name][key] for run in runs if name in run]
        if values:
            out[name] = round(statistics.median(values), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--repeat", type=int, default=1, help="interleaved runs; the ratio is of the medians"
    )
    parser.add_argument(
        "--uvloop-baseline",
        action="store_true",
        help="also run the baseline on uvloop (the worker's default event loop)",
    )
    parser.add_argument("--output", default="worker_bench")
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the worker")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
