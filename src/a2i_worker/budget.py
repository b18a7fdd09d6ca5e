"""Review budgets (pure): counter windows, what a spent budget means, how long to defer.

A route's ``[routes.X.budget]`` caps the loops it starts per clock hour and/or per UTC
day. Each window is one counter in the ledger (:meth:`Ledger.take_budget`), keyed by
route, kind and window start, so the cap holds across restarts and replicas. Before a
loop is started the worker takes one unit from every window of the route at once (all
or nothing); when a window is full the route's policy decides:

- ``defer``: the message goes back to SQS, invisible until the fullest window ends
  (capped at SQS's 12 h); nothing is lost and the worker does not spin.
- ``sample``: only requests on which a condition listed in ``always`` fired still start
  a loop (counted, even beyond the cap); the others become ``not_activated`` with
  reason ``"budget"``.
- ``reject``: a ``rejected`` result with code ``budget_exhausted``.

Counter keys start with ``\\x1f`` (a control character), so they can never collide with a
request id (request ids are printable).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from a2i_worker.routes import Budget, BudgetPolicy

__all__ = [
    "MAX_DEFER_SECONDS",
    "BudgetAction",
    "BudgetWindow",
    "budget_action",
    "defer_seconds",
    "fired_always",
    "pointer_to_path",
    "windows",
]

#: SQS's maximum visibility timeout.
#: SQS allows a message 12 h of visibility timeout in total from its receipt; keep a margin.
MAX_DEFER_SECONDS = 12 * 3600 - 300
#: Counter rows outlive their window by this much (for ``budget status`` of the past).
KEEP_COUNTERS = timedelta(days=2)

_KEY_PREFIX = "\x1fbudget|"


@dataclass(frozen=True)
class BudgetWindow:
    """One counter: ``limit`` loops for ``route`` from ``start`` until ``end``."""

    route: str
    kind: str  # "hour" | "day"
    start: datetime
    end: datetime
    limit: int

    @property
    def key(self) -> str:
        """The ledger key of this window's counter."""
        return f"{_KEY_PREFIX}{self.route}|{self.kind}|{self.start.strftime('%Y-%m-%dT%H')}"

    @property
    def expires_at(self) -> datetime:
        """When the counter may be deleted (TTL)."""
        return self.end + KEEP_COUNTERS


def windows(route: str, budget: Budget, now: datetime) -> list[BudgetWindow]:
    """The route's current windows (hour first), for an aware ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    out: list[BudgetWindow] = []
    if budget.per_hour is not None:
        start = now.replace(minute=0, second=0, microsecond=0)
        out.append(BudgetWindow(route, "hour", start, start + timedelta(hours=1), budget.per_hour))
    if budget.per_day is not None:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        out.append(BudgetWindow(route, "day", start, start + timedelta(days=1), budget.per_day))
    return out


def defer_seconds(window: BudgetWindow, now: datetime) -> int:
    """Seconds until ``window`` ends (the next one opens): at least 1, at most 12 h."""
    left = math.ceil((window.end - now).total_seconds())
    return max(1, min(MAX_DEFER_SECONDS, left))


_POINTER = re.compile(r"^(/Conditions/\d+)(/(And|Or)/\d+){0,2}$")


def pointer_to_path(pointer: str) -> str:
    """``/Conditions/1/And/0`` -> ``Conditions[1].And[0]`` (the form fired conditions use).

    Raises ``ValueError`` for anything but a pointer to a condition.
    """
    if not _POINTER.fullmatch(pointer):
        raise ValueError(
            f"{pointer!r} is not a JSON pointer to a condition (like /Conditions/1 or "
            "/Conditions/0/And/1)"
        )
    parts = pointer.split("/")[1:]
    return ".".join(f"{parts[i]}[{parts[i + 1]}]" for i in range(0, len(parts), 2))


def fired_always(always: Sequence[str], fired_paths: Iterable[str]) -> bool:
    """True when a fired simple condition is at or inside one of the ``always`` pointers."""
    targets = [pointer_to_path(p) for p in always]
    for path in fired_paths:
        for t in targets:
            if path == t or path.startswith(t + "."):
                return True
    return False


class BudgetAction(enum.StrEnum):
    START = "start"  # start the loop (budget taken, or an ``always`` condition fired)
    DEFER = "defer"  # hand the message back until the window opens
    NOT_ACTIVATED = "not_activated"  # sample policy: no loop, reason "budget"
    REJECT = "reject"  # reject policy


def budget_action(budget: Budget, *, spent: bool, fired_paths: Iterable[str]) -> BudgetAction:
    """What to do with an activated request, given whether a window is full."""
    if not spent:
        return BudgetAction.START
    if budget.policy is BudgetPolicy.DEFER:
        return BudgetAction.DEFER
    if budget.policy is BudgetPolicy.REJECT:
        return BudgetAction.REJECT
    if fired_always(budget.always, fired_paths):
        return BudgetAction.START
    return BudgetAction.NOT_ACTIVATED
