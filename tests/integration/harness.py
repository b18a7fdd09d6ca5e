"""Run a real worker against one provisioned local-stack environment, in the test's loop.

Nothing is patched: the worker talks HTTP to moto and the emulator exactly as in
production. The harness only writes a routes file, builds settings, starts the worker
in a task group, and reads the results queue.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ
from a2i_worker.enqueue import send_batches
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.settings import Settings
from a2i_worker.worker import Worker, WorkerHooks, run_worker
from helpers import wait_until

__all__ = ["Harness", "ResultsReader", "running_worker", "write_routes"]

CONFIDENCE_RULES: dict[str, Any] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.8},
        }
    ]
}


def write_routes(
    directory: Path,
    flow_arn: str,
    rules: dict[str, Any] | None = None,
    *,
    extra: str = "",
) -> Path:
    rules_path = directory / "rules.json"
    rules_path.write_text(json.dumps(rules or CONFIDENCE_RULES), encoding="utf-8")
    routes = directory / "routes.toml"
    routes.write_text(
        f'[routes.main]\nflow_definition_arn = "{flow_arn}"\nrules = "rules.json"\n'
        '\n[routes.main.agreement]\nmodel = "label"\nhuman = "label"\n' + extra,
        encoding="utf-8",
    )
    return routes


@dataclass
class ResultsReader:
    """Drains the results queue; keeps every delivery, keyed by result_id."""

    aws: AwsClients
    queue_url: str
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def by_request(self) -> dict[str | None, list[dict[str, Any]]]:
        out: dict[str | None, list[dict[str, Any]]] = {}
        seen: set[str] = set()
        for r in self.deliveries:
            if r["result_id"] in seen:
                continue
            seen.add(r["result_id"])
            out.setdefault(r["request_id"], []).append(r)
        return out

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(rs[0]["outcome"] for rs in self.by_request.values() for _ in rs[:1])

    async def poll(self) -> int:
        resp = await self.aws.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        msgs = resp.get("Messages", [])
        for m in msgs:
            self.deliveries.append(json.loads(m["Body"]))
        if msgs:
            await self.aws.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                ],
            )
        return len(msgs)

    async def wait_for(self, n_requests: int, within: float = 30.0) -> None:
        async def enough() -> bool:
            while await self.poll():
                pass
            return len(self.by_request) >= n_requests

        await wait_until(enough, within, interval=0.1, message=f"{n_requests} results")


@dataclass
class Harness:
    env: StackEndpoints
    settings: Settings
    aws: AwsClients
    results: ResultsReader
    worker: Worker | None = None

    async def send(self, bodies: Iterable[str | dict[str, Any]]) -> None:
        texts = [b if isinstance(b, str) else json.dumps(b) for b in bodies]
        report = await send_batches(self.aws.sqs, self.env.requests_queue_url, texts)
        assert report["failed"] == 0, report

    async def queue_depth(self, url: str) -> tuple[int, int]:
        attrs = await self.aws.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    async def dlq_messages(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return out
            out.extend(dict(m) for m in msgs)


def make_settings(env: StackEndpoints, routes: Path, ledger: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "requests_queue_url": env.requests_queue_url,
        "events_queue_url": env.events_queue_url,
        "results_queue_url": env.results_queue_url,
        "requests_dlq_url": env.requests_dlq_url,
        "events_dlq_url": env.events_dlq_url,
        "routes_file": str(routes),
        "ledger_url": f"sqlite:///{ledger}",
        "receive_wait_seconds": 1,
        "visibility_timeout_seconds": 30,
        "heartbeat_interval_seconds": 5,
        "sweep_interval_seconds": 2,
        "overdue_after_seconds": 30,
        "shutdown_grace_seconds": 5,
        "health_host": "127.0.0.1",
        "health_port": 0,
        "start_rate_initial": 50.0,
        # Production waits 15 s after ServiceQuotaExceeded, starts sweeps at 5/s and backs
        # off failed receives up to 20 s: intervals a test would only sit out.
        "quota_gate_probe_seconds": 1.0,
        "sweep_rate_initial": 50.0,
        "receive_backoff_max_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_worker(
    env: StackEndpoints,
    tmp_path: Path,
    *,
    rules: dict[str, Any] | None = None,
    routes_extra: str = "",
    ledger: Path | None = None,
    environ_extra: dict[str, str] | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """A worker running on ``env`` until the block ends (then drained like a SIGTERM).
    ``environ_extra`` adds to its AWS environment (e.g. an access key of its own, so
    moto's call log tells its calls apart)."""
    routes = write_routes(tmp_path, env.flow_definition_arn, rules, extra=routes_extra)
    settings = make_settings(env, routes, ledger or tmp_path / "ledger.db", **overrides)
    environ = {**env.env(), **(environ_extra or {})}
    aws_settings = AwsClientSettings(endpoint_urls=endpoints_from_environ(environ))
    async with AwsClients(aws_settings, environ=environ) as aws:
        harness = Harness(env, settings, aws, ResultsReader(aws, env.results_queue_url))
        stop = anyio.Event()
        ready = anyio.Event()

        def on_ready(worker: Worker) -> None:
            harness.worker = worker
            ready.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: run_worker(
                    settings, stop=stop, hooks=WorkerHooks(on_ready=on_ready), environ=environ
                )
            )
            with anyio.fail_after(30):
                await ready.wait()
            try:
                yield harness
            finally:
                stop.set()
