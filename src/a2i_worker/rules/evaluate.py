"""Evaluating a :class:`RuleSet` against one prediction (pure; never raises)."""

from __future__ import annotations

from typing import Any

import structlog

from a2i_worker.rules.grammar import Leaf, Node
from a2i_worker.rules.model import Decision, EvalContext, FiredCondition
from a2i_worker.rules.ruleset import RuleSet

__all__ = ["evaluate", "explain"]

log = structlog.get_logger(__name__)

_FAILSAFE = "could not be evaluated (internal error); sent to review to be safe"


def _check(leaf: Leaf, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
    try:
        return leaf.condition.check(ctx, verbose)
    except Exception as exc:  # a bug must not lose a request: review it instead
        log.error(
            "rules.condition_failed",
            path=leaf.path,
            condition_type=leaf.condition.condition_type,
            request_id=ctx.request_id,
            error=type(exc).__name__,
        )
        return True, _FAILSAFE


def _eval(node: Node, ctx: EvalContext, fired: list[FiredCondition]) -> bool:
    if isinstance(node, Leaf):
        held, why = _check(node, ctx, False)
        if held:
            fired.append(FiredCondition(node.path, node.condition.condition_type, why))
        return held
    if node.op == "And":
        mine: list[FiredCondition] = []
        for member in node.members:
            if not _eval(member, ctx, mine):
                return False
        fired.extend(mine)
        return True
    held_any = False
    for member in node.members:
        if _eval(member, ctx, fired):
            held_any = True
    return held_any


def evaluate(rules: RuleSet, prediction: Any, *, request_id: str) -> Decision:
    """Decide whether ``prediction`` goes to human review.

    Review when any top-level condition holds. ``fired`` lists the simple conditions that
    made the decision (members of an ``And`` only when the whole ``And`` held), in
    document order. Never raises on any JSON value.
    """
    ctx = EvalContext(prediction, request_id if isinstance(request_id, str) else str(request_id))
    fired: list[FiredCondition] = []
    activated = False
    for node in rules.nodes:
        if _eval(node, ctx, fired):
            activated = True
    return Decision(activated, tuple(fired))


def _trace(node: Node, ctx: EvalContext, depth: int, lines: list[str]) -> bool:
    indent = "  " * (depth + 1)
    if isinstance(node, Leaf):
        held, why = _check(node, ctx, True)
        mark = "HOLDS" if held else "no"
        lines.append(f"{indent}[{mark}] {node.path} {node.condition.condition_type}: {why}")
        return held
    at = len(lines)
    lines.append("")
    results = [_trace(m, ctx, depth + 1, lines) for m in node.members]
    held = all(results) if node.op == "And" else any(results)
    count = sum(results)
    lines[at] = (
        f"{indent}[{'HOLDS' if held else 'no'}] {node.path} {node.op}: "
        f"{count} of {len(results)} member(s) hold"
    )
    return held


def explain(rules: RuleSet, prediction: Any, *, request_id: str) -> str:
    """A multi-line, human-readable account of every condition for one prediction.

    Same decision as :func:`evaluate`; shows why each condition held or not. Like the
    fired explanations, it never quotes free text from the prediction.
    """
    decision = evaluate(rules, prediction, request_id=request_id)
    ctx = EvalContext(prediction, request_id if isinstance(request_id, str) else str(request_id))
    lines: list[str] = []
    for node in rules.nodes:
        _trace(node, ctx, 0, lines)
    verdict = "REVIEW (human loop)" if decision.activated else "NO REVIEW"
    head = [
        f"rules: {rules.source}",
        f"request_id: {request_id}",
        f"decision: {verdict}; {len(decision.fired)} condition(s) fired",
        "conditions (any top-level condition holding means review):",
    ]
    tail = ["fired:"] + [f"  {f.path} {f.condition_type}: {f.explanation}" for f in decision.fired]
    return "\n".join(head + lines + (tail if decision.fired else []))
