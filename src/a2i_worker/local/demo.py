"""``a2i-worker local``: the embedded stack, a worker on it, and (``--demo``) a workload.

Every mode provisions queues, bucket, EventBridge rule and a flow definition (through
SageMaker's CreateFlowDefinition on the emulator) on a stack with ephemeral ports, and
writes its routes, ledger and env file into a fresh directory
(:mod:`a2i_worker.local.workspace`); ``--no-worker`` then serves the stack alone, for
``A2I_WORKER_ENV_FILE=<env file> a2i-worker run`` in another shell.

The demo configures simulated reviewers who read the model's total and correct some of
them, enqueues a mix of invoice predictions (confident, unsure, missing fields, and a few
malformed messages), runs a real worker against it all over HTTP, follows the results
queue with a progress bar, and prints a summary judged by the emulator's counters and the
model-vs-reviewer agreement of the results. Exit status 0 only if every request ended in
exactly one result and no loop was started twice.
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
    worker: bool = True
    """False (``--no-worker``): the stack only; workers join it through the env file."""
    env_file: Path | None = None
    """Where to write the env file (default: ``local.env`` in the stack's directory)."""


DEMO_REVIEWERS: dict[str, Any] = {
    "mode": "auto",
    "outcomes": {"Completed": 0.9, "Expired": 0.05, "InternalError": 0.05},
    "answers": {
        # reviewers read the model's total and correct about one in six of them
        "template": {"is_correct": True},
        "copy": {"total": "predicted_total"},
        "perturb": {"total": {"p": 0.15, "relative": 0.1}},
        "flip": {"is_correct": 0.2},
    },
}


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


async def _serve_until_signalled(settings: Any, run_worker: Any) -> None:
    """Run a worker (``settings``) or, with ``None``, nothing, until SIGINT/SIGTERM."""
    stop = anyio.Event()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:
            if settings is not None:
                tg.start_soon(lambda: run_worker(settings, stop=stop))
            async for _ in signals:
                stop.set()  # the worker drains and returns; with none, nothing is left
                break


async def _run(opts: DemoOptions, console: Console) -> int:
    from a2i_emulator.control import EmulatorControl
    from a2i_worker.local.processes import free_port
    from a2i_worker.local.stack import LocalStack
    from a2i_worker.local.workspace import write_workspace
    from a2i_worker.logs import configure_logging
    from a2i_worker.settings import Settings
    from a2i_worker.worker import run_worker

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
        space = write_workspace(workdir, env, health_port=free_port(), env_file=opts.env_file)
        os.environ.update(env.env())
        settings = Settings(
            routes_file=str(space.routes_file),
            ledger_url=space.ledger_url,
            receive_wait_seconds=1,
            sweep_interval_seconds=5,
            overdue_after_seconds=max(10, int(opts.review_seconds * 5)),
            shutdown_grace_seconds=10,
            health_port=0,
            health_host="127.0.0.1",
        )
        console.print(f"[bold]local stack[/]: moto {stack.moto_url} · A2I emulator {stack.a2i_url}")
        console.print(f"requests queue: {env.requests_queue_url}")
        console.print(f"flow definition: {env.flow_definition_arn}")
        console.print(f"ledger: {space.ledger_url}   routes: {space.routes_file}")
        async with EmulatorControl(stack.a2i_url) as control:
            await control.put_reviewers(
                {**DEMO_REVIEWERS, "delay": {"distribution": "exponential",
                                             "mean": opts.review_seconds}}
            )  # fmt: skip
            if not opts.demo:
                console.print(
                    f"env file: {space.env_file}\n"
                    f"a worker of its own: [bold]A2I_WORKER_ENV_FILE={space.env_file} "
                    "a2i-worker run[/]\n"
                    f"other shells: [bold]set -a; . {space.env_file}; set +a[/], then e.g. "
                    f"[bold]a2i-worker enqueue requests.jsonl[/]; emulator control API: "
                    f"{stack.a2i_url}/_emulator/counters"
                )
                if opts.worker:
                    console.print("worker running on the local stack; Ctrl-C to stop")
                else:
                    console.print("stack only (--no-worker); Ctrl-C to stop")
                await _serve_until_signalled(settings if opts.worker else None, run_worker)
                return 0
            return await _demo(opts, console, env, settings, control)
    finally:
        stack.stop()


async def _demo(opts: DemoOptions, console: Console, env: Any, settings: Any, control: Any) -> int:
    from a2i_worker.aws import AwsClients, AwsClientSettings
    from a2i_worker.enqueue import send_batches
    from a2i_worker.worker import Worker, WorkerHooks, run_worker

    bodies = demo_requests(opts.requests, seed=opts.seed, malformed=opts.malformed)
    ready = anyio.Event()
    stop = anyio.Event()
    holder: dict[str, Worker] = {}

    def on_ready(worker: Worker) -> None:
        holder["worker"] = worker
        ready.set()

    outcomes: Counter[str] = Counter()
    results: dict[str, dict[str, Any]] = {}
    duplicates = 0
    async with (
        AwsClients(AwsClientSettings(), services=("sqs",)) as aws,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(lambda: run_worker(settings, stop=stop, hooks=WorkerHooks(on_ready=on_ready)))
        with anyio.fail_after(60):
            await ready.wait()
        await send_batches(aws.sqs_no_retries, env.requests_queue_url, bodies)
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
                while len(results) < len(bodies):
                    resp = await aws.sqs.receive_message(
                        QueueUrl=env.results_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                    )
                    msgs = resp.get("Messages", [])
                    for m in msgs:
                        res = json.loads(m["Body"])
                        if res["result_id"] in results:
                            duplicates += 1
                            continue
                        results[res["result_id"]] = res
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
                        completed=len(results),
                        detail=" ".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
                    )
        stop.set()
    counters = await control.counters()
    _summary(console, outcomes, len(bodies), len(results), duplicates, counters)
    _agreement(console, list(results.values()))
    ok = len(results) == len(bodies) and counters.get("max_starts_per_name", 0) <= 1
    console.print(
        "[bold green]demo passed[/]: every request has exactly one result"
        if ok
        else "[bold red]demo failed[/]: some requests have no result (see above)"
    )
    return 0 if ok else 1


def _agreement(console: Console, results: list[dict[str, Any]]) -> None:
    """Model vs reviewers, from the results' agreement (the reviewers' real answers)."""
    from a2i_worker.report import summarize

    summary = summarize(results)
    table = Table(title="model vs reviewers (completed reviews)")
    for col in ("route", "condition", "completed", "agree", "disagree", "not comparable", "rate"):
        table.add_column(col, justify="left" if col in ("route", "condition") else "right")
    rows = [(r, "(all)", a) for r, a in sorted(summary.agreement.items())]
    rows += [(r, c, a) for (r, c), a in sorted(summary.by_condition.items())]
    for route, cond, a in rows:
        rate = a.agreement_rate
        table.add_row(
            route,
            cond,
            str(a.completed),
            str(a.agree),
            str(a.disagree),
            str(a.unknown),
            "-" if rate is None else f"{100 * rate:.1f}%",
        )
    console.print(table)


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
