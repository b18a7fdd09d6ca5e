"""Synthetic, realistic invoice-extraction predictions for trying the tuning tools.

Each line is a record ``{"request_id", "prediction", "truth"}``: the prediction looks
like a custom document model's output (``fields.<name>.{value, confidence}`` and a
``checks.sum_of_line_items`` cross-check); ``truth.total`` is what a reviewer found.
Low-confidence predictions are wrong more often, as with real models, so a confidence
threshold trades reviews against errors caught. Deterministic for a seed.

``python -m a2i_worker.tuning.synth N OUT.jsonl [SEED]`` writes N lines.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["invoice_records", "write_invoice_file"]


def _record(i: int, rng: random.Random) -> dict[str, Any]:
    quality = rng.betavariate(14.0, 1.3)  # mostly confident, with a long low tail
    total = round(rng.lognormvariate(5.0, 1.0), 2)
    wrong = rng.random() < 0.01 + 0.7 * (1.0 - quality) ** 1.3
    predicted = round(total * rng.choice((0.1, 0.9, 1.1, 10.0)), 2) if wrong else total
    fields: dict[str, Any] = {
        name: {
            "value": f"{name}-{i % 97}",
            "confidence": round(min(1.0, max(0.0, quality + rng.gauss(0, 0.04))), 4),
        }
        for name in ("vendor", "invoice_date")
    }
    if rng.random() < 0.01:
        fields["total"] = {"value": None, "confidence": round(quality * 0.5, 4)}
    else:
        fields["total"] = {
            "value": predicted,
            "confidence": round(min(1.0, max(0.0, quality + rng.gauss(0, 0.03))), 4),
        }
    # The cross-check catches some errors only: often the line items were misread too.
    line_sum = predicted if (wrong and rng.random() < 0.7) else total
    return {
        "request_id": f"inv-{i:08d}",
        "prediction": {"fields": fields, "checks": {"sum_of_line_items": line_sum}},
        "truth": {"total": total},
    }


def invoice_records(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` records, deterministic for ``seed``."""
    rng = random.Random(seed)
    for i in range(1, n + 1):
        yield _record(i, rng)


def write_invoice_file(path: Path, n: int, seed: int = 7) -> Path:
    """Write ``n`` records as JSONL to ``path`` (streamed; constant memory)."""
    with path.open("w", encoding="utf-8") as fh:
        for rec in invoice_records(n, seed):
            fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return path


if __name__ == "__main__":  # pragma: no cover - a convenience entry point
    args = sys.argv[1:]
    if len(args) not in (2, 3):
        sys.exit("usage: python -m a2i_worker.tuning.synth N OUT.jsonl [SEED]")
    write_invoice_file(Path(args[1]), int(args[0]), int(args[2]) if len(args) == 3 else 7)
