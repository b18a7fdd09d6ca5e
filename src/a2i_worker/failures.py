"""One way to report a failure a role survives: an AWS or network error is a warning
with its code; anything else is a bug — logged with its traceback and counted in
``a2i_worker_unexpected_errors_total{role}``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from a2i_worker.classify import Classified, ErrorKind, classify

if TYPE_CHECKING:
    from a2i_worker.metrics import Metrics

__all__ = ["report_failure"]


def report_failure(
    bound: Any, exc: BaseException, what: str, *, role: str, metrics: Metrics | None
) -> Classified:
    """Log ``exc`` (raised while doing ``what``) as it deserves; return its class."""
    c = classify(exc)
    if c.kind is ErrorKind.BUG:
        bound.exception(f"unexpected error {what} (a bug)", error=c.code)
        if metrics is not None:
            metrics.unexpected_errors.labels(role=role).inc()
    else:
        bound.warning(f"{what} failed", error=c.code)
    return c
