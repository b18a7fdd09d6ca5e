"""The ``a2i-worker`` command line.

``run`` (the container's entrypoint), ``local`` (embedded stack, optionally with the
demo workload), ``enqueue`` (JSONL → requests queue), ``rules check`` / ``rules
simulate``, ``loops status|stop``, ``report`` (agreement and budgets). Configuration
errors print one line per problem and exit with status 2.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import typer
from pydantic import ValidationError

from a2i_worker.errors import ConfigError

if TYPE_CHECKING:
    from a2i_worker.aws import AwsClients, ServiceName
    from a2i_worker.ledger.protocol import Ledger

__all__ = ["app", "main", "startup_problems"]

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
    from a2i_worker.envfile import export_env_file_aws_variables
    from a2i_worker.settings import Settings
    from a2i_worker.settings_doc import describe_settings_errors

    export_env_file_aws_variables()
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _fail(describe_settings_errors(exc)) from None


def startup_problems(settings: Any) -> list[str]:
    """Everything that would stop ``run`` at start-up, one line per problem.

    Checks what can be checked before any network call: the three required queue URLs,
    the routes file and every rules file it names, and that an AWS region is set.
    Each line names the variable, what is wrong and what is allowed.
    """
    import os

    from botocore.session import Session as BotocoreSession

    from a2i_worker.aws import resolve_region
    from a2i_worker.routes import load_routes
    from a2i_worker.settings import env_var

    problems: list[str] = []
    for name in ("requests_queue_url", "events_queue_url", "results_queue_url"):
        if getattr(settings, name) is None:
            problems.append(
                f"{env_var(name)} is required for run; allowed: an SQS queue URL "
                "(https://…/account/name)"
            )
    if settings.routes_file is not None:
        try:
            load_routes(settings.routes_file)
        except ConfigError as exc:
            problems.append(f"{env_var('routes_file')}: {exc}")
    if not resolve_region(None, os.environ) and not BotocoreSession().get_config_variable("region"):
        problems.append(
            "AWS_REGION is not set; allowed: an AWS region name such as us-east-1 "
            "(or AWS_DEFAULT_REGION, or the region of AWS_PROFILE)"
        )
    return problems


def _config_errors(exc: BaseException) -> list[ConfigError]:
    """The ConfigErrors inside ``exc`` (task groups wrap them in exception groups)."""
    if isinstance(exc, ConfigError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [e for sub in exc.exceptions for e in _config_errors(sub)]
    return []


#: After a second signal, cleanup (hand back, ledger close) gets this long, then exit.
SECOND_SIGNAL_GRACE = 3.0


async def _run_until_signalled(settings: Any) -> int:
    """Run the worker; the first SIGTERM/SIGINT drains, a second one stops at once.

    Returns the exit status: 0 after a drain, 128 + signal number after a second signal.
    """
    import os
    import threading

    from a2i_worker.worker import run_worker

    stop = anyio.Event()
    status = 0
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            nonlocal status
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    if not stop.is_set():
                        typer.echo(f"{signal.Signals(signum).name}: draining", err=True)
                        stop.set()
                        continue
                    # A second signal: stop now. Cleanup that is shielded (handing
                    # messages back, closing the ledger) gets a short, hard bound.
                    status = 128 + int(signum)
                    typer.echo("second signal: exiting at once", err=True)
                    timer = threading.Timer(SECOND_SIGNAL_GRACE, os._exit, (status,))
                    timer.daemon = True
                    timer.start()
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch_signals, name="signals")
        await run_worker(settings, stop=stop)
        tg.cancel_scope.cancel()
    return status


@app.command()
def run() -> None:
    """Run the worker (configured by A2I_WORKER_* and the standard AWS variables).

    Exit status: 0 after a drain (first SIGTERM/SIGINT), 2 for configuration errors
    (one line per problem on stderr), 128 + signal number after a second signal.
    """
    from a2i_worker.logs import configure_logging
    from a2i_worker.settings import EventLoop
    from a2i_worker.settings_doc import unknown_environment_variables

    settings = _load_settings()
    problems = startup_problems(settings)
    if problems:
        raise _fail(problems)
    configure_logging(settings.log_format, settings.log_level)
    for name in unknown_environment_variables():
        typer.echo(f"warning: {name} is not a setting of a2i-worker (ignored)", err=True)
    try:
        status = anyio.run(
            _run_until_signalled,
            settings,
            backend_options={"use_uvloop": settings.event_loop is EventLoop.UVLOOP},
        )
    except BaseException as exc:
        errors = _config_errors(exc)
        if not errors:
            raise
        raise _fail([str(e) for e in errors]) from None
    raise typer.Exit(status)


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
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run a worker on the stack (--no-worker: the stack only; join it with "
            "A2I_WORKER_ENV_FILE=<env file> a2i-worker run).",
        ),
    ] = True,
    env_file: Annotated[
        Path | None,
        typer.Option(help="Where to write the stack's env file (default: in its directory)."),
    ] = None,
) -> None:
    """Start the embedded local stack (moto + A2I emulator) and, unless --no-worker, a worker."""
    from a2i_worker.local.demo import DemoOptions, run_local

    if demo and not worker:
        raise _fail(["--demo runs its own worker; it cannot be combined with --no-worker"])
    opts = DemoOptions(
        demo=demo,
        requests=requests,
        review_seconds=review_seconds,
        moto_port=moto_port,
        a2i_port=a2i_port,
        worker=worker,
        env_file=env_file,
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
    """Send JSONL requests (a file or - for stdin) in batches of ten; exit 1 if any failed."""
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


@rules_app.command("simulate")
def rules_simulate(
    rules_file: Annotated[
        Path | None, typer.Argument(help="A rules JSON file (or use --routes and --route).")
    ] = None,
    predictions: Annotated[
        Path,
        typer.Option(help="JSONL of predictions (or request_id/prediction records); - = stdin."),
    ] = Path("-"),
    routes_file: Annotated[
        Path | None, typer.Option("--routes", help="A routes file, with --route.")
    ] = None,
    route: Annotated[str | None, typer.Option(help="Route whose rules to simulate.")] = None,
    sweep: Annotated[
        str | None, typer.Option(help="PATH=START:STOP:STEP: vary one threshold (JSON pointer).")
    ] = None,
    truth: Annotated[
        str | None, typer.Option(help="JMESPath (on the line) of the true or human answer.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="JMESPath (on the line) of the model's answer.")
    ] = None,
    tolerance: Annotated[
        float | None, typer.Option(help="Numbers within this agree (model vs truth).")
    ] = None,
    reviewed_out: Annotated[
        Path | None, typer.Option(help="Write the requests that would be reviewed (JSONL).")
    ] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Sweep table as CSV.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Sweep plot as PNG.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Dry-run rules over historical predictions: activation rates, co-occurrence, sweeps."""
    from rich.console import Console

    from a2i_worker.tuning.run import SimulateOptions, run_simulation

    try:
        rules = _simulation_rules(rules_file, routes_file, route)
        opts = SimulateOptions(
            predictions=predictions,
            sweep=sweep,
            truth=truth,
            model=model,
            tolerance=tolerance,
            reviewed_out=reviewed_out,
            csv_out=csv_out,
            plot_out=plot_out,
            progress=progress,
        )
        run_simulation(rules, opts, Console(width=max(100, Console().width)))
    except ConfigError as exc:
        raise _fail([str(exc)]) from None


