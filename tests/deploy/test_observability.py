"""deploy/observability: the Grafana dashboard and the Prometheus alert rules name only
metrics the worker really exports, and every alert points at a runbook section.

The exported names come from the worker's own registry (:class:`Metrics`, with its
process and platform collectors), expanded the way the text format names samples
(``_total`` for counters; ``_bucket``, ``_sum``, ``_count`` for histograms).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps

from a2i_worker.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
OBS = REPO / "deploy" / "observability"
#: Series Prometheus itself makes (scrape health), not the worker.
PROMETHEUS_OWN = {"up"}
_NAME = re.compile(r"\b((?:a2i_worker|process|python)_[a-z0-9_]+|up)\b(?!\s*\()")


def exported() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("_sum", "_count"),
        }.get(family.type, ("",))
        names.update(family.name + s for s in suffixes)
    return names


def _names(expr: str) -> set[str]:
    return set(_NAME.findall(re.sub(r'"[^"]*"', '""', expr)))


def _balanced(expr: str) -> bool:
    depth = 0
    for ch in expr:
        depth += {"(": 1, ")": -1, "[": 1, "]": -1, "{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load((OBS / "alerts.yaml").read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_name_exported_metrics_and_a_runbook_section() -> None:
    known = exported() | PROMETHEUS_OWN
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
        for h in re.findall(r"^### (.+)$", (REPO / "docs" / "operations.md").read_text(), re.M)
    }
    rules = _alerts()
    assert {r["alert"] for r in rules} >= {
        "A2IWorkerResultBacklog",
        "A2IWorkerStuckLoops",
        "A2IWorkerDLQGrowing",
        "A2IWorkerThrottled",
        "A2IWorkerNotReady",
    }
    for rule in rules:
        expr = str(rule["expr"])
        assert _balanced(expr), rule["alert"]
        used = _names(expr)
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)
        runbook = str(rule["annotations"]["runbook"])  # type: ignore[index]
        assert runbook.split("#")[1] in anchors, (rule["alert"], runbook)


def test_dashboard_panels_name_exported_metrics() -> None:
    dash = json.loads((OBS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    known = exported()
    for expr in exprs:
        assert _balanced(expr), expr
        used = _names(expr)
        assert used, expr
        assert used <= known, (expr, used - known)
    assert {"a2i_worker_open_loops", "a2i_worker_review_duration_seconds_bucket"} <= {
        n for e in exprs for n in _names(e)
    }
