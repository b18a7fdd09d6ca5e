"""src/ uses only the public API of the libraries it builds on.

A private attribute (``obj._name``) of aiolimiter, botocore, aiobotocore, boto3 or
prometheus_client holds
only as long as the pinned version does; this test fails when src/ touches one again:
``x._name`` on anything but ``self``/``cls``, or ``self._name`` in a class that subclasses
one of their classes, where ``_name`` is a private name those libraries define.
(aiosqlite is no longer a dependency: ledger/sqlite.py owns its ``sqlite3`` thread; the
docs' metrics table reads what metrics.py declares, not prometheus_client's metric objects.)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
LIBRARIES = ("aiolimiter", "botocore", "aiobotocore", "boto3", "prometheus_client")
#: Files the name-based check misreads: the attribute belongs to another library.
NOT_THESE_LIBRARIES: set[str] = set()


def _private_names(package: str) -> set[str]:
    """``_name`` methods and attributes (``self._name = ...``) defined in the package."""
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.submodule_search_locations
    names: set[str] = set()
    for root in spec.submodule_search_locations:
        for path in Path(root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_bytes())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.endswith("__")}


def _library_bases(tree: ast.Module) -> set[str]:
    """Local names bound to something imported from the libraries."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            bound.update(a.asname or a.name for a in node.names)
    return bound


def _offences(where: str, text: str, private: set[str]) -> list[str]:
    tree = ast.parse(text)
    lib_names = _library_bases(tree)
    subclassing: set[ast.ClassDef] = {
        c
        for c in ast.walk(tree)
        if isinstance(c, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id in lib_names for b in c.bases)
    }
    inside_subclass = {id(n) for c in subclassing for n in ast.walk(c)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in private):
            continue
        base = node.value
        on_self = isinstance(base, ast.Name) and base.id in {"self", "cls"}
        if not on_self or id(node) in inside_subclass:
            found.append(f"{where}:{node.lineno}: .{node.attr}")
    return found


def test_no_private_attribute_of_a_dependency_is_used() -> None:
    private = set().union(*(_private_names(p) for p in LIBRARIES))
    offences = [
        o
        for path in sorted(SRC.rglob("*.py"))
        if str(path.relative_to(SRC)) not in NOT_THESE_LIBRARIES
        for o in _offences(str(path.relative_to(SRC)), path.read_text(encoding="utf-8"), private)
    ]
    assert not offences, "private attributes of dependencies used:\n" + "\n".join(offences)


def test_the_check_sees_a_subclass_reaching_into_its_base() -> None:
    """The old limiting/bucket.py shape is caught, and so is a reach from outside."""
    text = (
        "from aiolimiter import AsyncLimiter\n"
        "class T(AsyncLimiter):\n"
        "    def f(self):\n"
        "        self._leak()\n"
        "def g(limiter):\n"
        "    return limiter._rate_per_sec\n"
    )
    private = _private_names("aiolimiter")
    assert sorted(_offences("probe.py", text, private)) == [
        "probe.py:4: ._leak",
        "probe.py:6: ._rate_per_sec",
    ]
