"""Confidence operators (``…Equals``, ``…LessThan`` …) and safe number formatting."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

from a2i_worker.rules.params import ParamReader

__all__ = ["OPERATOR_SUFFIXES", "Comparison", "fmt_number", "read_comparison"]

Number = int | float

# suffix → (symbol, negated symbol, test)
_OPERATORS: dict[str, tuple[str, str, Callable[[Number, Number], bool]]] = {
    "Equals": ("==", "!=", operator.eq),
    "LessThan": ("<", ">=", operator.lt),
    "LessThanEquals": ("<=", ">", operator.le),
    "GreaterThan": (">", "<=", operator.gt),
    "GreaterThanEquals": (">=", "<", operator.ge),
}
OPERATOR_SUFFIXES: tuple[str, ...] = tuple(_OPERATORS)


def fmt_number(value: Number) -> str:
    """A short, exact-enough rendering of a number that never raises (huge ints included)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        text = str(value) if abs(value) < 10**18 else f"{str(value)[:6]}…({len(str(value))} digits)"
        return text
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".10g")


@dataclass(frozen=True, slots=True)
class Comparison:
    """``observed <symbol> threshold``, as configured by the parameter ``parameter``."""

    parameter: str
    symbol: str
    negated: str
    threshold: Number
    test: Callable[[Number, Number], bool]

    def holds(self, observed: Number) -> bool:
        """True when ``observed`` satisfies the comparison (exact, no float tolerance)."""
        return self.test(observed, self.threshold)

    def describe(self, observed: str) -> str:
        """``"<observed> < 90 (ConfidenceLessThan)"``."""
        return f"{observed} {self.symbol} {fmt_number(self.threshold)} ({self.parameter})"

    def describe_not(self, observed: str) -> str:
        """``"<observed> >= 90, not < 90 (ConfidenceLessThan)"``."""
        return (
            f"{observed} {self.negated} {fmt_number(self.threshold)}, "
            f"not {self.symbol} {fmt_number(self.threshold)} ({self.parameter})"
        )


def read_comparison(
    reader: ParamReader,
    prefix: str,
    *,
    low: float | None,
    high: float | None,
    required: bool,
) -> Comparison | None:
    """The one ``<prefix><Operator>`` parameter present (at most one is allowed)."""
    names = [prefix + suffix for suffix in OPERATOR_SUFFIXES]
    name = reader.one_of(names, required=required, what=f"{prefix}* operator")
    if name is None:
        return None
    threshold = reader.number(name, low=low, high=high, required=True)
    assert threshold is not None
    symbol, negated, test = _OPERATORS[name[len(prefix) :]]
    return Comparison(name, symbol, negated, threshold, test)
