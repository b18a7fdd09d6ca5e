"""Generic condition types for custom task types, over any prediction JSON.

Values are addressed with JMESPath expressions compiled once at load time. A path that
finds nothing, finds ``null``, or fails at run time (a JMESPath type error) is *missing*.
Where a condition needs a number (or a label) and finds something else, that value is
missing too; ``IfMissing`` decides whether missing values send the request to review.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from a2i_worker.rules.compare import OPERATOR_SUFFIXES, Comparison, fmt_number, read_comparison
from a2i_worker.rules.model import Condition, EvalContext
from a2i_worker.rules.params import Invalid, ParamReader, is_number

__all__ = ["GENERIC_PARSERS"]

Number = int | float
_QUANTIFIERS = ("any", "all")
_IF_MISSING = ("review", "skip")
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class _Path:
    text: str
    compiled: ParsedResult

    def resolve(self, prediction: Any) -> Any:
        """The value at this path, or ``_MISSING``; never raises."""
        try:
            value = self.compiled.search(prediction)
        except (JMESPathError, TypeError, ValueError, KeyError, AttributeError, RecursionError):
            return _MISSING
        return _MISSING if value is None else value


def _read_path(reader: ParamReader, name: str, *, required: bool = True) -> _Path | None:
    text = reader.string(name, required=required)
    if text is None:
        return None
    return _compile(text, (*reader.at, name))


def _compile(text: str, at: tuple[str | int, ...]) -> _Path:
    try:
        return _Path(text, jmespath.compile(text))
    except JMESPathError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise Invalid(at, f"invalid JMESPath expression: {reason}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise Invalid(at, f"invalid JMESPath expression ({type(exc).__name__})") from None


def _leaves(value: Any) -> Iterator[Any]:
    """The value itself, or the members of (nested) arrays, depth-first, without recursion."""
    if not isinstance(value, list):
        yield value
        return
    stack: list[Iterator[Any]] = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


# --- ConfidenceCheck ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfidenceCheck:
    """Holds when the numbers at ``path`` satisfy ``comparison`` (``any``: at least one;
    ``all``: every one, and there is at least one). Non-numbers and nothing-found are
    missing: ``IfMissing: review`` makes any missing value hold the condition, ``skip``
    ignores them."""

    path: _Path
    comparison: Comparison
    quantifier: str
    review_missing: bool
    condition_type: str = "ConfidenceCheck"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        found = self.path.resolve(ctx.prediction)
        numbers: list[Number] = []
        missing = 0
        if found is not _MISSING:
            for leaf in _leaves(found):
                if is_number(leaf):
                    numbers.append(leaf)
                else:
                    missing += 1
        where = f"at '{self.path.text}'"
        if not numbers and not missing:
            missing = 1
        if missing and self.review_missing:
            return True, f"{missing} missing or non-numeric value(s) {where} (IfMissing: review)"
        if not numbers:
            if not verbose:
                return False, ""
            return False, f"no numeric value {where} (IfMissing: skip)"
        if self.quantifier == "any":
            for n in numbers:
                if self.comparison.holds(n):
                    return True, self.comparison.describe(f"value {fmt_number(n)} {where}")
            if not verbose:
                return False, ""
            return False, self.comparison.describe_not(f"values {_span(numbers)} {where}")
        failing = [n for n in numbers if not self.comparison.holds(n)]
        if not failing:
            return True, self.comparison.describe(
                f"all {len(numbers)} value(s) {_span(numbers)} {where}"
            )
        if not verbose:
            return False, ""
        return False, self.comparison.describe_not(f"value {fmt_number(failing[0])} {where}")


def _span(values: list[Number]) -> str:
    lo, hi = min(values), max(values)
    return fmt_number(lo) if lo == hi else f"{fmt_number(lo)}..{fmt_number(hi)}"


def _confidence(reader: ParamReader, path: str) -> Condition:
    p = _read_path(reader, "Path")
    comparison = read_comparison(reader, "Confidence", low=None, high=None, required=True)
    assert p is not None
    assert comparison is not None
    return ConfidenceCheck(
        p,
        comparison,
        reader.choice("Quantifier", _QUANTIFIERS, "any"),
        reader.choice("IfMissing", _IF_MISSING, "skip") == "review",
    )


# --- LabelCheck --------------------------------------------------------------------------


def _label_key(value: Any) -> tuple[str, Any] | None:
    """A type-aware key (so ``1`` ≠ ``"1"`` and ``true`` is no label), or ``None``."""
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, int) and not isinstance(value, bool):
        return ("i", value)
    return None


@dataclass(frozen=True, slots=True)
class LabelCheck:
    """Holds when the labels (strings or integers) at ``path`` are in ``labels``
    (``LabelIn``) or not in them (``LabelNotIn``), for ``any`` or ``all`` of them.
    Matching is exact and case-sensitive."""

    path: _Path
    parameter: str
    labels: frozenset[tuple[str, Any]]
    shown: str
    quantifier: str
    review_missing: bool
    condition_type: str = "LabelCheck"

    def _hit(self, key: tuple[str, Any]) -> bool:
        inside = key in self.labels
        return inside if self.parameter == "LabelIn" else not inside

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        found = self.path.resolve(ctx.prediction)
        keys: list[tuple[str, Any]] = []
        missing = 0
        if found is not _MISSING:
            for leaf in _leaves(found):
                key = _label_key(leaf)
                if key is None:
                    missing += 1
                else:
                    keys.append(key)
        where = f"at '{self.path.text}'"
        if not keys and not missing:
            missing = 1
        if missing and self.review_missing:
            return True, f"{missing} missing or non-label value(s) {where} (IfMissing: review)"
        if not keys:
            return (False, f"no label {where} (IfMissing: skip)") if verbose else (False, "")
        hits = [k for k in keys if self._hit(k)]
        held = bool(hits) if self.quantifier == "any" else len(hits) == len(keys)
        if held:
            if self.parameter == "LabelIn":
                first = hits[0][1]
                shown = f"'{first}'" if isinstance(first, str) else str(first)
                return True, (
                    f"{len(hits)} of {len(keys)} label(s) {where} in LabelIn, e.g. {shown}"
                )
            return True, (
                f"{len(hits)} of {len(keys)} label(s) {where} not in LabelNotIn {self.shown}"
            )
        if not verbose:
            return False, ""
        need = "any" if self.quantifier == "any" else "all"
        return False, (
            f"{len(hits)} of {len(keys)} label(s) {where} qualify for {self.parameter} "
            f"{self.shown}; Quantifier {need} not met"
        )


def _label(reader: ParamReader, path: str) -> Condition:
    p = _read_path(reader, "Path")
    assert p is not None
    name = reader.one_of(("LabelIn", "LabelNotIn"), required=True, what="label set")
    assert name is not None
    items = reader.array(name, min_items=1, required=True)
    assert items is not None
    keys: set[tuple[str, Any]] = set()
    for i, item in enumerate(items):
        key = _label_key(item)
        if key is None:
            raise Invalid((*reader.at, name, i), "a label must be a string or an integer")
        keys.add(key)
    shown_items = [f"'{k[1]}'" if k[0] == "s" else str(k[1]) for k in keys]
    shown_items.sort()
    shown = "[" + ", ".join(shown_items[:5]) + (", …]" if len(shown_items) > 5 else "]")
    return LabelCheck(
        p,
        name,
        frozenset(keys),
        shown,
        reader.choice("Quantifier", _QUANTIFIERS, "any"),
        reader.choice("IfMissing", _IF_MISSING, "skip") == "review",
    )


# --- MissingField ------------------------------------------------------------------------


def _emptiness(value: Any) -> str | None:
    if value is _MISSING:
        return "missing or null"
    if isinstance(value, str) and not value.strip():
        return "an empty string"
    if isinstance(value, list) and not value:
        return "an empty array"
    if isinstance(value, Mapping) and not value:
        return "an empty object"
    return None


@dataclass(frozen=True, slots=True)
class MissingField:
    """Holds when ``path`` finds nothing, ``null``, a blank string, ``[]`` or ``{}``."""

    path: _Path
    condition_type: str = "MissingField"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        why = _emptiness(self.path.resolve(ctx.prediction))
        if why is not None:
            return True, f"field at '{self.path.text}' is {why}"
        return (False, f"field at '{self.path.text}' is present") if verbose else (False, "")


def _missing_field(reader: ParamReader, path: str) -> Condition:
    p = _read_path(reader, "Path")
    assert p is not None
    return MissingField(p)


# --- ModelDisagreement -------------------------------------------------------------------


def _same(a: Any, b: Any, tolerance: Number) -> bool:
    """JSON equality where numbers agree within ``tolerance`` and booleans are not numbers.

    The tolerance is widened by one part in 10⁹ so that float rounding does not turn
    ``120.5`` vs ``120.49`` at ``Tolerance: 0.01`` into a disagreement; ``0`` stays exact.
    """
    # an integer tolerance beyond float range stays as it is: nothing exceeds it anyway
    with contextlib.suppress(OverflowError):
        tolerance = tolerance * (1 + 1e-9)
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if is_number(x) and is_number(y):
            try:
                if abs(x - y) > tolerance:
                    return False
            except OverflowError:
                return False
            continue
        if isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
            continue
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
            continue
        if type(x) is not type(y) or x != y:
            if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
                continue
            return False
    return True


@dataclass(frozen=True, slots=True)
class ModelDisagreement:
    """Holds when the values at ``paths`` differ (numbers: by more than ``tolerance``)."""

    paths: tuple[_Path, ...]
    tolerance: Number
    review_missing: bool
    condition_type: str = "ModelDisagreement"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        values = [p.resolve(ctx.prediction) for p in self.paths]
        absent = [p.text for p, v in zip(self.paths, values, strict=True) if v is _MISSING]
        if absent:
            if self.review_missing:
                return True, f"value at '{absent[0]}' is missing (IfMissing: review)"
            return (
                (False, f"value at '{absent[0]}' is missing (IfMissing: skip)")
                if verbose
                else (
                    False,
                    "",
                )
            )
        first = values[0]
        for p, v in zip(self.paths[1:], values[1:], strict=True):
            if not _same(first, v, self.tolerance):
                detail = ""
                if is_number(first) and is_number(v):
                    try:
                        diff, tol = fmt_number(abs(first - v)), fmt_number(self.tolerance)
                        detail = f" by {diff} > Tolerance {tol}"
                    except OverflowError:
                        detail = " by more than Tolerance"
                return True, f"'{self.paths[0].text}' and '{p.text}' disagree{detail}"
        if not verbose:
            return False, ""
        return False, f"{len(self.paths)} values agree (Tolerance {fmt_number(self.tolerance)})"


def _disagreement(reader: ParamReader, path: str) -> Condition:
    paths: list[_Path]
    if reader.has("Paths"):
        for other in ("LeftPath", "RightPath"):
            if reader.has(other):
                raise Invalid(
                    (*reader.at, other), f"Paths and {other} are mutually exclusive; give one"
                )
        texts = reader.strings("Paths", min_items=2, required=True)
        assert texts is not None
        paths = [_compile(t, (*reader.at, "Paths", i)) for i, t in enumerate(texts)]
    elif reader.has("LeftPath") or reader.has("RightPath"):
        left = _read_path(reader, "LeftPath")
        right = _read_path(reader, "RightPath")
        assert left is not None
        assert right is not None
        paths = [left, right]
    else:
        raise Invalid(reader.at, "ModelDisagreement needs Paths, or LeftPath and RightPath")
    tolerance = reader.number("Tolerance", low=0)
    return ModelDisagreement(
        tuple(paths),
        0 if tolerance is None else tolerance,
        reader.choice("IfMissing", _IF_MISSING, "skip") == "review",
    )


Parser = Callable[[ParamReader, str], Condition]

_COMMON = ("Path", "Quantifier", "IfMissing")
GENERIC_PARSERS: dict[str, tuple[tuple[str, ...], Parser]] = {
    "ConfidenceCheck": ((*_COMMON, *("Confidence" + s for s in OPERATOR_SUFFIXES)), _confidence),
    "LabelCheck": ((*_COMMON, "LabelIn", "LabelNotIn"), _label),
    "MissingField": (("Path",), _missing_field),
    "ModelDisagreement": (
        ("Paths", "LeftPath", "RightPath", "Tolerance", "IfMissing"),
        _disagreement,
    ),
}
