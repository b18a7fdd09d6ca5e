"""``a2i-worker local``: the embedded stack, a worker on it, and (``--demo``) a workload.

The demo provisions queues, bucket, EventBridge rule and a flow definition on the
local stack, configures simulated reviewers, enqueues a mix of invoice predictions
(confident, unsure, missing fields, and a few malformed messages), runs a real worker
against it all over HTTP, follows the results queue with a progress bar, and prints
a summary judged by the emulator's counters. Exit status 0 only if every request
ended in exactly one result and no loop was started twice.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["DemoOptions", "demo_requests", "run_local"]

DEMO_RULES: dict[str, Any] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.80},
        },
        {"ConditionType": "MissingField", "ConditionParameters": {"Path": "predicted_total"}},
        {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 5}},
    ]
}


@dataclass(frozen=True)
class DemoOptions:
    demo: bool = True
    requests: int = 200
    review_seconds: float = 2.0
    moto_port: int = 0
    a2i_port: int = 0
    malformed: int = 3
    timeout_seconds: float = 300.0
    seed: int = 7


def demo_requests(n: int, *, seed: int = 7, malformed: int = 3) -> list[str]:
    """``n`` review requests (plus ``malformed`` broken messages) as SQS bodies."""
    rng = random.Random(seed)
    bodies: list[str] = []
    for i in range(n):
        confidence = round(rng.betavariate(5, 1.5), 3)
        prediction: dict[str, Any] = {"confidence": confidence}
        if rng.random() > 0.05:
            prediction["predicted_total"] = f"{rng.randint(10, 5000)}.{rng.randint(0, 99):02d}"
        body = {
            "request_id": f"demo-{seed}-{i:06d}",
            "route": "invoices",
            "input": {"document_uri": f"s3://incoming/invoices/{i:06d}.pdf", **prediction},
            "metadata": {"batch": "demo"},
        }
        bodies.append(json.dumps(body))
    broken = [
        '{"request_id": "demo-bad-1", "route": "invoices"',
        "[1, 2, 3]",
        '{"request_id": "demo-bad-3", "route": "no-such-route", "input": {}}',
    ]
    bodies.extend(broken[:malformed])
    return bodies


def _write_routes(directory: Path, flow_arn: str) -> Path:
    rules_path = directory / "invoice-rules.json"
    rules_path.write_text(json.dumps(DEMO_RULES, indent=2), encoding="utf-8")
    routes_path = directory / "routes.toml"
    routes_path.write_text(
        "\n".join(
            [
                "[routes.invoices]",
                f'flow_definition_arn = "{flow_arn}"',
                'rules = "invoice-rules.json"',
                "",
                "[routes.invoices.agreement]",
                'model = "predicted_total"',
                'human = "total"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return routes_path


async def _run(opts: DemoOptions, console: Console) -> int:
    from a2i_emulator.control import EmulatorControl
    from a2i_worker.aws import AwsClients, AwsClientSettings
    from a2i_worker.enqueue import send_batches
    from a2i_worker.local.stack import LocalStack
    from a2i_worker.logs import configure_logging
    from a2i_worker.settings import Settings
    from a2i_worker.worker import Worker, WorkerHooks, run_worker

    configure_logging("console" if not opts.demo else "json", "WARNING" if opts.demo else "INFO")
    # The local stack accepts any credentials; never let real ones leak into it.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(var, None)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    stack = LocalStack(moto_port=opts.moto_port, a2i_port=opts.a2i_port)
    stack.start()
    try:
        env = await stack.provision("demo")
        workdir = Path(tempfile.mkdtemp(prefix="a2i-worker-local-"))
        routes = _write_routes(workdir, env.flow_definition_arn)
        os.environ.update(env.env())
        settings = Settings(
            routes_file=str(routes),
            ledger_url=f"sqlite:///{workdir / 'ledger.db'}",
            receive_wait_seconds=1,
            sweep_interval_seconds=5,
            overdue_after_seconds=max(10, int(opts.review_seconds * 5)),
            shutdown_grace_seconds=10,
            health_port=0,
            health_host="127.0.0.1",
        )
        console.print(f"[bold]local stack[/]: moto {stack.moto_url} · A2I emulator {stack.a2i_url}")
        console.print(f"requests queue: {env.requests_queue_url}")
        console.print(f"ledger: {settings.ledger_url}   routes: {routes}")
        async with EmulatorControl(stack.a2i_url) as control:
            await control.put_reviewers(
                {
                    "mode": "auto",
                    "delay": {"distribution": "exponential", "mean": opts.review_seconds},
                    "outcomes": {"Completed": 0.9, "Expired": 0.05, "InternalError": 0.05},
                    "answers": {
                        "template": {"is_correct": True},
                        "copy_from": {"total": "predicted_total"},
                        "flip": {"is_correct": 0.2},
                    },
                }
            )
            stop = anyio.Event()
            if not opts.demo:
                env_file = workdir / "local.env"
                env_file.write_text(
                    "".join(f"{k}={v}\n" for k, v in sorted(env.env().items())), encoding="utf-8"
                )
                console.print(
                    f"environment for other shells: [bold]set -a; . {env_file}; set +a[/]\n"
                    f"then e.g. [bold]a2i-worker enqueue requests.jsonl[/]; emulator control API: "
                    f"{stack.a2i_url}/_emulator/counters"
                )
                console.print("worker running on the local stack; Ctrl-C to stop")
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(lambda: run_worker(settings, stop=stop))
                        async for _ in signals:
                            stop.set()
                            break
                return 0
            bodies = demo_requests(opts.requests, seed=opts.seed, malformed=opts.malformed)
            ready = anyio.Event()
            holder: dict[str, Worker] = {}

            def on_ready(worker: Worker) -> None:
                holder["worker"] = worker
                ready.set()

            outcomes: Counter[str] = Counter()
            result_ids: set[str] = set()
            duplicates = 0
            async with (
                AwsClients(AwsClientSettings(), services=("sqs",)) as aws,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(
                    lambda: run_worker(settings, stop=stop, hooks=WorkerHooks(on_ready=on_ready))
                )
                with anyio.fail_after(60):
                    await ready.wait()
                await send_batches(aws.sqs, env.requests_queue_url, bodies)
                with Progress(
                    TextColumn("[bold]results"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(),
                    console=console,
                ) as progress:
                    task = progress.add_task("results", total=len(bodies), detail="")
                    with anyio.move_on_after(opts.timeout_seconds):
                        while len(result_ids) < len(bodies):
                            resp = await aws.sqs.receive_message(
                                QueueUrl=env.results_queue_url,
                                MaxNumberOfMessages=10,
                                WaitTimeSeconds=1,
                            )
                            msgs = resp.get("Messages", [])
                            for m in msgs:
                                res = json.loads(m["Body"])
                                if res["result_id"] in result_ids:
                                    duplicates += 1
                                    continue
                                result_ids.add(res["result_id"])
                                outcomes[res["outcome"]] += 1
                            if msgs:
                                await aws.sqs.delete_message_batch(
                                    QueueUrl=env.results_queue_url,
                                    Entries=[
                                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                        for i, m in enumerate(msgs)
                                    ],
                                )
                            progress.update(
                                task,
                                completed=len(result_ids),
                                detail=" ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
                            )
                stop.set()
            counters = await control.counters()
        _summary(console, outcomes, len(bodies), len(result_ids), duplicates, counters)
        starts = counters["operations"]["StartHumanLoop"]
        ok = len(result_ids) == len(bodies) and counters.get("max_starts_per_name", 0) <= 1
        console.print(
            "[bold green]demo passed[/]: every request has exactly one result"
            if ok
            else "[bold red]demo failed[/]: some requests have no result (see above)"
        )
        _ = starts
        return 0 if ok else 1
    finally:
        stack.stop()


def _summary(
    console: Console,
    outcomes: Counter[str],
    expected: int,
    got: int,
    duplicates: int,
    counters: dict[str, Any],
) -> None:
    table = Table(title="a2i-worker demo")
    table.add_column("what")
    table.add_column("count", justify="right")
    for outcome, n in sorted(outcomes.items()):
        table.add_row(f"results: {outcome}", str(n))
    table.add_row("messages enqueued", str(expected))
    table.add_row("distinct results", str(got))
    table.add_row("duplicate deliveries (same result_id)", str(duplicates))
    start = counters.get("operations", {}).get("StartHumanLoop", {})
    table.add_row("emulator: StartHumanLoop accepted", str(start.get("accepted", 0)))
    table.add_row("emulator: StartHumanLoop throttled", str(start.get("throttled", 0)))
    table.add_row("emulator: loops created", str(counters.get("loops_total", 0)))
    table.add_row("emulator: max loops per name", str(counters.get("max_starts_per_name", 0)))
    desc = counters.get("operations", {}).get("DescribeHumanLoop", {})
    table.add_row("emulator: DescribeHumanLoop calls", str(desc.get("calls", 0)))
    console.print(table)


def run_local(opts: DemoOptions) -> int:
    console = Console()
    return anyio.run(_run, opts, console)
