"""Running a simulation over a file: streaming, progress bar, reviewed-requests output.

This is the I/O shell around :class:`~a2i_worker.tuning.simulate.Simulation`; the
``rules simulate`` command is a thin wrapper around :func:`run_simulation`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from a2i_worker.rules import RuleSet
from a2i_worker.tuning.errors import SimulationError
from a2i_worker.tuning.output import print_report, sweep_rows, write_sweep_csv
from a2i_worker.tuning.simulate import ErrorSpec, Simulation
from a2i_worker.tuning.sweep import SweepSpec, parse_sweep, sweep_rulesets

__all__ = ["SimulateOptions", "run_simulation"]

_PROGRESS_EVERY = 2_048


@dataclass(frozen=True)
class SimulateOptions:
    """Everything ``rules simulate`` was asked to do."""

    predictions: Path  # Path("-") = stdin
    sweep: str | None = None
    truth: str | None = None
    model: str | None = None
    tolerance: float | None = None
    reviewed_out: Path | None = None
    csv_out: Path | None = None
    plot_out: Path | None = None
    progress: bool = True


def _lines(fh: IO[bytes]) -> Iterator[bytes]:
    yield from fh


def _current_value(rules: RuleSet, spec: SweepSpec) -> float | None:
    node = rules.document
    for token in spec.pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def run_simulation(rules: RuleSet, opts: SimulateOptions, console: Console) -> Simulation:
    """Stream ``opts.predictions`` through ``rules`` (and the sweep), print the report,
    write the requested files. Raises :class:`SimulationError` for bad options or I/O."""
    if (opts.truth is None) != (opts.model is None):
        raise SimulationError("--truth and --model go together (a model error is model != truth)")
    if (opts.csv_out or opts.plot_out) and not opts.sweep:
        raise SimulationError("--csv and --plot describe a sweep: add --sweep PATH=START:STOP:STEP")
    errors = (
        ErrorSpec(opts.truth, opts.model, opts.tolerance)
        if opts.truth is not None and opts.model is not None
        else None
    )
    spec = parse_sweep(opts.sweep) if opts.sweep else None
    variants = (
        [(f"{v:g}", r) for v, r in zip(spec.values, sweep_rulesets(rules, spec), strict=True)]
        if spec
        else []
    )
    sim = Simulation(rules, variants, errors=errors)
    with ExitStack() as stack:
        if str(opts.predictions) == "-":
            fh: IO[bytes] = sys.stdin.buffer
            total: int | None = None
        else:
            try:
                fh = stack.enter_context(opts.predictions.open("rb"))
                total = opts.predictions.stat().st_size
            except OSError as exc:
                raise SimulationError(
                    f"{opts.predictions}: cannot read: {exc.strerror or exc}"
                ) from None
        reviewed: IO[str] | None = None
        if opts.reviewed_out is not None:
            try:
                reviewed = stack.enter_context(opts.reviewed_out.open("w", encoding="utf-8"))
            except OSError as exc:
                raise SimulationError(
                    f"{opts.reviewed_out}: cannot write: {exc.strerror or exc}"
                ) from None
        progress = Progress(
            TextColumn("[bold]simulating"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[lines]:,} lines"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not opts.progress,
        )
        with progress:
            task = progress.add_task("simulate", total=total, lines=0)
            done = 0
            for lineno, raw in enumerate(_lines(fh), start=1):
                done += len(raw)
                res = sim.feed_text(raw, lineno)
                if res is not None and res.activated and reviewed is not None:
                    reviewed.write(
                        json.dumps(
                            {
                                "line": res.lineno,
                                "request_id": res.request_id,
                                "conditions": list(res.fired),
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                if lineno % _PROGRESS_EVERY == 0:
                    progress.update(task, completed=done, lines=lineno)
            progress.update(task, completed=done, lines=sim.tally.lines)
    print_report(console, sim, spec)
    if sim.bad_lines:
        console.print(
            f"[yellow]{sim.bad_lines:,} line(s) were not JSON and were skipped "
            f"(first: {', '.join(map(str, sim.first_bad_lines))})"
        )
    if spec is not None:
        rows = sweep_rows(sim, spec)
        if opts.csv_out is not None:
            write_sweep_csv(rows, opts.csv_out)
            console.print(f"sweep table written to {opts.csv_out}")
        if opts.plot_out is not None:
            from a2i_worker.tuning.plot import plot_sweep

            plot_sweep(rows, spec, opts.plot_out, current=_current_value(rules, spec))
            console.print(f"sweep plot written to {opts.plot_out}")
    return sim