def _simulation_rules(rules_file: Path | None, routes_file: Path | None, route: str | None) -> Any:
    from a2i_worker.routes import load_routes
    from a2i_worker.rules import load_rules_file

    if (rules_file is None) == (routes_file is None):
        raise ConfigError("give either a RULES file or --routes FILE --route NAME")
    if rules_file is not None:
        return load_rules_file(rules_file)
    assert routes_file is not None
    routes = load_routes(routes_file)
    if route is None or route not in routes:
        raise ConfigError(
            f"{routes_file}: --route must name one of: {', '.join(routes) or 'none configured'}"
        )
    found = routes[route].rules
    if found is None:
        raise ConfigError(
            f"{routes_file}: route {route!r} has no rules (every request is reviewed)"
        )
    return found


@loops_app.command("status")
def loops_status(request_id: str) -> None:
    """Show what the ledger knows about a request (never its input, prediction or answers)."""
    record = anyio.run(_ledger_get, request_id)
    if record is None:
        raise _fail([f"no request {request_id!r} in the ledger"], code=1)
    typer.echo(json.dumps(record, indent=2, default=str))


@loops_app.command("stop")
def loops_stop(request_id: str) -> None:
    """Stop the human loop of a request (StopHumanLoop); the worker then publishes `stopped`."""
    result = anyio.run(_stop_loop, request_id)
    typer.echo(result)


