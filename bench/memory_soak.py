"""Issue 8 (memory): 100k open loops in the ledger, a 10k-message backlog, a soak.

Before the worker starts, the SQLite ledger is filled with ``--open-loops`` OPEN records
(built with the ledger's own pure transitions and row codec, inserted in one
transaction; their next check is a day away, so the sweeper leaves them alone but
counts them every sweep). The requests queue gets ``--backlog`` messages and a producer
tops it up every second for ``--seconds``, so the worker never runs dry. The worker's
RSS is sampled from /proc every few seconds; the soak passes when the peak stays
≤ 200 MiB and the RSS does not grow with the requests handled (slope of RSS over
results, after the first third of the run as warm-up, reported in KiB per 1,000
requests).

    .venv/bin/python bench/memory_soak.py                  # quick: 60 s
    .venv/bin/python bench/memory_soak.py --seconds 600 --output memory_soak_10min
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from a2i_emulator.control import EmulatorControl
from a2i_worker.ledger import codec, transitions
from a2i_worker.ledger.protocol import Phase, StartPayload
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.stack import LocalStack
from a2i_worker.naming import loop_name
from benchlib import (
    FAST_REVIEWERS,
    ResultsCollector,
    Workload,
    driver_clients,
    enqueue,
    start_worker,
    stop_worker,
    worker_environ,
    write_json,
)

__all__ = ["fill_ledger"]


async def fill_ledger(path: Path, flow_arn: str, n: int) -> None:
    """``n`` OPEN records with a 1 KiB input each, due for a check in a day."""
    ledger = SqliteLedger(path)
    await ledger.open()  # creates the schema
    await ledger.close()
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    payload = StartPayload(flow_arn, '{"text":"' + "x" * 1000 + '"}', ())
    rows: list[list[Any]] = []
    columns: list[str] = []
    for i in range(n):
        rid = f"old-{i:07d}"
        name = loop_name(flow_arn, rid, 1)
        rec = transitions.new_record(rid, f"fp-{i}", route="main", received_at=now)
        started = transitions.start(
            rec,
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name=name,
            decision={"activated": True, "fired": []},
            context={"request_id": rid, "prediction": {"confidence": 0.1}, "metadata": {}},
            payload=payload,
            next_check_at=later,
            now=now,
        )
        assert started is not None
        _, opened = transitions.open_loop(
            started,
            loop_name=name,
            loop_arn=f"arn:loop/{name}",
            loop_created_at=now,
            next_check_at=later,
            now=now,
        )
        assert opened is not None
        row = codec.to_row(opened)
        columns = list(row)
        rows.append(list(row.values()))

    def insert() -> None:
        with sqlite3.connect(path) as conn:
            conn.executemany(
                f"INSERT INTO records ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                rows,
            )

    await anyio.to_thread.run_sync(insert)


async def _top_up(
    aws: Any, env: StackEndpoints, workload: Workload, backlog: int, until: float
) -> int:
    """Keep about ``backlog`` visible messages in the requests queue; returns how many sent."""
    confidences = workload.confidences()
    sent = 0
    while time.monotonic() < until and sent < workload.n:
        attrs = await aws.sqs.get_queue_attributes(
            QueueUrl=env.requests_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        missing = backlog - int(attrs["Attributes"]["ApproximateNumberOfMessages"])
        if missing > 0:
            upto = min(workload.n, sent + missing)
            await enqueue(aws, env, [workload.body(i, confidences[i]) for i in range(sent, upto)])
            sent = upto
        await anyio.sleep(1.0)
    return sent


def _slope_kib_per_1000(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of RSS (bytes) over results handled, in KiB per 1,000."""
    if len(points) < 3:
        return float("nan")
    xs = [float(x) for x, _ in points]
    ys = [float(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return float("nan")
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return cov / var * 1000 / 1024


async def run_soak(
    a2i_url: str,
    env: StackEndpoints,
    workdir: Path,
    *,
    seconds: float,
    backlog: int,
    open_loops: int,
) -> dict[str, Any]:
    workload = Workload(backlog + int(seconds * 400), tag="soak", seed=17)
    t_fill = time.monotonic()
    await fill_ledger(workdir / "ledger.db", env.flow_definition_arn, open_loops)
    fill_s = time.monotonic() - t_fill
    async with EmulatorControl(a2i_url) as control:
        await control.reset()
        await control.put_flow_reviewers(env.flow_definition_name, FAST_REVIEWERS)
        async with driver_clients(env) as aws:
            confidences = workload.confidences()
            await enqueue(aws, env, [workload.body(i, confidences[i]) for i in range(backlog)])
            environ = worker_environ(env, workdir, workload, sweep_interval_seconds=10)
            worker = await start_worker(environ, workdir / "worker.log")
            samples: list[dict[str, Any]] = []
            collector = ResultsCollector(aws, env.results_queue_url, 10**9)
            try:
                t0 = time.monotonic()
                until = t0 + seconds

                async def sample() -> None:
                    while time.monotonic() < until:
                        st = worker.stats()
                        samples.append(
                            {
                                "t": round(time.monotonic() - t0, 1),
                                "rss": st.rss_bytes,
                                "peak": st.peak_rss_bytes,
                                "results": collector.distinct,
                            }
                        )
                        await anyio.sleep(5.0)

                async with anyio.create_task_group() as tg:
                    tg.start_soon(sample)
                    tg.start_soon(collector.run, seconds)

                    async def produce() -> None:
                        await _top_up(aws, env, workload, backlog, until)

                    tg.start_soon(produce)
                final = worker.stats()
                counters = await control.counters()
            finally:
                await stop_worker(worker)
    per_request: dict[str, int] = {}
    for res in collector.by_result.values():
        per_request[res["request_id"]] = per_request.get(res["request_id"], 0) + 1
    warm = [s for s in samples if s["t"] >= seconds / 3]
    slope = _slope_kib_per_1000([(s["results"], s["rss"]) for s in warm])
    rss_warm = [s["rss"] for s in warm] or [0]
    return {
        "seconds": seconds,
        "open_loops_in_ledger": open_loops,
        "ledger_fill_seconds": round(fill_s, 1),
        "backlog": backlog,
        "results": collector.distinct,
        "requests_with_two_results": sum(1 for v in per_request.values() if v > 1),
        "emulator_max_starts_per_name": counters.get("max_starts_per_name"),
        "emulator_loops_total": counters.get("loops_total"),
        "peak_rss_mib": round(final.peak_rss_bytes / 2**20, 1),
        "rss_after_warmup_min_mib": round(min(rss_warm) / 2**20, 1),
        "rss_after_warmup_max_mib": round(max(rss_warm) / 2**20, 1),
        "rss_end_mib": round(final.rss_bytes / 2**20, 1),
        "rss_slope_kib_per_1000_requests": round(slope, 1),
        "samples": [
            {"t": s["t"], "rss_mib": round(s["rss"] / 2**20, 1), "results": s["results"]}
            for s in samples
        ],
    }


async def main_async(args: argparse.Namespace, stack: LocalStack) -> int:
    env = await stack.provision("soak")
    workdir = Path(tempfile.mkdtemp(prefix="a2i-worker-soak-"))
    out = await run_soak(
        stack.a2i_url,
        env,
        workdir,
        seconds=args.seconds,
        backlog=args.backlog,
        open_loops=args.open_loops,
    )
    for k, v in out.items():
        if k != "samples":
            print(f"{k:34} {v}")
    print("RSS over time (s: MiB, results):")
    print("  " + "  ".join(f"{s['t']:.0f}:{s['rss_mib']}" for s in out["samples"]))
    ok = out["peak_rss_mib"] <= 200 and out["requests_with_two_results"] == 0
    flat = out["rss_after_warmup_max_mib"] - out["rss_after_warmup_min_mib"] <= 10
    print(f"peak ≤ 200 MiB: {out['peak_rss_mib'] <= 200}; flat after warm-up (±10 MiB): {flat}")
    path = write_json(args.output, {**out, "peak_ok": ok, "flat": flat})
    print(f"written {path}; worker log in {workdir}")
    return 0 if ok and flat else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--open-loops", type=int, default=100_000)
    parser.add_argument("--output", default="memory_soak_quick")
    args = parser.parse_args()
    with LocalStack(moto_in_subprocess=True, emulator_in_subprocess=True, emulator_seed=7) as stack:
        code = anyio.run(main_async, args, stack)
    sys.exit(code)


if __name__ == "__main__":
    main()
