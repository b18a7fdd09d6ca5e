"""Shared pieces of the reliability suite: worker processes, queue probes and the judge.

Everything here observes from outside: queue depths come from SQS (moto), loop counts
from the emulator's counters, results from the results queue. The worker's own
metrics and logs are never taken as evidence that nothing was lost.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.enqueue import send_batches
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.processes import WorkerProcess
from helpers import wait_until

__all__ = [
    "CONFIDENCE_RULES",
    "Expected",
    "QueueProbe",
    "ResultsCollector",
    "assert_exactly_once",
    "make_requests",
    "worker_env",
    "write_routes",
]

#: A request is reviewed when the model's confidence is below 0.8.
CONFIDENCE_RULES: dict[str, Any] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.8},
        }
    ]
}


def write_routes(directory: Path, flow_arn: str, rules: dict[str, Any] | None = None) -> Path:
    """A routes file with one route ``main`` on ``flow_arn`` (rules: confidence < 0.8)."""
    rules_path = directory / "rules.json"
    rules_path.write_text(json.dumps(rules or CONFIDENCE_RULES), encoding="utf-8")
    routes = directory / "routes.toml"
    routes.write_text(
        f'[routes.main]\nflow_definition_arn = "{flow_arn}"\nrules = "rules.json"\n'
        '\n[routes.main.agreement]\nmodel = "label"\nhuman = "label"\n',
        encoding="utf-8",
    )
    return routes


def worker_env(env: StackEndpoints, directory: Path, **overrides: str) -> dict[str, str]:
    """Environment of an ``a2i-worker run`` process on ``env`` with short timings.

    The ledger is ``<directory>/ledger.db``; it survives restarts of the process.
    """
    routes = write_routes(directory, env.flow_definition_arn)
    values = {
        **env.env(),
        "A2I_WORKER_ROUTES_FILE": str(routes),
        "A2I_WORKER_LEDGER_URL": f"sqlite:///{directory / 'ledger.db'}",
        "A2I_WORKER_RECEIVE_WAIT_SECONDS": "1",
        # A killed worker's messages come back after the visibility timeout: short here.
        "A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS": "4",
        "A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS": "1",
        "A2I_WORKER_RECEIVE_BACKOFF_MAX_SECONDS": "1",
        "A2I_WORKER_SWEEP_INTERVAL_SECONDS": "1",
        "A2I_WORKER_OVERDUE_AFTER_SECONDS": "3",
        "A2I_WORKER_SHUTDOWN_GRACE_SECONDS": "5",
        "A2I_WORKER_START_RATE_INITIAL": "100",
        "A2I_WORKER_START_RATE_MAX": "400",
        # A restart re-describes every STARTING record through the sweep class.
        "A2I_WORKER_SWEEP_RATE_INITIAL": "50",
        "A2I_WORKER_SWEEP_RATE_MAX": "50",
        "A2I_WORKER_QUOTA_GATE_PROBE_SECONDS": "1",
        "A2I_WORKER_LOG_FORMAT": "json",
    }
    values.update({f"A2I_WORKER_{k.upper()}": v for k, v in overrides.items()})
    return values


@dataclass(frozen=True)
class Expected:
    """What the requests sent should end as: ids, and which of them need a loop."""

    request_ids: frozenset[str]
    activated: frozenset[str]


def make_requests(
    n: int, *, prefix: str = "r", seed: int = 7, extra: dict[str, Any] | None = None
) -> tuple[list[str], Expected]:
    """``n`` request bodies, about 70 % activated (confidence < 0.8), and what to expect."""
    rng = random.Random(seed)
    bodies: list[str] = []
    ids: set[str] = set()
    activated: set[str] = set()
    for i in range(n):
        rid = f"{prefix}-{i:05d}"
        confidence = round(rng.random() * 0.7, 3) if rng.random() < 0.7 else 0.9
        bodies.append(
            json.dumps(
                {
                    "request_id": rid,
                    "route": "main",
                    "input": {"doc": f"s3://docs/{i}.pdf", "confidence": confidence},
                    "prediction": {"confidence": confidence, "label": "cat"},
                    **(extra or {}),
                }
            )
        )
        ids.add(rid)
        if confidence < 0.8:
            activated.add(rid)
    return bodies, Expected(frozenset(ids), frozenset(activated))


async def send_all(aws: AwsClients, queue_url: str, bodies: Iterable[str]) -> None:
    report = await send_batches(aws.sqs, queue_url, list(bodies))
    assert report["failed"] == 0, report


@dataclass
class QueueProbe:
    """Queue depths as SQS reports them."""

    aws: AwsClients

    async def depth(self, url: str) -> tuple[int, int]:
        """(visible, in flight) of ``url``."""
        attrs = await self.aws.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    async def drained(self, url: str) -> bool:
        return await self.depth(url) == (0, 0)

    async def receive_all(self, url: str) -> list[dict[str, Any]]:
        """Receive (and keep invisible) every visible message of ``url``."""
        out: list[dict[str, Any]] = []
        while True:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
                VisibilityTimeout=300,
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return out
            out.extend(dict(m) for m in msgs)


@dataclass
class ResultsCollector:
    """Drains the results queue and keeps every delivery (duplicates included)."""

    aws: AwsClients
    queue_url: str
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    async def poll(self) -> int:
        got = 0
        while True:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return got
            got += len(msgs)
            self.deliveries.extend(json.loads(m["Body"]) for m in msgs)
            await self.aws.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )

    @property
    def request_ids(self) -> set[str | None]:
        return {d["request_id"] for d in self.deliveries}

    def by_request(self) -> dict[str | None, list[dict[str, Any]]]:
        out: dict[str | None, list[dict[str, Any]]] = {}
        for d in self.deliveries:
            out.setdefault(d["request_id"], []).append(d)
        return out

    async def wait_for(self, ids: Iterable[str], within: float) -> None:
        wanted = set(ids)

        async def complete() -> bool:
            await self.poll()
            return wanted <= self.request_ids

        await wait_until(
            complete,
            within,
            interval=0.2,
            message=f"results for {len(wanted)} requests "
            f"(missing e.g. {sorted(wanted - self.request_ids)[:3]})",
        )


async def assert_exactly_once(
    expected: Expected,
    results: ResultsCollector,
    emulator: EmulatorControl,
    probe: QueueProbe,
    env: StackEndpoints,
) -> dict[str, int]:
    """The promise, judged by the emulator and SQS: returns the counts for the report."""
    by_req = results.by_request()
    assert set(by_req) == set(expected.request_ids), "a result for every request, no stranger"
    duplicates = 0
    for rid, deliveries in by_req.items():
        ids = {d["result_id"] for d in deliveries}
        assert len(ids) == 1, f"{rid}: more than one distinct result: {deliveries}"
        duplicates += len(deliveries) - 1
        outcome = deliveries[0]["outcome"]
        want = "completed" if rid in expected.activated else "not_activated"
        assert outcome == want, f"{rid}: {outcome} != {want}: {deliveries[0]}"
    counters = await emulator.counters()
    assert counters["loops_total"] == len(expected.activated), counters
    assert counters["max_starts_per_name"] == 1, counters["names_started_more_than_once"]
    await wait_until(
        lambda: probe.drained(env.requests_queue_url),
        20,
        message="requests queue: 0 visible, 0 in flight",
    )
    return {
        "requests": len(expected.request_ids),
        "loops": int(counters["loops_total"]),
        "duplicate_deliveries": duplicates,
    }


def new_process(env: dict[str, str], log_path: Path, name: str) -> WorkerProcess:
    """A worker process (not started yet) writing its JSON log to ``log_path``."""
    return WorkerProcess(env, log_path=log_path, name=name)
