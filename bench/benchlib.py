"""Plumbing shared by the worker benchmarks: stack, workload, worker process, judging.

Promises:
- every server binds 127.0.0.1; every load is bounded by a count and a deadline;
- the judge is the emulator's counters and the results queue's contents, never the
  worker's own word: :func:`verify` fails unless every request has exactly one
  distinct result, the emulator created exactly one loop per activated request and
  no name was started twice;
- the worker always runs as a separate OS process (:class:`WorkerProcess`, the real
  ``a2i-worker run``); its CPU and peak RSS come from ``/proc``.

Run from the repository root as ``.venv/bin/python bench/<name>.py``; the regression
test imports this module with ``bench/`` on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import anyio

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.enqueue import send_batches
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.moto_server import CALLS_PATH
from a2i_worker.local.processes import ProcStats, WorkerProcess

__all__ = [
    "BASELINE_KEY",
    "DRIVER_KEY",
    "FAST_REVIEWERS",
    "RESULTS_DIR",
    "WORKER_KEY",
    "Histogram",
    "ResultsCollector",
    "Verdict",
    "Workload",
    "calls_between",
    "created_and_produced",
    "driver_clients",
    "finish_lag_figures",
    "finish_lags",
    "histogram_from_metrics",
    "machine",
    "moto_calls",
    "percentile",
    "queue_depth",
    "verify",
    "worker_environ",
    "write_json",
    "write_routes",
]

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Reviewers that finish every loop as Completed within a fraction of a second.
FAST_REVIEWERS: dict[str, Any] = {
    "mode": "auto",
    "delay": {"distribution": "uniform", "low": 0.1, "high": 0.5},
    "outcomes": {"Completed": 1.0, "Expired": 0.0, "InternalError": 0.0},
    "answers": {"template": {"label": "cat"}},
}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n", encoding="utf-8")
    return path


# -- workload ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """``n`` requests; those with ``confidence < threshold`` are activated (rule below)."""

    n: int
    tag: str = "b"
    threshold: float = 0.5
    seed: int = 1

    def confidences(self) -> list[float]:
        rng = random.Random(self.seed)
        return [round(rng.random(), 4) for _ in range(self.n)]

    def request_id(self, i: int) -> str:
        return f"{self.tag}-{i:07d}"

    def body(self, i: int, confidence: float, **metadata: Any) -> str:
        return json.dumps(
            {
                "request_id": self.request_id(i),
                "route": "main",
                "input": {"text": f"item {i}", "confidence": confidence, "label": "cat"},
                "metadata": metadata,
            },
            separators=(",", ":"),
        )

    def bodies(self) -> list[str]:
        return [self.body(i, c) for i, c in enumerate(self.confidences())]

    def activated(self) -> set[str]:
        return {self.request_id(i) for i, c in enumerate(self.confidences()) if c < self.threshold}

    def rules(self) -> dict[str, Any]:
        return {
            "Conditions": [
                {
                    "ConditionType": "ConfidenceCheck",
                    "ConditionParameters": {
                        "Path": "confidence",
                        "ConfidenceLessThan": self.threshold,
                    },
                }
            ]
        }


def write_routes(directory: Path, flow_arn: str, rules: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.json").write_text(json.dumps(rules), encoding="utf-8")
    routes = directory / "routes.toml"
    routes.write_text(
        f'[routes.main]\nflow_definition_arn = "{flow_arn}"\nrules = "rules.json"\n'
        '\n[routes.main.agreement]\nmodel = "label"\nhuman = "label"\n',
        encoding="utf-8",
    )
    return routes


def worker_environ(
    env: StackEndpoints,
    workdir: Path,
    workload: Workload,
    *,
    ledger_url: str | None = None,
    **settings: Any,
) -> dict[str, str]:
    """Environment of a benchmark worker: the stack's endpoints, routes, a fast sweep."""
    routes = write_routes(workdir, env.flow_definition_arn, workload.rules())
    values: dict[str, Any] = {
        "routes_file": routes,
        "ledger_url": ledger_url or f"sqlite:///{workdir / 'ledger.db'}",
        "receive_wait_seconds": 2,
        "start_rate_initial": 2000,
        "start_rate_max": 5000,
        "sweep_interval_seconds": 5,
        "overdue_after_seconds": 60,
        "shutdown_grace_seconds": 10,
        "log_level": "INFO",
    }
    values.update(settings)
    out = env.env()
    out["AWS_ACCESS_KEY_ID"] = WORKER_KEY  # moto counts the worker's calls apart
    for key, value in values.items():
        out[f"A2I_WORKER_{key.upper()}"] = str(value)
    return out


