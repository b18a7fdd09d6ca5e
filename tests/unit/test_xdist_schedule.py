"""The xdist schedule's serial unit names tests that exist (a renamed test would silently
leave it, and then run beside another worker process)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from xdist_schedule import SERIAL, SERIAL_UNIT, scope_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", SERIAL)
def test_every_serial_entry_names_an_existing_test(entry: str) -> None:
    path, _, test = entry.partition("::")
    source = ROOT / path
    assert source.is_file(), entry
    if test:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        names = {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert test in names, entry


def test_scope_is_the_file_or_the_serial_unit() -> None:
    assert scope_of("tests/unit/test_naming.py::test_x[20000]") == "tests/unit/test_naming.py"
    assert scope_of("tests/reliability/test_shutdown.py::test_any") == SERIAL_UNIT
    op = "tests/integration/test_operations.py"
    assert scope_of(f"{op}::test_sigterm_drains_reports_draining_and_exits_0") == SERIAL_UNIT
    assert scope_of(f"{op}::test_readyz_reports_unreachable_dependencies") == op
    bench = "tests/bench/test_bench_regression.py::test_backlog_every_request_one_result_one_loop"
    assert scope_of(f"{bench}[150]") == SERIAL_UNIT
