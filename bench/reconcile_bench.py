"""Issue 5 (cost of reconciliation): Describe/List calls per loop, with and without events.

Two phases on one stack, each a backlog of ``--loops`` requests that are all activated
(the rule fires for every request), one worker process, reviewers finishing each loop
exactly ``--review`` seconds after it was created:

1. events flowing: DescribeHumanLoop calls per loop (target ≤ 0.05), and finish -> result
   at most one sweep interval, or 1.2 x what the bare calls take for the same work,
   whichever is larger (the table says which bound applied);
2. every event dropped by the emulator (``faults.events.drop = 1.0``): the sweeper alone
   finds every result. Targets: each loop's result is produced within 2 sweep intervals
   of the loop finishing (the worker is told to check a loop ``--sweep`` seconds after its
   creation, so the first sweep after that sees it), and ≤ 1 ListHumanLoops call per 100
   open loops per sweep.

3. the bare calls (``baseline.py``: the worker's AWS calls for the same work and nothing
   else, events flowing) on the same stack: what the local stack itself costs. When moto
   (one process, one core) is the limit, the bare calls are as slow as the worker.

Counts come from the emulator's counters; the sweeps are counted from the worker's
``sweep`` log lines (one per sweep that found due loops).

    .venv/bin/python bench/reconcile_bench.py              # 2,000 loops per phase
    .venv/bin/python bench/reconcile_bench.py --loops 300
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
    ResultsCollector,
    Workload,
    created_and_produced,
    driver_clients,
    enqueue,
    finish_lags,
    iso_seconds,
    percentile,
    queue_depth,
    start_worker,
    stop_worker,
    verify,
    worker_environ,
    write_json,
)
from worker_bench import run_baseline_phase

__all__ = ["run_phase"]


def _sweep_lines(log_path: Path) -> list[dict[str, Any]]:
    out = []
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        if '"event": "sweep"' in line or '"event":"sweep"' in line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


async def run_phase(
    a2i_url: str,
    env: StackEndpoints,
    workdir: Path,
    *,
    loops: int,
    drop: bool,
    sweep: float,
    review: float,
    tag: str,
) -> dict[str, Any]:
    workload = Workload(loops, tag=tag, threshold=1.01, seed=11)
    await anyio.Path(workdir).mkdir(parents=True, exist_ok=True)
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_faults({"events": {"drop": 1.0 if drop else 0.0}})
        await control.put_flow_reviewers(
            env.flow_definition_name,
            {
                "mode": "auto",
                "delay": {"distribution": "fixed", "seconds": review},
                "outcomes": {"Completed": 1.0, "Expired": 0.0, "InternalError": 0.0},
                "answers": {"template": {"label": "cat"}},
            },
        )
        try:
            async with driver_clients(env) as aws:
                await enqueue(aws, env, workload.bodies())
                environ = worker_environ(
                    env,
                    workdir,
                    workload,
                    sweep_interval_seconds=sweep,
                    overdue_after_seconds=sweep,
                    sweep_rate_max=500,
                )
                worker = await start_worker(environ, workdir / "worker.log")
                try:
                    t0 = time.monotonic()
                    collector = ResultsCollector(aws, env.results_queue_url, workload.n)
                    await collector.run(120 + 10 * sweep)
                    wall = time.monotonic() - t0
                    await collector.settle(1.0)
                    left = await queue_depth(aws, env.requests_queue_url)
                    counters = await control.counters()
                finally:
                    await stop_worker(worker)
        finally:
            await control.put_faults({"events": {"drop": 0.0}})
    verdict = verify(workload, collector, counters, requests_left=left)
    # Lag from the loop finishing (created + review delay) to the result being produced.
    lags = finish_lags(collector.by_result, review)
    sweeps = _sweep_lines(workdir / "worker.log")
    # Open loops when a sweep ran: created before it, result not yet produced.
    spans = created_and_produced(collector.by_result)
    list_per_sweep = []
    for s in sweeps:
        at = iso_seconds(s.get("timestamp"))
        if at is None or not (s.get("lists") or s.get("due")):
            continue
        # The line is logged when the sweep ends: loops it resolved count as open, and
        # the loops it found due were open when it began.
        open_then = sum(1 for c, p in spans if c <= at and p >= at - 1.0)
        list_per_sweep.append((int(s.get("lists", 0)), max(open_then, int(s.get("due", 0)))))
    worst_list_ratio = max(
        (lists / max(1, n_open) * 100 for lists, n_open in list_per_sweep), default=0.0
    )
    loops_total = max(1, int(verdict.facts["emulator_loops_total"]))
    return {
        "ok": verdict.ok,
        "problems": verdict.problems,
        **verdict.facts,
        "events_dropped": drop,
        "sweep_interval_s": sweep,
        "review_delay_s": review,
        "wall_seconds": round(wall, 2),
        "events": counters.get("events", {}),
        "describes_per_loop": round(verdict.facts["emulator_describe_calls"] / loops_total, 4),
        "lists_per_loop": round(verdict.facts["emulator_list_calls"] / loops_total, 4),
        "sweeps_with_due_loops": len(list_per_sweep),
        "max_lists_per_100_open_per_sweep": round(worst_list_ratio, 2),
        "finish_to_result_p50_s": round(percentile(lags, 0.5), 2),
        "finish_to_result_max_s": round(max(lags, default=float("nan")), 2),
        "finish_to_result_max_in_sweep_intervals": round(
            max(lags, default=float("nan")) / sweep, 2
        ),
    }


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    root = Path(tempfile.mkdtemp(prefix="a2i-worker-reconcile-"))
    flowing = await run_phase(
        stack.a2i_url,
        await stack.provision("rcev"),
        root / "events",
        loops=args.loops,
        drop=False,
        sweep=args.sweep,
        review=args.review,
        tag="ev",
    )
    dropped = await run_phase(
        stack.a2i_url,
        await stack.provision("rcdrop"),
        root / "dropped",
        loops=args.loops,
        drop=True,
        sweep=args.sweep,
        review=args.review,
        tag="dr",
    )
    review_fixed = {
        "mode": "auto",
        "delay": {"distribution": "fixed", "seconds": args.review},
        "outcomes": {"Completed": 1.0, "Expired": 0.0, "InternalError": 0.0},
        "answers": {"template": {"label": "cat"}},
    }
    bare = await run_baseline_phase(
        stack.a2i_url,
        await stack.provision("rcbare"),
        Workload(args.loops, tag="bare", threshold=1.01, seed=11),
        within=120 + 10 * args.sweep,
        reviewers=review_fixed,
        review_delay=args.review,
    )
    bound = max(args.sweep, 1.2 * bare["finish_to_result_max_s"])
    bound_name = "1 sweep interval" if bound == args.sweep else "1.2 x the bare calls' max"
    keys = [
        "requests",
        "emulator_loops_total",
        "distinct_results",
        "emulator_max_starts_per_name",
        "emulator_describe_calls",
        "emulator_list_calls",
        "describes_per_loop",
        "lists_per_loop",
        "sweeps_with_due_loops",
        "max_lists_per_100_open_per_sweep",
        "finish_to_result_p50_s",
        "finish_to_result_max_s",
        "finish_to_result_max_in_sweep_intervals",
        "wall_seconds",
    ]
    w = max(map(len, keys))
    print(f"{'':{w}}  {'events flowing':>16}  {'events dropped':>16}")
    for k in keys:
        print(f"{k:{w}}  {flowing[k]!s:>16}  {dropped[k]!s:>16}")
    print(f"events emitted/dropped: {flowing['events']} | {dropped['events']}")
    print(
        f"bare calls, events flowing: finish -> result p50 {bare['finish_to_result_p50_s']} s, "
        f"max {bare['finish_to_result_max_s']} s, wall {bare['wall_seconds']} s"
    )
    checks = {
        "describes_per_loop_with_events <= 0.05": flowing["describes_per_loop"] <= 0.05,
        f"events flowing: finish -> result max <= {bound:.1f} s ({bound_name})": flowing[
            "finish_to_result_max_s"
        ]
        <= bound,
        "dropped: every result within 2 sweep intervals": dropped[
            "finish_to_result_max_in_sweep_intervals"
        ]
        <= 2.0,
        "dropped: <= 1 List per 100 open loops per sweep": dropped[
            "max_lists_per_100_open_per_sweep"
        ]
        <= 1.0,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    for p in flowing["problems"] + dropped["problems"] + bare["problems"]:
        print("PROBLEM:", p)
    path = write_json(
        args.output,
        {
            "events_flowing": flowing,
            "events_dropped": dropped,
            "bare_calls": bare,
            "finish_to_result_bound_s": round(bound, 2),
            "finish_to_result_bound": bound_name,
            "checks": checks,
        },
    )
    print(f"written {path}; worker logs in {root}")
    return 0 if flowing["ok"] and dropped["ok"] and bare["ok"] and all(checks.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=2000)
    parser.add_argument("--sweep", type=float, default=10.0, help="sweep interval (s)")
    parser.add_argument("--review", type=float, default=1.0, help="reviewer delay (s)")
    parser.add_argument("--output", default="reconcile_bench")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