#: Access key ids by which moto's call counter tells the processes of a benchmark apart.
WORKER_KEY = "bench-worker"
BASELINE_KEY = "bench-baseline"
DRIVER_KEY = "bench-driver"


async def moto_calls(moto_url: str) -> dict[str, dict[str, int]]:
    """moto's count of AWS calls served, by access key id and ``service.operation``."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(moto_url + CALLS_PATH) as resp,
    ):
        resp.raise_for_status()
        data: dict[str, dict[str, int]] = await resp.json()
        return data


def calls_between(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], key: str
) -> dict[str, int]:
    """Calls made with access key ``key`` between two :func:`moto_calls` snapshots."""
    old = before.get(key, {})
    return {
        op: n - old.get(op, 0) for op, n in sorted(after.get(key, {}).items()) if n - old.get(op, 0)
    }


# -- AWS from the driver ------------------------------------------------------------------


def driver_clients(env: StackEndpoints) -> AwsClients:
    environ = {**env.env(), "AWS_ACCESS_KEY_ID": DRIVER_KEY}
    return AwsClients(
        AwsClientSettings(endpoint_urls=endpoints_from_environ(environ)),
        environ=environ,
        services=("sqs", "s3", "dynamodb"),
    )


async def enqueue(aws: AwsClients, env: StackEndpoints, bodies: list[str]) -> None:
    report = await send_batches(aws.sqs, env.requests_queue_url, bodies, concurrency=8)
    if report["failed"]:
        raise RuntimeError(f"enqueue failed: {report}")


async def queue_depth(aws: AwsClients, url: str) -> int:
    """Visible + in-flight messages."""
    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    a = attrs["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


@dataclass
class ResultsCollector:
    """Drains the results queue; keeps every delivery; stops at ``expected`` distinct."""

    aws: AwsClients
    queue_url: str
    expected: int
    deliveries: int = 0
    by_result: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_at: float | None = None
    last_at: float | None = None
    arrivals: list[float] = field(default_factory=list)

    @property
    def distinct(self) -> int:
        return len(self.by_result)

    async def _receiver(self, deadline: float) -> None:
        while self.distinct < self.expected and time.monotonic() < deadline:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                continue
            now = time.monotonic()
            for m in msgs:
                self.deliveries += 1
                res = json.loads(m["Body"])
                if res["result_id"] not in self.by_result:
                    self.by_result[res["result_id"]] = res
                    self.arrivals.append(now)
            self.first_at = self.first_at or now
            self.last_at = now
            await self.aws.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )

    async def run(self, within: float, receivers: int = 4) -> None:
        """Collect until ``expected`` distinct results arrived or ``within`` seconds passed."""
        deadline = time.monotonic() + within
        async with anyio.create_task_group() as tg:
            for _ in range(receivers):
                tg.start_soon(self._receiver, deadline)

    async def settle(self, quiet: float = 2.0) -> None:
        """Keep reading for ``quiet`` more seconds: late duplicates count too."""
        self.expected = 10**9
        await self.run(quiet, receivers=1)


# -- judging ------------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    problems: list[str]
    facts: dict[str, Any]


def verify(
    workload: Workload,
    results: ResultsCollector,
    counters: dict[str, Any],
    *,
    requests_left: int,
    max_describes_per_loop: float | None = None,
) -> Verdict:
    """Every request exactly one result with the right outcome; one loop per activation."""
    wanted = {workload.request_id(i) for i in range(workload.n)}
    activated = workload.activated()
    per_request: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    wrong: list[str] = []
    for res in results.by_result.values():
        rid = str(res["request_id"])
        per_request[rid] += 1
        outcomes[str(res["outcome"])] += 1
        want = "completed" if rid in activated else "not_activated"
        if res["outcome"] != want:
            wrong.append(rid)
    missing = sorted(wanted - set(per_request))
    extra = sorted(set(per_request) - wanted)
    doubled = sorted(r for r, k in per_request.items() if k > 1)
    ops = counters.get("operations", {})
    start = ops.get("StartHumanLoop", {})
    describes = int(ops.get("DescribeHumanLoop", {}).get("calls", 0))
    lists = int(ops.get("ListHumanLoops", {}).get("calls", 0))
    loops = int(counters.get("loops_total", 0))
    facts: dict[str, Any] = {
        "requests": workload.n,
        "activated": len(activated),
        "distinct_results": results.distinct,
        "deliveries": results.deliveries,
        "outcomes": dict(outcomes),
        "missing": len(missing),
        "extra": len(extra),
        "requests_with_two_results": len(doubled),
        "wrong_outcome": len(wrong),
        "emulator_loops_total": loops,
        "emulator_start_accepted": int(start.get("accepted", 0)),
        "emulator_start_throttled": int(start.get("throttled", 0)),
        "emulator_max_starts_per_name": int(counters.get("max_starts_per_name", 0)),
        "emulator_describe_calls": describes,
        "emulator_list_calls": lists,
        "describes_per_loop": round(describes / loops, 4) if loops else 0.0,
        "requests_queue_left": requests_left,
    }
    problems: list[str] = []
    if missing:
        problems.append(f"{len(missing)} requests without a result (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} results for unknown requests (e.g. {extra[:3]})")
    if doubled:
        problems.append(f"{len(doubled)} requests with more than one result_id")
    if wrong:
        problems.append(f"{len(wrong)} results with the wrong outcome (e.g. {wrong[:3]})")
    if loops != len(activated):
        problems.append(f"emulator created {loops} loops for {len(activated)} activated requests")
    if facts["emulator_max_starts_per_name"] > 1:
        problems.append("a loop name was started more than once")
    if requests_left:
        problems.append(f"{requests_left} request messages still in the queue")
    if max_describes_per_loop is not None and loops and describes / loops > max_describes_per_loop:
        problems.append(
            f"{describes / loops:.3f} Describe calls per loop > {max_describes_per_loop}"
        )
    return Verdict(not problems, problems, facts)


# -- worker metrics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """A Prometheus histogram: cumulative bucket counts by upper bound."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    total: float

    def quantile(self, q: float) -> float:
        """Linear interpolation within the bucket holding the q-quantile (as Prometheus)."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        lower, below = 0.0, 0.0
        for upper, cum in self.buckets:
            if cum >= rank:
                if math.isinf(upper):
                    return lower
                span = cum - below
                return lower + (upper - lower) * ((rank - below) / span if span else 1.0)
            lower, below = upper, cum
        return lower

    def fraction_le(self, bound: float) -> float:
        """Share of observations ≤ ``bound`` (``bound`` must be a bucket edge)."""
        for upper, cum in self.buckets:
            if upper == bound:
                return cum / self.count if self.count else math.nan
        raise ValueError(f"{bound} is not a bucket edge")


def histogram_from_metrics(text: str, name: str) -> Histogram:
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
        elif line.startswith(name + "_count "):
            count = float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum "):
            total = float(line.rsplit(" ", 1)[1])
    buckets.sort()
    return Histogram(tuple(buckets), count, total)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[k]


def iso_seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


async def start_worker(
    environ: dict[str, str], log_path: Path, name: str = "worker", within: float = 60.0
) -> WorkerProcess:
    worker = WorkerProcess(environ, log_path=log_path, name=name)
    worker.start()
    try:
        await worker.wait_ready(within)
    except BaseException:
        worker.close()
        raise
    return worker


async def stop_worker(worker: WorkerProcess, within: float = 30.0) -> ProcStats | None:
    """SIGTERM and wait; returns the last stats seen before exit (None if it was gone)."""
    stats = None
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        stats = worker.stats()
    worker.terminate()
    try:
        await worker.wait_exit(within)
    except TimeoutError:
        worker.kill()
    worker.close()
    return stats


async def emulator_counters(url: str) -> dict[str, Any]:
    async with EmulatorControl(url) as control:
        return await control.counters()


def created_and_produced(by_result: dict[str, dict[str, Any]]) -> list[tuple[float, float]]:
    """(loop created, result produced) in epoch seconds, for results that carry both."""
    return [
        (c, p)
        for res in by_result.values()
        if (c := iso_seconds((res.get("timings") or {}).get("loop_created_at"))) is not None
        and (p := iso_seconds(res.get("produced_at"))) is not None
    ]


def finish_lags(by_result: dict[str, dict[str, Any]], review: float) -> list[float]:
    """Seconds from each loop finishing (created + a fixed ``review`` delay) to its result
    being produced, for results that carry both times."""
    return [p - (c + review) for c, p in created_and_produced(by_result)]


def finish_lag_figures(collector: ResultsCollector, review: float) -> dict[str, float]:
    lags = finish_lags(collector.by_result, review)
    return {
        "finish_to_result_p50_s": round(percentile(lags, 0.5), 2),
        "finish_to_result_max_s": round(max(lags, default=float("nan")), 2),
    }
