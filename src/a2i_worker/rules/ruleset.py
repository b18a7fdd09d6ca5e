"""Loading rules: JSON text or value → validated, compiled, immutable :class:`RuleSet`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from a2i_worker.rules.errors import RulesError, json_pointer
from a2i_worker.rules.grammar import Node, compile_document
from a2i_worker.rules.params import DuplicateKeyDict, Invalid, NonFinite

__all__ = ["RuleSet", "load_rules", "load_rules_file", "parse_rules_json"]


class RuleSet:
    """A parsed, validated rules document, compiled for evaluation. Immutable.

    ``document`` returns a fresh copy of the original JSON each time; ``source`` is where
    it came from. Build with :func:`load_rules` or :func:`load_rules_file`.
    """

    __slots__ = ("_document_json", "_nodes", "_source")

    def __init__(self, nodes: tuple[Node, ...], document_json: str, source: str) -> None:
        self._nodes = nodes
        self._document_json = document_json
        self._source = source

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_source"):
            raise AttributeError("RuleSet is immutable")
        object.__setattr__(self, name, value)

    @property
    def document(self) -> Any:
        """The original rules document (a copy)."""
        return json.loads(self._document_json)

    @property
    def source(self) -> str:
        """A file path, or ``"inline"``."""
        return self._source

    @property
    def nodes(self) -> tuple[Node, ...]:
        """The compiled top-level conditions, in document order."""
        return self._nodes

    def __repr__(self) -> str:
        return f"RuleSet(source={self._source!r}, conditions={len(self._nodes)})"


def load_rules(obj: Any, *, source: str = "inline") -> RuleSet:
    """Validate and compile a rules document given as a JSON value.

    A ``str``/``bytes`` is taken as JSON text (A2I's own API passes the conditions as a
    string) and parsed strictly. Raises :class:`RulesError` naming ``source``, the JSON
    pointer and the reason.
    """
    if isinstance(obj, bytes | bytearray):
        try:
            obj = bytes(obj).decode("utf-8")
        except UnicodeDecodeError:
            raise RulesError(source, "", "rules text is not valid UTF-8") from None
    if isinstance(obj, str):
        return parse_rules_json(obj, source=source)
    try:
        nodes = compile_document(obj)
    except Invalid as exc:
        raise RulesError(source, json_pointer(exc.at), exc.reason) from None
    return RuleSet(nodes, json.dumps(obj, separators=(",", ":"), ensure_ascii=False), source)


def _pairs_hook(pairs: list[tuple[str, Any]]) -> DuplicateKeyDict:
    out = DuplicateKeyDict()
    dups: list[str] = []
    for key, value in pairs:
        if key in out:
            dups.append(key)
        out[key] = value
    if dups:
        out.duplicates = tuple(dups)
    return out


def parse_rules_json(text: str, *, source: str = "inline") -> RuleSet:
    """Parse JSON text strictly (no NaN/Infinity, no duplicate keys) and load it."""
    try:
        obj = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=NonFinite)
    except json.JSONDecodeError as exc:
        raise RulesError(
            source, "", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise RulesError(source, "", "not valid JSON: nested too deeply") from None
    return load_rules(obj, source=source)


def load_rules_file(path: str | Path) -> RuleSet:
    """Read a JSON rules file and load it; every error names the path."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError(source, "", f"cannot read the rules file: {reason}") from None
    return parse_rules_json(text, source=source)
