"""``run`` (the container's entrypoint), ``local`` and ``enqueue``."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from a2i_worker.cli._app import app
from a2i_worker.cli._common import config_errors, fail, load_settings, region_problem
from a2i_worker.errors import ConfigError

__all__ = ["SECOND_SIGNAL_GRACE", "enqueue", "local", "run", "startup_problems"]


def startup_problems(settings: Any) -> list[str]:
    """Everything that would stop ``run`` at start-up, one line per problem.

    Checks what can be checked before any network call: the three required queue URLs,
    the routes file and every rules file it names, and that an AWS region is set.
    Each line names the variable, what is wrong and what is allowed.
    """
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
    region = region_problem()
    if region:
        problems.append(region)
    return problems


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

    settings = load_settings()
    problems = startup_problems(settings)
    if problems:
        raise fail(problems)
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
        errors = config_errors(exc)
        if not errors:
            raise
        raise fail([str(e) for e in errors]) from None
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
        raise fail(["--demo runs its own worker; it cannot be combined with --no-worker"])
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
        raise fail(["no queue: pass --queue-url or set A2I_WORKER_REQUESTS_QUEUE_URL"])
    try:
        stream = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise fail([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    problem = region_problem()
    if problem:
        raise fail([problem])
    try:
        report = anyio.run(enqueue_lines, stream, url)
    finally:
        if stream is not sys.stdin:
            stream.close()
    typer.echo(json.dumps(report))
    raise typer.Exit(0 if report["failed"] == 0 else 1)
