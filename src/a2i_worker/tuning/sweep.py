"""Threshold sweeps: a ``PATH=START:STOP:STEP`` spec and the rules variants it makes (pure).

``PATH`` is a JSON pointer (RFC 6901) into the rules document, e.g.
``/Conditions/0/ConditionParameters/ConfidenceLessThan``; it must name an existing
number. Values run from START to STOP inclusive in steps of STEP, computed in decimal
arithmetic so ``0.5:0.95:0.05`` gives exactly ``0.5, 0.55, ..., 0.95`` (no float drift).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from a2i_worker.rules import RulesError, RuleSet, load_rules
from a2i_worker.tuning.errors import SimulationError

__all__ = ["MAX_SWEEP_VALUES", "SweepSpec", "parse_sweep", "set_pointer", "sweep_rulesets"]

#: More settings than this in one sweep is a typo (and a very slow pass).
MAX_SWEEP_VALUES = 200


@dataclass(frozen=True)
class SweepSpec:
    """One threshold to vary: where it is and the values it takes, in order."""

    pointer: str
    values: tuple[float, ...]


def _decimal(text: str, what: str, spec: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SimulationError(f"--sweep {spec!r}: {what} {text!r} is not a number") from None
    if not value.is_finite():
        raise SimulationError(f"--sweep {spec!r}: {what} must be finite")
    return value


def parse_sweep(spec: str) -> SweepSpec:
    """Parse ``PATH=START:STOP:STEP`` (STOP inclusive; a negative STEP sweeps downwards)."""
    pointer, sep, rng = spec.rpartition("=")
    if not sep or not pointer.startswith("/"):
        raise SimulationError(
            f"--sweep {spec!r}: expected PATH=START:STOP:STEP with PATH a JSON pointer "
            "such as /Conditions/0/ConditionParameters/ConfidenceLessThan"
        )
    parts = rng.split(":")
    if len(parts) != 3:
        raise SimulationError(f"--sweep {spec!r}: the range must be START:STOP:STEP")
    start, stop, step = (
        _decimal(p, w, spec) for p, w in zip(parts, ("START", "STOP", "STEP"), strict=True)
    )
    if step == 0 or (stop - start) * step < 0:
        raise SimulationError(
            f"--sweep {spec!r}: STEP must be non-zero and lead from START to STOP"
        )
    count = int((stop - start) / step) + 1
    if count > MAX_SWEEP_VALUES:
        raise SimulationError(
            f"--sweep {spec!r}: {count} values; at most {MAX_SWEEP_VALUES} per sweep"
        )
    values = tuple(float(start + i * step) for i in range(count))
    return SweepSpec(pointer, values)


def _tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def set_pointer(document: Any, pointer: str, value: float) -> Any:
    """A copy of ``document`` with the number at ``pointer`` replaced by ``value``.

    Raises :class:`SimulationError` when the pointer leads nowhere or not to a number.
    An integral value replaces an integer as an integer (``5.0`` -> ``5``).
    """
    doc = copy.deepcopy(document)
    parent: Any = None
    key: Any = None
    node: Any = doc
    for token in _tokens(pointer):
        parent = node
        if isinstance(node, dict) and token in node:
            key = token
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            key = int(token)
        else:
            raise SimulationError(f"sweep path {pointer!r}: nothing at {token!r} in the rules")
        node = node[key]
    if parent is None or isinstance(node, bool) or not isinstance(node, int | float):
        raise SimulationError(f"sweep path {pointer!r}: must name a number in the rules")
    parent[key] = int(value) if isinstance(node, int) and value.is_integer() else value
    return doc


def sweep_rulesets(rules: RuleSet, spec: SweepSpec) -> list[RuleSet]:
    """One validated :class:`RuleSet` per sweep value, in order.

    A value the grammar refuses (e.g. an A2I confidence above 100) raises
    :class:`SimulationError` naming the value and the reason.
    """
    base = rules.document
    out: list[RuleSet] = []
    for value in spec.values:
        variant = set_pointer(base, spec.pointer, value)
        try:
            out.append(load_rules(variant, source=f"{rules.source} [{spec.pointer}={value:g}]"))
        except RulesError as exc:
            raise SimulationError(
                f"sweep value {value:g} at {spec.pointer}: {exc.reason}"
            ) from None
    return out
