"""Every JSON example in the README and docs/ is valid against the real models.

Each ```json block is classified by its shape and checked with the code that reads such
a message: a review result with :class:`ReviewResult`, a request or cancel with
:func:`parse_message` (and its route against config/routes.toml), a rules document or a
single condition with :func:`load_rules`. A block of any other shape fails the test, so a
new example cannot slip past unchecked (pseudo-syntax belongs in a ```text block).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from a2i_worker.messages import CancelRequest, ReviewRequest, ReviewResult, parse_message
from a2i_worker.routes import load_routes
from a2i_worker.rules import evaluate, load_rules, load_rules_file

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(path: Path, lang: str) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    return [
        (f"{path.name}:{text[: m.start()].count(chr(10)) + 1}", m["body"])
        for m in _FENCE.finditer(text)
        if m["lang"] == lang
    ]


JSON_BLOCKS = [block for path in DOCUMENTS for block in _blocks(path, "json")]
ROUTES = load_routes(REPO / "config" / "routes.toml")


def check_example(doc: Any) -> str:
    """Validate ``doc`` with the model of its shape; returns the shape's name."""
    assert isinstance(doc, dict), "examples are JSON objects"
    if "result_id" in doc:
        ReviewResult.model_validate(doc)
        return "result"
    if "Conditions" in doc:
        load_rules(doc, source="example")
        return "rules"
    if "ConditionType" in doc:
        load_rules({"Conditions": [doc]}, source="example")
        return "condition"
    if "request_id" in doc:
        request = parse_message(json.dumps(doc))
        if isinstance(request, CancelRequest):
            return "cancel"
        assert isinstance(request, ReviewRequest)
        ROUTES.resolve(request)  # the route exists in config/routes.toml
        return "request"
    raise AssertionError(f"an example of no known shape: {sorted(doc)}")


def test_there_are_examples_of_every_shape() -> None:
    shapes = {check_example(json.loads(body)) for _, body in JSON_BLOCKS}
    assert shapes == {"result", "rules", "condition", "cancel", "request"}


@pytest.mark.parametrize(("where", "body"), JSON_BLOCKS, ids=[w for w, _ in JSON_BLOCKS])
def test_json_example_is_valid(where: str, body: str) -> None:
    check_example(json.loads(body))


def test_an_example_of_no_known_shape_fails() -> None:
    with pytest.raises(AssertionError, match="no known shape"):
        check_example({"hello": "world"})


def test_the_full_result_examples_show_every_field() -> None:
    (full, rejected) = [
        json.loads(body)
        for _, body in _blocks(REPO / "docs" / "messages.md", "json")
        if '"result_id"' in body
    ]
    assert list(full) == list(ReviewResult.model_fields)
    assert list(rejected) == list(ReviewResult.model_fields)
    assert full["outcome"] == "completed"
    assert full["rejection_code"] is None
    assert rejected["outcome"] == "rejected"
    assert rejected["failure_code"] is None
    assert rejected["rejection_code"]


def test_readme_examples_tell_one_story() -> None:
    """The README's request, rules and result agree with each other and with the files."""
    request, result, rules = (json.loads(b) for _, b in _blocks(REPO / "README.md", "json"))
    shipped = json.loads((REPO / "config" / "rules" / "invoices.json").read_text("utf-8"))
    assert rules == shipped
    toml = tomllib.loads((REPO / "config" / "routes.toml").read_text(encoding="utf-8"))
    assert toml["routes"]["invoices"]["rules"] == shipped
    assert request["route"] == result["route"] == "invoices"
    decision = evaluate(
        load_rules_file(REPO / "config" / "rules" / "invoices.json"),
        request["prediction"],
        request_id=request["request_id"],
    )
    assert decision.activated is result["activation"]["activated"]
    assert [f.to_json() for f in decision.fired] == result["activation"]["reasons"]
    assert result["metadata"] == request["metadata"]
