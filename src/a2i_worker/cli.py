"""The ``a2i-worker`` command line.

``run`` (the container's entrypoint), ``local`` (embedded stack, optionally with the
demo workload), ``enqueue`` (JSONL → requests queue), ``rules check`` / ``rules
simulate``, ``loops status|stop``. Configuration errors print one line per problem
and exit with status 2.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from pydantic import ValidationError

from a2i_worker.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="a2i-worker",
    help="Send model predictions to Amazon A2I human review at volume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Check and simulate activation rules.", no_args_is_help=True)
loops_app = typer.Typer(help="Inspect and stop the loops of requests.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(loops_app, name="loops")


def _fail(lines: list[str], code: int = 2) -> typer.Exit:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def _load_settings(**overrides: Any) -> Any:
    from a2i_worker.settings import Settings, describe_settings_errors

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _fail(describe_settings_errors(exc)) from None


async def _run_until_signalled(settings: Any) -> None:
    from a2i_worker.worker import run_worker

    stop = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    if not stop.is_set():
                        stop.set()
                    else:  # a second signal: stop now
                        typer.echo("second signal: exiting at once", err=True)
                        tg.cancel_scope.cancel()
                        return

        tg.start_soon(watch_signals, name="signals")
        await run_worker(settings, stop=stop)
        tg.cancel_scope.cancel()


@app.command()
def run() -> None:
    """Run the worker (configured by A2I_WORKER_* and the standard AWS variables)."""
    from a2i_worker.logs import configure_logging

    settings = _load_settings()
    configure_logging(settings.log_format, settings.log_level)
    try:
        anyio.run(_run_until_signalled, settings)
    except ConfigError as exc:
        raise _fail([str(exc)]) from None


@app.command()
def local(
    demo: Annotated[
        bool, typer.Option(help="Run the demo workload, print a summary, exit.")
    ] = False,
    requests: Annotated[int, typer.Option(help="Demo: number of review requests.")] = 200,
    review_seconds: Annotated[
        float, typer.Option(help="Demo: mean simulated reviewer time (seconds).")
    ] = 2.0,
    moto_port: Annotated[int, typer.Option(help="Port for moto (0 = any free port).")] = 0,
    a2i_port: Annotated[int, typer.Option(help="Port for the A2I emulator (0 = any).")] = 0,
) -> None:
    """Start the embedded local stack (moto + A2I emulator) and a worker on it."""
    from a2i_worker.local.demo import DemoOptions, run_local

    opts = DemoOptions(
        demo=demo,
        requests=requests,
        review_seconds=review_seconds,
        moto_port=moto_port,
        a2i_port=a2i_port,
    )
    code = run_local(opts)
    raise typer.Exit(code)


@app.command()
def enqueue(
    source: Annotated[str, typer.Argument(help="A JSONL file of requests, or - for stdin.")],
    queue_url: Annotated[
        str | None, typer.Option(help="Requests queue (default: A2I_WORKER_REQUESTS_QUEUE_URL).")
    ] = None,
) -> None:
    """Send review requests (one JSON object per line) to the requests queue, in batches."""
    import os

    from a2i_worker.enqueue import enqueue_lines

    url = queue_url or os.environ.get("A2I_WORKER_REQUESTS_QUEUE_URL")
    if not url:
        raise _fail(["no queue: pass --queue-url or set A2I_WORKER_REQUESTS_QUEUE_URL"])
    stream = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")  # noqa: SIM115
    try:
        report = anyio.run(enqueue_lines, stream, url)
    finally:
        if stream is not sys.stdin:
            stream.close()
    typer.echo(json.dumps(report))
    raise typer.Exit(0 if report["failed"] == 0 else 1)


@rules_app.command("check")
def rules_check(
    rules_file: Annotated[Path, typer.Argument(help="A rules JSON file.")],
    sample: Annotated[
        list[Path] | None, typer.Option("--sample", help="Prediction JSON file(s) to evaluate.")
    ] = None,
    request_id: Annotated[str, typer.Option(help="request_id used for sampling.")] = "sample",
) -> None:
    """Validate a rules file and explain its decision on sample predictions."""
    from a2i_worker.rules import explain, load_rules_file

    try:
        rules = load_rules_file(rules_file)
    except ConfigError as exc:
        raise _fail([str(exc)]) from None
    typer.echo(f"{rules_file}: valid")
    for path in sample or []:
        try:
            prediction = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail([f"{path}: cannot read a JSON prediction: {exc}"]) from None
        typer.echo(f"\n== {path}")
        typer.echo(explain(rules, prediction, request_id=request_id))


@loops_app.command("status")
def loops_status(request_id: str) -> None:
    """Show what the ledger knows about a request."""
    record = anyio.run(_ledger_get, request_id)
    if record is None:
        raise _fail([f"no request {request_id!r} in the ledger"], code=1)
    typer.echo(json.dumps(record, indent=2, default=str))


@loops_app.command("stop")
def loops_stop(request_id: str) -> None:
    """Stop the human loop of a request (StopHumanLoop); the worker records the outcome."""
    result = anyio.run(_stop_loop, request_id)
    typer.echo(result)


async def _ledger_get(request_id: str) -> dict[str, Any] | None:
    from dataclasses import asdict

    from a2i_worker.aws import AwsClients, AwsClientSettings
    from a2i_worker.ledger.factory import ledger_from_url

    settings = _load_settings()
    async with AwsClients(AwsClientSettings(), services=("dynamodb",)) as aws:
        ledger = ledger_from_url(settings.ledger_url, dynamodb_client=aws.dynamodb)
        await ledger.open()
        try:
            record = await ledger.get(request_id)
        finally:
            await ledger.close()
    if record is None:
        return None
    data = asdict(record)
    data.pop("payload", None)  # may hold the input: never printed
    ctx = data.get("context") or {}
    ctx.pop("prediction", None)
    return data


async def _stop_loop(request_id: str) -> str:
    from a2i_worker.aws import AwsClients, AwsClientSettings
    from a2i_worker.ledger.factory import ledger_from_url

    settings = _load_settings()
    async with AwsClients(
        AwsClientSettings(), services=("dynamodb", "sagemaker-a2i-runtime")
    ) as aws:
        ledger = ledger_from_url(settings.ledger_url, dynamodb_client=aws.dynamodb)
        await ledger.open()
        try:
            record = await ledger.get(request_id)
        finally:
            await ledger.close()
        if record is None or record.loop_name is None:
            raise _fail([f"request {request_id!r} has no loop"], code=1)
        await aws.a2i.stop_human_loop(HumanLoopName=record.loop_name)
        return f"stop requested for {record.loop_name}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
