"""The sweep plot: activation rate (and model errors caught) against the threshold."""

from __future__ import annotations

from pathlib import Path

from a2i_worker.tuning.output import SweepRow
from a2i_worker.tuning.sweep import SweepSpec

__all__ = ["plot_sweep"]


def plot_sweep(
    rows: list[SweepRow],
    spec: SweepSpec,
    out: Path,
    *,
    current: float | None = None,
    title: str | None = None,
) -> None:
    """Write a PNG: activation rate (%) and, where lines are labelled, the share of model
    errors caught (%) against the swept value; ``current`` draws the value in use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r.value for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    try:
        ax.plot(
            xs,
            [100 * r.tally.activation_rate for r in rows],
            marker="o",
            lw=2,
            color="tab:blue",
            label="sent to review (% of requests)",
        )
        caught = [r.tally.errors_caught_share for r in rows]
        if any(c is not None for c in caught):
            ax.plot(
                xs,
                [100 * c if c is not None else float("nan") for c in caught],
                marker="s",
                lw=2,
                color="tab:red",
                label="model errors caught (% of errors)",
            )
        if current is not None:
            ax.axvline(current, color="grey", ls="--", lw=1, label=f"current: {current:g}")
        ax.set_ylim(0, 105)
        ax.set_xlabel(spec.pointer.rsplit("/", 1)[-1] + f"  ({spec.pointer})")
        ax.set_ylabel("percent")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
        n = rows[0].tally.lines if rows else 0
        ax.set_title(title or f"Threshold sweep over {n:,} predictions")
        fig.tight_layout()
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
