"""pyproject.toml declares exactly what src/ imports (no more, no less).

Every third-party module imported by src/ (outside ``if TYPE_CHECKING:``) must belong to
a distribution declared in ``[project] dependencies`` or an optional extra, and every
runtime dependency must be imported somewhere, except the few used without an import
(listed below with the reason).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
OWN = {"a2i_worker", "a2i_emulator"}
#: Declared and used, but never imported by name.
USED_WITHOUT_IMPORT = {
    "uvloop": "anyio's backend option use_uvloop (cli.py)",
    "flask": "moto's server app runs on it (local extra)",
    "flask-cors": "moto's server app uses it (local extra)",
}


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    return runtime, extras - {"a2i-worker"}


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_block(node):
            stack.extend(getattr(node, "orelse", []))
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        stack.extend(ast.iter_child_nodes(node))
    return found - OWN - set(sys.stdlib_module_names)


def _imported_distributions() -> dict[str, set[str]]:
    by_module = importlib.metadata.packages_distributions()
    out: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        for module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            for dist in by_module.get(module, [module]):
                out.setdefault(dist.lower().replace("_", "-"), set()).add(
                    str(path.relative_to(SRC))
                )
    return out


def test_every_import_is_declared() -> None:
    runtime, extras = _declared()
    undeclared = {d: sorted(f) for d, f in _imported_distributions().items()}
    undeclared = {d: f for d, f in undeclared.items() if d not in runtime | extras}
    assert not undeclared, f"imported by src/ but not declared in pyproject.toml: {undeclared}"


def test_every_runtime_dependency_is_imported() -> None:
    runtime, _ = _declared()
    unused = runtime - set(_imported_distributions()) - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared in pyproject.toml but never imported by src/: {unused}"


def test_constraints_pin_every_declared_dependency_and_nothing_stale() -> None:
    runtime, extras = _declared()
    pinned = {
        _name(line)
        for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert (runtime | extras) - pinned == set()
    assert "xxhash" not in pinned  # dropped with its declaration (nothing else needs it)
