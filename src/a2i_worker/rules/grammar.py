"""The HumanLoopActivationConditions grammar: structure, nesting, size, condition registry.

``compile_document`` turns a JSON value into an immutable tree of nodes, or raises
:class:`~a2i_worker.rules.params.Invalid` at the first fault (pure; no I/O).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from a2i_worker.rules.a2i import A2I_PARSERS
from a2i_worker.rules.generic import GENERIC_PARSERS
from a2i_worker.rules.model import Condition
from a2i_worker.rules.params import Invalid, ParamReader, Parts, check_object, type_name

__all__ = [
    "CONDITION_TYPES",
    "MAX_DOCUMENT_CHARS",
    "MAX_NESTING",
    "Composite",
    "Leaf",
    "Node",
    "compile_document",
    "serialized_size",
]

MAX_DOCUMENT_CHARS = 10_240
"""A2I's limit on the serialized HumanLoopActivationConditions string."""

MAX_NESTING = 2
"""At most two levels of And/Or above a simple condition, as A2I documents it."""

_Parser = Callable[[ParamReader, str], Condition]
_PARSERS: dict[str, tuple[tuple[str, ...], _Parser]] = {**A2I_PARSERS, **GENERIC_PARSERS}
CONDITION_TYPES: tuple[str, ...] = tuple(_PARSERS)


@dataclass(frozen=True, slots=True)
class Leaf:
    """A simple condition at ``path``."""

    path: str
    condition: Condition


@dataclass(frozen=True, slots=True)
class Composite:
    """``And`` (``op == "And"``) or ``Or`` over ≥2 members at ``path``."""

    path: str
    op: str
    members: tuple[Node, ...]


Node = Leaf | Composite


def serialized_size(document: Any) -> int:
    """Characters of the compact JSON serialization of ``document``."""
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=True))


def _condition(value: Any, at: Parts, path: str, depth: int) -> Node:
    obj = check_object(value, at, "a condition")
    ops = [k for k in ("And", "Or") if k in obj]
    if ops:
        op = ops[0]
        extra = [k for k in obj if k != op]
        if extra:
            raise Invalid(
                (*at, extra[0]),
                f"a condition with '{op}' may hold nothing else, found '{extra[0]}'",
            )
        if depth >= MAX_NESTING:
            raise Invalid(
                (*at, op),
                f"And/Or nested more than {MAX_NESTING} levels deep; A2I supports up to two "
                "levels of nesting",
            )
        members = obj[op]
        if not isinstance(members, list):
            raise Invalid((*at, op), f"'{op}' must be an array, got {type_name(members)}")
        if len(members) < 2:
            raise Invalid((*at, op), f"'{op}' needs at least 2 conditions, got {len(members)}")
        return Composite(
            path,
            op,
            tuple(
                _condition(m, (*at, op, i), f"{path}.{op}[{i}]", depth + 1)
                for i, m in enumerate(members)
            ),
        )
    for key in obj:
        if key not in ("ConditionType", "ConditionParameters"):
            raise Invalid(
                (*at, key),
                f"unknown key '{key}'; a condition has ConditionType and ConditionParameters, "
                "or a single And/Or",
            )
    if "ConditionType" not in obj:
        raise Invalid(at, "a condition needs ConditionType (or And/Or)")
    ctype = obj["ConditionType"]
    if not isinstance(ctype, str):
        raise Invalid((*at, "ConditionType"), f"expected a string, got {type_name(ctype)}")
    if ctype not in _PARSERS:
        raise Invalid(
            (*at, "ConditionType"),
            f"unknown condition type '{ctype}'; known: {', '.join(CONDITION_TYPES)}",
        )
    if "ConditionParameters" not in obj:
        raise Invalid(at, f"{ctype} needs ConditionParameters")
    allowed, parser = _PARSERS[ctype]
    reader = ParamReader(obj["ConditionParameters"], (*at, "ConditionParameters"), ctype, allowed)
    return Leaf(path, parser(reader, path))


def compile_document(document: Any) -> tuple[Node, ...]:
    """Validate ``document`` strictly and compile it; raises :class:`Invalid`."""
    root = check_object(document, (), "the rules document")
    for key in root:
        if key != "Conditions":
            raise Invalid((key,), f"unknown key '{key}'; the document holds only 'Conditions'")
    if "Conditions" not in root:
        raise Invalid((), "the rules document needs a 'Conditions' array")
    conditions = root["Conditions"]
    if not isinstance(conditions, list):
        raise Invalid(("Conditions",), f"expected an array, got {type_name(conditions)}")
    if not conditions:
        raise Invalid(("Conditions",), "needs at least one condition")
    nodes = tuple(
        _condition(c, ("Conditions", i), f"Conditions[{i}]", 0) for i, c in enumerate(conditions)
    )
    size = serialized_size(document)
    if size > MAX_DOCUMENT_CHARS:
        raise Invalid(
            (),
            f"the document is {size} characters serialized; A2I allows at most "
            f"{MAX_DOCUMENT_CHARS}",
        )
    return nodes
