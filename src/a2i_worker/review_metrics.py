"""Budget and agreement metrics, on the worker's registry (:class:`a2i_worker.metrics.Metrics`).

Labels are closed sets: configured route names, window kinds, policies, and condition
paths/types from the configured rules — never request ids, inputs or answers.
"""

from __future__ import annotations

import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from a2i_worker.metrics import Metrics

__all__ = ["ReviewMetrics", "review_metrics"]

_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, ReviewMetrics] = (
    weakref.WeakKeyDictionary()
)


class ReviewMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.budget_used = Gauge(
            "a2i_worker_budget_used",
            "Loops counted in the route's current budget window",
            ["route", "window"],
            registry=r,
        )
        self.budget_limit = Gauge(
            "a2i_worker_budget_limit",
            "The route's budget per window",
            ["route", "window"],
            registry=r,
        )
        self.budget_spent = Counter(
            "a2i_worker_budget_spent",
            "Activated requests that met a spent budget, by what was done (defer, "
            "not_activated, reject, start = an 'always' condition fired)",
            ["route", "action"],
            registry=r,
        )
        self.agreement = Counter(
            "a2i_worker_agreement",
            "Completed reviews compared with the model: result is agree, disagree or unknown",
            ["route", "result"],
            registry=r,
        )
        self.agreement_by_condition = Counter(
            "a2i_worker_agreement_by_condition",
            "Completed reviews compared with the model, per activation condition that fired",
            ["route", "condition", "result"],
            registry=r,
        )

    def observe_result(self, result: dict[str, Any]) -> None:
        """Count a completed result's agreement (if the route compares), per condition."""
        if result.get("outcome") != "completed" or not isinstance(result.get("agreement"), dict):
            return
        agrees = result["agreement"].get("agrees")
        label = "unknown" if agrees is None else ("agree" if agrees else "disagree")
        route = str(result.get("route") or "(unrouted)")
        self.agreement.labels(route=route, result=label).inc()
        reasons = (result.get("activation") or {}).get("reasons") or []
        for cond in {condition_label(r) for r in reasons if isinstance(r, dict)}:
            self.agreement_by_condition.labels(route=route, condition=cond, result=label).inc()


def condition_label(reason: dict[str, Any]) -> str:
    """``Conditions[0] ConfidenceCheck``: a fired condition as a metric/report label."""
    return f"{reason.get('path') or '-'} {reason.get('condition_type') or '?'}".strip()


def review_metrics(metrics: Metrics) -> ReviewMetrics:
    """The budget/agreement metrics on ``metrics``' registry (created once per registry)."""
    found = _BY_REGISTRY.get(metrics.registry)
    if found is None:
        found = _BY_REGISTRY[metrics.registry] = ReviewMetrics(metrics.registry)
    return found
