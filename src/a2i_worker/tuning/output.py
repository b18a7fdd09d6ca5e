"""What a simulation reports: rows for tables and CSV, and their rich rendering."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.table import Table

from a2i_worker.tuning.simulate import Simulation, Tally
from a2i_worker.tuning.sweep import SweepSpec

__all__ = [
    "SWEEP_CSV_COLUMNS",
    "SweepRow",
    "cooccurrence",
    "print_report",
    "sweep_rows",
    "write_sweep_csv",
]

SWEEP_CSV_COLUMNS = (
    "value",
    "lines",
    "activated",
    "activation_rate",
    "labelled",
    "model_errors",
    "errors_caught",
    "errors_caught_share",
    "review_precision",
)


@dataclass(frozen=True)
class SweepRow:
    """One sweep setting's numbers (shares are 0..1, None when undefined)."""

    value: float
    tally: Tally

    def as_csv(self) -> list[str]:
        t = self.tally
        return [
            f"{self.value:g}",
            str(t.lines),
            str(t.activated),
            f"{t.activation_rate:.6f}",
            str(t.labelled),
            str(t.errors),
            str(t.errors_caught),
            "" if t.errors_caught_share is None else f"{t.errors_caught_share:.6f}",
            "" if t.review_precision is None else f"{t.review_precision:.6f}",
        ]


def sweep_rows(sim: Simulation, spec: SweepSpec) -> list[SweepRow]:
    """The sweep's rows in value order (the simulation's variants, built from ``spec``)."""
    return [SweepRow(v, t) for v, (_, t) in zip(spec.values, sim.variants, strict=True)]


def write_sweep_csv(rows: list[SweepRow], out: Path | IO[str]) -> None:
    """CSV with :data:`SWEEP_CSV_COLUMNS` as header, one row per setting."""
    if isinstance(out, Path):
        with out.open("w", encoding="utf-8", newline="") as fh:
            write_sweep_csv(rows, fh)
        return
    writer = csv.writer(out)
    writer.writerow(SWEEP_CSV_COLUMNS)
    for row in rows:
        writer.writerow(row.as_csv())


def cooccurrence(sim: Simulation) -> list[list[int]]:
    """Square matrix over the base rules' simple conditions (document order): cell
    (i, j) counts lines on which both fired; the diagonal counts each one firing."""
    paths = list(sim.conditions)
    index = {p: i for i, p in enumerate(paths)}
    matrix = [[0] * len(paths) for _ in paths]
    for p, n in sim.tally.by_condition.items():
        if p in index:
            matrix[index[p]][index[p]] = n
    for (a, b), n in sim.tally.pairs.items():
        if a in index and b in index:
            matrix[index[a]][index[b]] += n
            matrix[index[b]][index[a]] += n
    return matrix


def _pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:.2f}%" if den else "-"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.2f}%"


def print_report(
    console: Console,
    sim: Simulation,
    spec: SweepSpec | None = None,
    *,
    top_combinations: int = 10,
) -> None:
    """Overall and per-condition activation, co-occurrence, combinations, and the sweep."""
    t = sim.tally
    console.print(
        f"lines evaluated: {t.lines:,}   would be reviewed: {t.activated:,} "
        f"({_pct(t.activated, t.lines)})"
        + (f"   not JSON (skipped): {sim.bad_lines:,}" if sim.bad_lines else "")
    )
    if sim.errors is not None:
        console.print(
            f"labelled: {t.labelled:,}   model errors: {t.errors:,}   "
            f"caught by review: {t.errors_caught:,} ({_share(t.errors_caught_share)})   "
            f"reviews that were errors: {_share(t.review_precision)}"
        )
    paths = list(sim.conditions)
    table = Table(title="Activation by condition")
    for col in ("condition", "type", "fired", "share of lines", "share of reviews"):
        table.add_column(col, justify="left" if col in ("condition", "type") else "right")
    for p in paths:
        n = t.by_condition.get(p, 0)
        table.add_row(p, sim.conditions[p], f"{n:,}", _pct(n, t.lines), _pct(n, t.activated))
    console.print(table)
    if len(paths) > 1:
        matrix = cooccurrence(sim)
        co = Table(title="Fired together (lines where both fired; diagonal: fired at all)")
        co.add_column("")
        for i in range(len(paths)):
            co.add_column(f"#{i}", justify="right")
        for i, p in enumerate(paths):
            co.add_row(f"#{i} {p}", *(f"{v:,}" for v in matrix[i]))
        console.print(co)
        combos = Table(title=f"Most frequent combinations (top {top_combinations})")
        combos.add_column("conditions that fired")
        combos.add_column("lines", justify="right")
        combos.add_column("share of reviews", justify="right")
        for combo, n in t.combinations.most_common(top_combinations):
            combos.add_row(" + ".join(combo), f"{n:,}", _pct(n, t.activated))
        console.print(combos)
    if spec is not None:
        sweep = Table(title=f"Sweep of {spec.pointer}")
        for col in ("value", "reviewed", "activation rate"):
            sweep.add_column(col, justify="right")
        if sim.errors is not None:
            sweep.add_column("model errors caught", justify="right")
            sweep.add_column("reviews that were errors", justify="right")
        for row in sweep_rows(sim, spec):
            cells = [
                f"{row.value:g}",
                f"{row.tally.activated:,}",
                _pct(row.tally.activated, row.tally.lines),
            ]
            if sim.errors is not None:
                cells += [_share(row.tally.errors_caught_share), _share(row.tally.review_precision)]
            sweep.add_row(*cells)
        console.print(sweep)
