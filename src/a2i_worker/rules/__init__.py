"""Client-side activation rules: A2I's HumanLoopActivationConditions grammar, evaluated here.

Load once (``load_rules`` / ``load_rules_file``; a bad document raises :class:`RulesError`
with the source, a JSON pointer and the reason), then ``evaluate`` each prediction.
See docs/rules.md for the grammar, the condition types and their semantics.
"""

from __future__ import annotations

from a2i_worker.rules.errors import RulesError
from a2i_worker.rules.evaluate import evaluate, explain
from a2i_worker.rules.grammar import CONDITION_TYPES, MAX_DOCUMENT_CHARS, MAX_NESTING
from a2i_worker.rules.model import Decision, FiredCondition
from a2i_worker.rules.ruleset import RuleSet, load_rules, load_rules_file, parse_rules_json

__all__ = [
    "CONDITION_TYPES",
    "MAX_DOCUMENT_CHARS",
    "MAX_NESTING",
    "Decision",
    "FiredCondition",
    "RuleSet",
    "RulesError",
    "evaluate",
    "explain",
    "load_rules",
    "load_rules_file",
    "parse_rules_json",
]
