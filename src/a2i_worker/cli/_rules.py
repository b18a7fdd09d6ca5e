"""``rules check`` and ``rules simulate``: what the rules decide, before they run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from a2i_worker.cli._app import rules_app
from a2i_worker.cli._common import fail
from a2i_worker.errors import ConfigError

__all__ = ["rules_check", "rules_simulate"]


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
        raise fail([str(exc)]) from None
    typer.echo(f"{rules_file}: valid")
    for path in sample or []:
        try:
            prediction = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail([f"{path}: cannot read a JSON prediction: {exc}"]) from None
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
        raise fail([str(exc)]) from None


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
