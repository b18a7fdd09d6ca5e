"""The typer apps of ``a2i-worker`` and its ``--version``."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["app", "dlq_app", "ledger_app", "loops_app", "requests_app", "rules_app"]

app = typer.Typer(
    name="a2i-worker",
    help="Send model predictions to Amazon A2I human review at volume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Check and simulate activation rules.", no_args_is_help=True)
loops_app = typer.Typer(help="Inspect, list and stop the loops of requests.", no_args_is_help=True)
requests_app = typer.Typer(help="What the ledger knows about requests.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and redrive the dead-letter queues.", no_args_is_help=True)
ledger_app = typer.Typer(help="Manage the ledger's storage.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
app.add_typer(loops_app, name="loops")
app.add_typer(requests_app, name="requests")
app.add_typer(dlq_app, name="dlq")
app.add_typer(ledger_app, name="ledger")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"a2i-worker {version('a2i-worker')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Send model predictions to Amazon A2I human review at volume."""
