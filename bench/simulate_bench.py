"""Streaming/memory check of ``a2i-worker rules simulate`` on a large prediction file.

Generates N synthetic invoice records (default 1,000,000; a2i_worker.tuning.synth), then
runs the real CLI in subprocesses: a plain simulation of the first 10% and of the whole
file, and a 10-value sweep on the 10% - recording wall time, lines/s and peak RSS (a
running maximum over the children). Constant memory: the whole file's peak is the
tenth's.

    .venv/bin/python bench/simulate_bench.py [--lines N] [--out bench/results/simulate_bench.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from a2i_worker.tuning.synth import write_invoice_file

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "config" / "rules" / "invoice-confidence.json"
CLI = [sys.executable, "-m", "a2i_worker.cli"]


def _run(args: list[str]) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"simulate failed: {proc.stderr[-2000:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(max(peak_kib, before) / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "simulate_bench.json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "predictions.jsonl"
        t0 = time.perf_counter()
        write_invoice_file(big, a.lines, seed=11)
        gen = time.perf_counter() - t0
        size_mib = big.stat().st_size / 2**20
        part = Path(tmp) / "tenth.jsonl"
        with big.open("rb") as src, part.open("wb") as dst:
            dst.writelines(itertools.islice(src, a.lines // 10))
        # Smaller file first: peak RSS is a running maximum over children, so if the full
        # file's peak equals the tenth's, memory did not grow with the number of lines.
        tenth = _run(["rules", "simulate", str(RULES), "--predictions", str(part), "--no-progress"])
        tenth["lines_per_s"] = round((a.lines // 10) / tenth["wall_s"])
        plain = _run(["rules", "simulate", str(RULES), "--predictions", str(big), "--no-progress"])
        plain["lines_per_s"] = round(a.lines / plain["wall_s"])
        sweep = _run(
            [
                "rules", "simulate", str(RULES), "--predictions", str(part), "--no-progress",
                "--sweep", "/Conditions/0/ConditionParameters/ConfidenceLessThan=0.5:0.95:0.05",
                "--truth", "truth.total", "--model", "prediction.fields.total.value",
                "--csv", str(Path(tmp) / "s.csv"), "--plot", str(Path(tmp) / "s.png"),
            ]
        )  # fmt: skip
        sweep["lines_per_s"] = round((a.lines // 10) / sweep["wall_s"])
    result = {
        "lines": a.lines,
        "file_mib": round(size_mib, 1),
        "generate_s": round(gen, 1),
        "simulate_tenth": tenth,
        "simulate": plain,
        "sweep_10_values_on_10pct": sweep,
        "cpu": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    a.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