def _quiet_settings() -> Any:
    """Settings for the one-shot commands: logs only warnings, on stderr (stdout is output)."""
    from a2i_worker.logs import configure_logging

    settings = _load_settings()
    configure_logging(settings.log_format, "WARNING")
    return settings


@asynccontextmanager
async def _open_ledger(
    settings: Any, services: tuple[ServiceName, ...] = ("dynamodb",)
) -> AsyncIterator[tuple[Ledger, AwsClients]]:
    """The configured ledger, opened, with the AWS clients it (and the caller) needs."""
    from a2i_worker.aws import AwsClients, AwsClientSettings
    from a2i_worker.ledger.factory import ledger_from_url

    async with AwsClients(AwsClientSettings(), services=services) as aws:
        ledger = ledger_from_url(settings.ledger_url, dynamodb_client=aws.dynamodb)
        await ledger.open()
        try:
            yield ledger, aws
        finally:
            await ledger.close()


async def _ledger_get(request_id: str) -> dict[str, Any] | None:
    from dataclasses import asdict

    async with _open_ledger(_quiet_settings()) as (ledger, _):
        record = await ledger.get(request_id)
    if record is None:
        return None
    return _redacted(asdict(record))


def _redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A ledger record without the input, the prediction or the human answers."""
    data.pop("payload", None)  # may hold the input: never printed
    ctx = data.get("context") or {}
    ctx.pop("prediction", None)
    result = data.get("result")
    if isinstance(result, dict):
        result.pop("prediction", None)
        answers = result.pop("human_answers", None)
        if isinstance(answers, list):
            result["human_answers_count"] = len(answers)
    return data


async def _stop_loop(request_id: str) -> str:
    services: tuple[ServiceName, ...] = ("dynamodb", "sagemaker-a2i-runtime")
    async with _open_ledger(_quiet_settings(), services) as (ledger, aws):
        record = await ledger.get(request_id)
        if record is None or record.loop_name is None:
            raise _fail([f"request {request_id!r} has no loop"], code=1)
        await aws.a2i.stop_human_loop(HumanLoopName=record.loop_name)
        return f"stop requested for {record.loop_name}"


@app.command()
def report(
    hours: Annotated[float, typer.Option(help="Report the last N hours of results.")] = 24.0,
) -> None:
    """Outcomes, model-vs-reviewer agreement per route and condition, and budget usage."""
    from rich.console import Console

    try:
        anyio.run(_report, hours, Console(width=max(100, Console().width)))
    except ConfigError as exc:
        raise _fail([str(exc)]) from None


async def _report(hours: float, console: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from a2i_worker.budget import windows
    from a2i_worker.budget_store import budget_store_for
    from a2i_worker.report import iter_results, print_summary, summarize
    from a2i_worker.routes import load_routes

    settings = _load_settings()
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    async with _open_ledger(settings) as (ledger, _):
        results = [r async for r in iter_results(ledger, since, until)]
        print_summary(console, summarize(results), since, until)
        routes = load_routes(settings.routes_file) if settings.routes_file else {}
        store = budget_store_for(ledger)
        for name, route in routes.items():
            if route.budget is None:
                continue
            wins = windows(name, route.budget, until)
            used = await store.usage([w.key for w in wins])
            parts = [f"{w.kind} {used[w.key]:,}/{w.limit:,}" for w in wins]
            console.print(f"budget {name} ({route.budget.policy.value}): {', '.join(parts)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
