"""Limiter vs botocore ``adaptive`` in one run, on simulated time (bench/limsim.py).

Issue 15's scenarios, each for both contenders with the same seeds and latencies:

- ``steady_R{5,50,200}``: a backlog against a bucket of burst = R, **full at the start**;
- ``full_R{50,200}_b2``: the same with burst = 2R (the bucket hides two seconds of quota);
- ``step``: 100 -> 50 (t=20 s) -> 200 (t=40 s), bursts = R;
- ``idle_{300,7200}``: bursts of 300 requests at R=50 separated by idle spells of 5 min
  and 2 h (the bucket refills during each; the limiter's clock sees the whole gap).

Judged over the **whole run** (the first second included): goodput / R, throttled
fraction and its ratio to adaptive's, seconds to the first whole second with >= 0.9 R
after the start and after each step; for the idle scenarios, throttles per burst, the
slowest burst and any exception in the rate arithmetic.

Run: ``.venv/bin/python bench/limiter_sim_bench.py`` (~20 s); writes
``bench/results/limiter_sim.json``. ``--seeds``, ``--latencies`` (seconds, one way and
back), ``--callers``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from a2i_worker.limiting.rate import RateParams
from limsim import Adaptive, Contender, Limiter, Run, simulate

__all__ = ["SCENARIOS", "Scenario", "main", "summarize"]

_RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Scenario:
    name: str
    schedule: tuple[tuple[float, float, float], ...]  # (t, rate, burst)
    duration: float
    arrivals: tuple[tuple[float, int], ...] | None = None

    def rate_at(self, t: float) -> float:
        rate = self.schedule[0][1]
        for at, r, _ in self.schedule:
            if at <= t:
                rate = r
        return rate

    def reference(self) -> float:
        """The quota integrated over the run, per second."""
        return sum(self.rate_at(t + 0.5) for t in range(int(self.duration))) / int(self.duration)


def _bursts(gap: float) -> tuple[tuple[float, int], ...]:
    return tuple((k * (gap + 20.0), 300) for k in range(4))


SCENARIOS = (
    Scenario("steady_R5", ((0.0, 5.0, 5.0),), 40.0),
    Scenario("steady_R50", ((0.0, 50.0, 50.0),), 40.0),
    Scenario("steady_R200", ((0.0, 200.0, 200.0),), 40.0),
    Scenario("full_R50_b2", ((0.0, 50.0, 100.0),), 40.0),
    Scenario("full_R200_b2", ((0.0, 200.0, 400.0),), 40.0),
    Scenario("step", ((0.0, 100.0, 100.0), (20.0, 50.0, 50.0), (40.0, 200.0, 200.0)), 60.0),
    Scenario("idle_300", ((0.0, 50.0, 50.0),), 3 * 320.0 + 30.0, _bursts(300.0)),
    Scenario("idle_7200", ((0.0, 50.0, 50.0),), 3 * 7220.0 + 30.0, _bursts(7200.0)),
)


def _contender(name: str, seed: int) -> Contender:
    if name == "limiter":
        return Limiter(RateParams(initial=10.0), seed)  # the worker's start_rate_initial
    return Adaptive(seed)


def _to_good_second(run: Run, at: float, rate: float, within: float = 10.0) -> float | None:
    """Seconds from ``at`` to the end of the first whole second after it with >= 0.9 R."""
    first = int(at) if at == int(at) else int(at) + 1
    for s in range(first, min(len(run.accepted), int(at + within))):
        if run.accepted[s] >= 0.9 * rate:
            return s + 1 - at
    return None


def summarize(sc: Scenario, run: Run) -> dict[str, Any]:
    end = int(sc.duration)
    accepted, throttled = sum(run.accepted[:end]), sum(run.throttled[:end])
    out: dict[str, Any] = {
        "accepted": accepted,
        "throttled": throttled,
        "throttled_fraction": throttled / max(1, accepted + throttled),
        "errors": run.errors,
    }
    if sc.arrivals is None:
        out["goodput_over_R"] = accepted / sc.duration / sc.reference()
        steps = [(0.0, sc.schedule[0][1])] + [(at, r) for at, r, _ in sc.schedule[1:]]
        out["to_0.9R_s"] = [_to_good_second(run, at, r) for at, r in steps]
    else:
        per_burst = []
        for at, _ in sc.arrivals:
            s = int(at)
            per_burst.append(sum(run.throttled[s : s + 20]))
        out["throttled_per_burst"] = per_burst
        out["served"] = len(run.finished_at)
        out["slowest_request_s"] = round(max(run.finished_at, default=0.0), 2)
    return out


def _pooled(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    acc = sum(r["accepted"] for r in rows)
    thr = sum(r["throttled"] for r in rows)
    out: dict[str, Any] = {"throttled_fraction": thr / max(1, acc + thr), "throttled": thr}
    if "goodput_over_R" in rows[0]:
        out["goodput_over_R_min"] = min(r["goodput_over_R"] for r in rows)
        worst: list[float | None] = []
        for i in range(len(rows[0]["to_0.9R_s"])):
            values = [r["to_0.9R_s"][i] for r in rows]
            worst.append(None if None in values else max(v for v in values if v is not None))
        out["to_0.9R_s_worst"] = worst
    else:
        out["throttled_per_burst_max"] = max(max(r["throttled_per_burst"]) for r in rows)
        out["slowest_request_s"] = max(r["slowest_request_s"] for r in rows)
        out["errors"] = sorted({e for r in rows for e in r["errors"]})
    return out


def run_all(seeds: Sequence[int], latencies: Sequence[float], callers: int) -> list[dict[str, Any]]:
    results = []
    for sc in SCENARIOS:
        for latency in latencies:
            entry: dict[str, Any] = {"scenario": sc.name, "latency_s": latency}
            for name in ("limiter", "adaptive"):
                rows = []
                for seed in seeds:
                    run = simulate(
                        _contender(name, seed),
                        sc.schedule,
                        sc.duration,
                        callers=callers,
                        latency=latency,
                        seed=seed,
                        arrivals=sc.arrivals,
                    )
                    rows.append(summarize(sc, run))
                entry[name] = {"pooled": _pooled(rows), "runs": rows}
            ours, theirs = entry["limiter"]["pooled"], entry["adaptive"]["pooled"]
            entry["throttled_ratio_to_adaptive"] = ours["throttled_fraction"] / max(
                1e-12, theirs["throttled_fraction"]
            )
            results.append(entry)
    return results


def check(results: Sequence[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Issue 15's targets for the limiter, per scenario and latency."""
    checks = []
    for e in results:
        ours = e["limiter"]["pooled"]
        tag = f"{e['scenario']} @ {1000 * e['latency_s']:.0f} ms"
        if "goodput_over_R_min" in ours:
            g = ours["goodput_over_R_min"]
            checks.append((f"{tag}: goodput >= 0.97 R", g >= 0.97, f"{g:.3f}"))
            times = ours["to_0.9R_s_worst"]
            ok = all(t is not None and t <= 2.0 for t in times)
            checks.append((f"{tag}: >= 0.9 R within 2 s of start and steps", ok, str(times)))
        ratio = e["throttled_ratio_to_adaptive"]
        checks.append(
            (
                f"{tag}: throttled <= 1/2 of adaptive's",
                ratio <= 0.5,
                f"{100 * ours['throttled_fraction']:.2f} % vs "
                f"{100 * e['adaptive']['pooled']['throttled_fraction']:.2f} % ({ratio:.2f})",
            )
        )
        if "errors" in ours:
            checks.append((f"{tag}: no exception after idle", not ours["errors"], ""))
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--latencies", type=float, nargs="*", default=[0.005, 0.01, 0.03])
    ap.add_argument("--callers", type=int, default=32)
    ap.add_argument("--out", type=Path, default=_RESULTS / "limiter_sim.json")
    args = ap.parse_args(argv)
    started = time.monotonic()
    results = run_all(args.seeds, args.latencies, args.callers)
    checks = check(results)
    for e in results:
        ours, theirs = e["limiter"]["pooled"], e["adaptive"]["pooled"]
        extra = ""
        if "goodput_over_R_min" in ours:
            extra = (
                f"goodput {ours['goodput_over_R_min']:.3f} vs {theirs['goodput_over_R_min']:.3f}"
                f"  to 0.9R {ours['to_0.9R_s_worst']} vs {theirs['to_0.9R_s_worst']}"
            )
        else:
            extra = (
                f"max throttles/burst {ours['throttled_per_burst_max']} vs "
                f"{theirs['throttled_per_burst_max']}"
            )
        print(
            f"{e['scenario']:13} {1000 * e['latency_s']:3.0f} ms  throttled "
            f"{100 * ours['throttled_fraction']:5.2f} % vs "
            f"{100 * theirs['throttled_fraction']:5.2f} % "
            f"({e['throttled_ratio_to_adaptive']:.2f})  {extra}"
        )
    print()
    for what, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}")
    elapsed = time.monotonic() - started
    passed = sum(ok for _, ok, _ in checks)
    print(f"\n{passed}/{len(checks)} targets in {elapsed:.1f} s; JSON: {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "seeds": args.seeds,
        "latencies_s": args.latencies,
        "callers": args.callers,
        "elapsed_s": round(elapsed, 1),
        "load_average_at_end": list(os.getloadavg()),
        "targets": [{"target": w, "pass": ok, "measured": d} for w, ok, d in checks],
        "results": results,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
