"""The rejection-code registry is exactly the set of codes the source can reject with.

The source is read, not run: every ``PermanentError(code, …)``, ``MessageRejected(code,
…)`` and ``_RejectError(code, …)`` in src/a2i_worker names its code as a string literal,
or as a local variable assigned from literals (``code = "a" if … else "b"``); pydantic
error types map to codes through ``messages._parse._CODE_BY_ERROR_TYPE`` (default
``invalid_field``). docs/messages.md's table is generated from the registry (``make
docs``), so a code added to the source without a registry entry fails here, not in a
consumer's switch statement.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import a2i_worker
from a2i_worker.messages import _parse as messages_parse
from a2i_worker.rejection_codes import REJECTION_CODES

SOURCE = Path(a2i_worker.__file__).parent
DATA = Path(__file__).resolve().parents[1] / "data"
RAISERS = {"PermanentError", "MessageRejected", "_RejectError"}
#: PermanentErrors the reconciler turns into ``failed`` results (a reason, no code).
NOT_REJECTIONS = {"bad_output", "bad_output_uri"}


def _literals(node: ast.expr, assigned: dict[str, set[str]]) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _literals(node.body, assigned) | _literals(node.orelse, assigned)
    if isinstance(node, ast.Name):
        return assigned.get(node.id, set())
    return set()


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _call_name(node: ast.Call) -> str | None:
    return getattr(node.func, "id", getattr(node.func, "attr", None))


def _codes_in(tree: ast.AST, passing: dict[str, tuple[int, str]] | None = None) -> set[str]:
    """Codes raised in ``tree``; ``passing`` maps helpers that take the code as a
    parameter (name -> (position, parameter)) to read the literal at their call sites."""
    found: set[str] = set()
    scopes: list[ast.AST] = [tree, *_functions(tree)]
    for scope in scopes:
        assigned: dict[str, set[str]] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, set()).update(_literals(node.value, {}))
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name in RAISERS and node.args:
                found |= _literals(node.args[0], assigned)
            elif passing and name in passing:
                position, parameter = passing[name]
                if len(node.args) > position:
                    found |= _literals(node.args[position], assigned)
                found |= {
                    code
                    for kw in node.keywords
                    if kw.arg == parameter
                    for code in _literals(kw.value, assigned)
                }
    return found


def _pass_through(tree: ast.AST) -> dict[str, tuple[int, str]]:
    """Functions that raise with a code they were given: ``def f(..., code): raise
    PermanentError(code, ...)``."""
    helpers: dict[str, tuple[int, str]] = {}
    for function in _functions(tree):
        parameters = [a.arg for a in function.args.args]
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and _call_name(node) in RAISERS
                and node.args
                and isinstance(node.args[0], ast.Name)
                and node.args[0].id in parameters
            ):
                parameter = node.args[0].id
                helpers[function.name] = (parameters.index(parameter), parameter)
    return helpers


def raised_codes() -> set[str]:
    trees = [
        ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(SOURCE.rglob("*.py"))
    ]
    passing: dict[str, tuple[int, str]] = {}
    for tree in trees:
        passing.update(_pass_through(tree))
    codes: set[str] = set()
    for tree in trees:
        codes |= _codes_in(tree, passing)
    codes |= set(messages_parse._CODE_BY_ERROR_TYPE.values()) | {"invalid_field"}
    return codes


def test_every_code_the_source_raises_is_registered() -> None:
    missing = raised_codes() - NOT_REJECTIONS - set(REJECTION_CODES)
    assert not missing, f"add to a2i_worker.rejection_codes: {sorted(missing)}"


def test_every_registered_code_is_raised_somewhere() -> None:
    stale = set(REJECTION_CODES) - raised_codes()
    assert not stale, f"no longer raised: {sorted(stale)}"


def test_the_scan_sees_literals_and_conditional_names() -> None:
    tree = ast.parse(
        "def f(c):\n"
        "    code = 'x_one' if c else 'x_two'\n"
        "    raise PermanentError(code, 'r')\n"
        "def g():\n"
        "    raise MessageRejected('x_three', 'r', None)\n"
    )
    assert _codes_in(tree) == {"x_one", "x_two", "x_three"}
    helper = ast.parse(
        "async def give_up(msg, code, why):\n"
        "    raise PermanentError(code, why)\n"
        "async def h(m):\n"
        "    await give_up(m, 'x_four', 'w')\n"
        "    await give_up(m, code='x_five', why='w')\n"
    )
    assert _pass_through(helper) == {"give_up": (1, "code")}
    assert _codes_in(helper, _pass_through(helper)) == {"x_four", "x_five"}
    assert {"a2i_validation", "a2i_access_denied", "input_not_found"} <= raised_codes()
    assert {"retries_exhausted", "internal_error"} <= raised_codes()


def test_the_bad_message_examples_use_registered_codes() -> None:
    index = json.loads((DATA / "bad_messages" / "index.json").read_text(encoding="utf-8"))
    codes = {v["code"] if isinstance(v, dict) else v for v in index.values()}
    assert codes
    assert codes <= set(REJECTION_CODES)


def test_codes_are_snake_case_with_a_cause() -> None:
    for code, entry in REJECTION_CODES.items():
        assert code == entry.code
        assert code.replace("_", "").isalnum()
        assert code == code.lower()
        assert entry.cause
