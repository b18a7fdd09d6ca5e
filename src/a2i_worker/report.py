"""``a2i-worker report``: what reviewers said about the model, from the ledger's results.

Reads the results stored in the ledger (DONE and PUBLISHED records) whose last update
falls in a time window and sums, per route and per activation condition: outcomes,
completed reviews, and model-vs-human agreement (where the route has an ``agreement``
section). These are the numbers a team needs to decide whether a threshold can move:
a condition whose reviews nearly always agree with the model is sending people work
that confirms it.

SQLite reads the file directly; DynamoDB uses a filtered Scan (O(table): a report is
an occasional command, not something to run every minute).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from rich.console import Console
from rich.table import Table

from a2i_worker.ledger.codec import to_micros
from a2i_worker.ledger.protocol import Ledger
from a2i_worker.review_metrics import condition_label

__all__ = ["AgreementCounts", "Summary", "iter_results", "print_summary", "summarize"]


@dataclass
class AgreementCounts:
    """Completed reviews and how they compared with the model."""

    completed: int = 0
    agree: int = 0
    disagree: int = 0
    unknown: int = 0

    @property
    def agreement_rate(self) -> float | None:
        """agree / (agree + disagree); None when nothing was comparable."""
        known = self.agree + self.disagree
        return self.agree / known if known else None

    def add(self, result: dict[str, Any]) -> None:
        self.completed += 1
        agreement = result.get("agreement")
        agrees = agreement.get("agrees") if isinstance(agreement, dict) else None
        if agrees is True:
            self.agree += 1
        elif agrees is False:
            self.disagree += 1
        else:
            self.unknown += 1


@dataclass
class Summary:
    """Per route: outcomes, agreement overall and per fired condition."""

    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    agreement: dict[str, AgreementCounts] = field(default_factory=dict)
    by_condition: dict[tuple[str, str], AgreementCounts] = field(default_factory=dict)
    results: int = 0


def summarize(results: Iterable[dict[str, Any]]) -> Summary:
    """Sum results (ReviewResult JSON) into a :class:`Summary` (pure)."""
    s = Summary()
    for r in results:
        s.results += 1
        route = str(r.get("route") or "(unrouted)")
        s.outcomes.setdefault(route, Counter())[str(r.get("outcome"))] += 1
        if r.get("outcome") != "completed":
            continue
        s.agreement.setdefault(route, AgreementCounts()).add(r)
        reasons = (r.get("activation") or {}).get("reasons") or []
        for cond in sorted({condition_label(x) for x in reasons if isinstance(x, dict)}):
            s.by_condition.setdefault((route, cond), AgreementCounts()).add(r)
    return s


async def iter_results(
    ledger: Ledger, since: datetime, until: datetime
) -> AsyncIterator[dict[str, Any]]:
    """Results of DONE/PUBLISHED records updated in ``[since, until)``."""
    from a2i_worker.ledger.dynamodb import DynamoDbLedger
    from a2i_worker.ledger.dynamodb_table import from_attribute
    from a2i_worker.ledger.sqlite import SqliteLedger

    lo, hi = to_micros(since), to_micros(until)
    if isinstance(ledger, SqliteLedger):
        path = ledger.path

        def read() -> list[str]:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                rows = conn.execute(
                    "SELECT result FROM records WHERE phase IN ('done', 'published') "
                    "AND updated_at >= ? AND updated_at < ? AND result IS NOT NULL",
                    (lo, hi),
                ).fetchall()
            finally:
                conn.close()
            return [str(r[0]) for r in rows]

        for text in await anyio.to_thread.run_sync(read):
            yield json.loads(text)
        return
    if isinstance(ledger, DynamoDbLedger):
        kwargs: dict[str, Any] = {
            "TableName": ledger.table_name,
            "FilterExpression": "#p IN (:d, :pub) AND updated_at BETWEEN :lo AND :hi",
            "ProjectionExpression": "#r, updated_at",
            "ExpressionAttributeNames": {"#p": "phase", "#r": "result"},
            "ExpressionAttributeValues": {
                ":d": {"S": "done"},
                ":pub": {"S": "published"},
                ":lo": {"N": str(lo)},
                ":hi": {"N": str(hi - 1)},
            },
        }
        while True:
            page = await ledger.client.scan(**kwargs)
            for item in page.get("Items", []):
                raw = from_attribute(dict(item["result"])) if "result" in item else None
                if isinstance(raw, str):
                    yield json.loads(raw)
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            kwargs["ExclusiveStartKey"] = start
    raise TypeError(f"cannot report from {type(ledger).__name__}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def print_summary(console: Console, summary: Summary, since: datetime, until: datetime) -> None:
    """Tables of outcomes and agreement per route and per condition."""
    console.print(
        f"results from {since.isoformat(timespec='seconds')} to "
        f"{until.isoformat(timespec='seconds')}: {summary.results:,}"
    )
    out = Table(title="Outcomes by route")
    out.add_column("route")
    kinds = ["completed", "not_activated", "expired", "failed", "stopped", "rejected"]
    for k in kinds:
        out.add_column(k, justify="right")
    for route, c in sorted(summary.outcomes.items()):
        out.add_row(route, *(f"{c.get(k, 0):,}" for k in kinds))
    console.print(out)
    ag = Table(title="Model vs reviewers (completed reviews)")
    for col in ("route", "condition", "completed", "agree", "disagree", "not comparable", "rate"):
        ag.add_column(col, justify="left" if col in ("route", "condition") else "right")
    rows: list[tuple[str, str, AgreementCounts]] = [
        (r, "(all)", a) for r, a in sorted(summary.agreement.items())
    ]
    rows += [(r, c, a) for (r, c), a in sorted(summary.by_condition.items())]
    rows.sort(key=lambda x: (x[0], x[1] != "(all)", x[1]))
    for route, cond, a in rows:
        ag.add_row(
            route,
            cond,
            f"{a.completed:,}",
            f"{a.agree:,}",
            f"{a.disagree:,}",
            f"{a.unknown:,}",
            _pct(a.agreement_rate),
        )
    console.print(ag)
