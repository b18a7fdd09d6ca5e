"""The simulation engine: rules evaluated over historical predictions, one line at a time.

Input format (one JSON value per line, UTF-8; blank lines are skipped):

- ``{"request_id": "...", "prediction": {...}, ...}`` — a *record*: an object with a
  string ``request_id`` and a ``prediction`` member. The rules see ``prediction``;
  other members (a ground truth, a past human answer) are there for ``--truth``.
- anything else — the line *is* the prediction; its request id is ``line-<n>``
  (1-based line number), which is what ``Sampling`` hashes.

``--truth`` / ``--model`` JMESPaths are evaluated against the whole line value. A line
where both find a value is *labelled*; the model is *wrong* on it when the two differ
(numbers within ``tolerance`` agree when one is given). Lines that are not JSON are
counted and skipped, never fatal.

Memory is constant in the number of lines: only counters are kept (per condition, per
pair of conditions, per combination of conditions - at most :data:`MAX_COMBINATIONS`
distinct ones, the rest counted as "other").
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from a2i_worker.rules import RuleSet, evaluate
from a2i_worker.rules.grammar import Leaf, Node
from a2i_worker.tuning.errors import SimulationError

__all__ = [
    "MAX_COMBINATIONS",
    "ErrorSpec",
    "LineInput",
    "LineResult",
    "Simulation",
    "SimulationError",
    "Tally",
    "condition_types",
    "parse_line",
]

#: Distinct condition combinations tracked before the rest are lumped together.
MAX_COMBINATIONS = 1_000
OTHER_COMBINATION: tuple[str, ...] = ("(other combinations)",)


@dataclass(frozen=True)
class LineInput:
    """One parsed input line."""

    lineno: int
    request_id: str
    prediction: Any
    whole: Any


def parse_line(text: str | bytes, lineno: int) -> LineInput | None:
    """Parse one line; ``None`` for a blank line. Raises ``ValueError`` when not JSON."""
    if not text.strip():
        return None
    value = json.loads(text)
    if (
        isinstance(value, dict)
        and isinstance(value.get("request_id"), str)
        and ("prediction" in value)
    ):
        return LineInput(lineno, value["request_id"], value["prediction"], value)
    return LineInput(lineno, f"line-{lineno}", value, value)


@dataclass(frozen=True)
class ErrorSpec:
    """How a model error is recognised: ``model`` vs ``truth`` (JMESPaths on the line)."""

    truth: str
    model: str
    tolerance: float | None = None
    truth_expr: ParsedResult = field(init=False, compare=False, repr=False)
    model_expr: ParsedResult = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("truth", "model"):
            text = getattr(self, name)
            try:
                compiled = jmespath.compile(text)
            except JMESPathError as exc:
                raise SimulationError(f"--{name} {text!r} is not valid JMESPath: {exc}") from None
            object.__setattr__(self, f"{name}_expr", compiled)

    def judge(self, whole: Any) -> bool | None:
        """True when the model is wrong on this line, False when right, None if unlabelled."""
        try:
            truth = self.truth_expr.search(whole)
            model = self.model_expr.search(whole)
        except JMESPathError:
            return None
        if truth is None or model is None:
            return None
        if self.tolerance is not None and _is_num(truth) and _is_num(model):
            return bool(abs(float(truth) - float(model)) > self.tolerance)
        if isinstance(truth, bool) or isinstance(model, bool):  # JSON: true is not 1
            return not (type(truth) is type(model) and truth == model)
        return bool(truth != model)


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Tally:
    """Counters of one rules variant over the lines seen so far."""

    label: str
    detailed: bool
    lines: int = 0
    activated: int = 0
    labelled: int = 0
    errors: int = 0
    errors_caught: int = 0
    activated_labelled: int = 0
    by_condition: Counter[str] = field(default_factory=Counter)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    combinations: Counter[tuple[str, ...]] = field(default_factory=Counter)

    @property
    def activation_rate(self) -> float:
        return self.activated / self.lines if self.lines else 0.0

    @property
    def errors_caught_share(self) -> float | None:
        """Share of model errors the rules send to review (None without labelled errors)."""
        return self.errors_caught / self.errors if self.errors else None

    @property
    def review_precision(self) -> float | None:
        """Share of reviewed labelled lines on which the model was wrong."""
        return self.errors_caught / self.activated_labelled if self.activated_labelled else None

    def add(self, activated: bool, fired: Sequence[str], wrong: bool | None) -> None:
        self.lines += 1
        if activated:
            self.activated += 1
        if wrong is not None:
            self.labelled += 1
            if activated:
                self.activated_labelled += 1
            if wrong:
                self.errors += 1
                if activated:
                    self.errors_caught += 1
        if not self.detailed or not fired:
            return
        paths = tuple(dict.fromkeys(fired))
        self.by_condition.update(paths)
        if len(paths) > 1:
            self.pairs.update(combinations(paths, 2))
        if paths in self.combinations or len(self.combinations) < MAX_COMBINATIONS:
            self.combinations[paths] += 1
        else:
            self.combinations[OTHER_COMBINATION] += 1


@dataclass(frozen=True)
class LineResult:
    """The base rules' decision on one line (for the reviewed-requests file)."""

    lineno: int
    request_id: str
    activated: bool
    fired: tuple[str, ...]


def _leaves(node: Node, out: dict[str, str]) -> None:
    if isinstance(node, Leaf):
        out[node.path] = node.condition.condition_type
    else:
        for member in node.members:
            _leaves(member, out)


def condition_types(rules: RuleSet) -> dict[str, str]:
    """Every simple condition's path -> ConditionType, in document order."""
    out: dict[str, str] = {}
    for node in rules.nodes:
        _leaves(node, out)
    return out


class Simulation:
    """Feeds lines through the base rules (detailed counters) and any sweep variants.

    Pure and synchronous: the caller owns the file and the progress display.
    """

    def __init__(
        self,
        base: RuleSet,
        variants: Sequence[tuple[str, RuleSet]] = (),
        *,
        errors: ErrorSpec | None = None,
    ) -> None:
        self.base = base
        self.conditions = condition_types(base)
        self.errors = errors
        self.tally = Tally("rules", detailed=True)
        self.variants = [(rules, Tally(label, detailed=False)) for label, rules in variants]
        self.bad_lines = 0
        self.first_bad_lines: list[int] = []

    def feed_text(self, text: str | bytes, lineno: int) -> LineResult | None:
        """Parse and evaluate one line; ``None`` for blank or non-JSON lines (counted)."""
        try:
            line = parse_line(text, lineno)
        except (ValueError, RecursionError):
            self.bad_lines += 1
            if len(self.first_bad_lines) < 5:
                self.first_bad_lines.append(lineno)
            return None
        return None if line is None else self.feed(line)

    def feed(self, line: LineInput) -> LineResult:
        """Evaluate one parsed line with every rules variant."""
        wrong = self.errors.judge(line.whole) if self.errors is not None else None
        decision = evaluate(self.base, line.prediction, request_id=line.request_id)
        fired = tuple(f.path for f in decision.fired)
        self.tally.add(decision.activated, fired, wrong)
        for rules, tally in self.variants:
            d = evaluate(rules, line.prediction, request_id=line.request_id)
            tally.add(d.activated, (), wrong)
        return LineResult(line.lineno, line.request_id, decision.activated, fired)
