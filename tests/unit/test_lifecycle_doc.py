"""docs/lifecycle.md's table of stage x event -> outcome: every row names the tests that
prove its outcome, and every test it names exists.

Columns: stage, event, outcome, unit tests (files in tests/unit/ or tests/contract/),
end-to-end tests (tests/integration/). A reference is ``file.py::test_name``; it exists
when that file defines ``def test_name`` (or ``async def``). Every row needs at least
one unit test; the end-to-end column may be empty. And every test of the lifecycle-pair
files is named by some row (none is written for a row that is not in the table).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "lifecycle.md"
UNIT_DIRS = (ROOT / "tests" / "unit", ROOT / "tests" / "contract")
E2E_DIRS = (ROOT / "tests" / "integration",)
HEADER = ["stage", "event", "outcome", "unit (tests/unit/, tests/contract/)"]
REF = re.compile(r"`([\w./-]+\.py)::(\w+)`")


def _rows() -> list[list[str]]:
    """The table's rows (header and separator left out), as lists of cells."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| stage | event |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    assert header[:4] == HEADER, header
    assert header[4].startswith("end to end"), header
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(
            [c.strip() for c in line.strip().removeprefix("|").removesuffix("|").split(" | ")]
        )
    return rows


def _refs(cell: str) -> list[tuple[str, str]]:
    refs = REF.findall(cell)
    rest = REF.sub("", cell).replace("<br>", "").strip()
    assert not rest, f"not a test reference: {rest!r}"
    return refs


@cache
def _defined(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8")
    return frozenset(re.findall(r"^(?:async )?def (test_\w+)\(", text, flags=re.MULTILINE))


def _exists(file: str, name: str, dirs: tuple[Path, ...]) -> bool:
    return any((d / file).is_file() and name in _defined(d / file) for d in dirs)


ROWS = _rows()


def test_the_table_has_every_stage_and_one_row_per_pair() -> None:
    assert len(ROWS) >= 35
    pairs = [(r[0], r[1]) for r in ROWS]
    assert len(set(pairs)) == len(pairs), "a (stage, event) pair written twice"
    stages = {s.strip() for r in ROWS for s in r[0].split("/")}
    expected = {"none", "received", "deferred", "any", "starting", "open", "stopping"}
    assert stages >= expected | {"finishing", "final"}, stages


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}|{r[1]}"[:60] for r in ROWS])
def test_every_row_has_an_outcome_and_names_existing_tests(row: list[str]) -> None:
    assert len(row) == 5, row
    stage, event, outcome, unit, e2e = row
    assert outcome, f"{stage} | {event}: no outcome"
    assert "retry forever" not in outcome.lower()
    units = _refs(unit)
    assert units, f"{stage} | {event}: no unit test named"
    missing = [f"{f}::{n}" for f, n in units if not _exists(f, n, UNIT_DIRS)]
    missing += [f"{f}::{n}" for f, n in _refs(e2e) if not _exists(f, n, E2E_DIRS)]
    assert not missing, f"{stage} | {event}: no such test: {missing}"


def test_every_lifecycle_pair_test_is_named_by_a_row() -> None:
    named = {(f, n) for r in ROWS for f, n in _refs(r[3])}
    files = sorted(UNIT_DIRS[0].glob("test_lifecycle_pairs*.py"))
    assert files
    unnamed = [
        f"{p.name}::{n}" for p in files for n in sorted(_defined(p)) if (p.name, n) not in named
    ]
    assert not unnamed, f"tests for no row of docs/lifecycle.md: {unnamed}"


def test_a_reference_to_a_missing_test_is_caught() -> None:
    assert _exists(
        "test_lifecycle_doc.py", "test_a_reference_to_a_missing_test_is_caught", UNIT_DIRS
    )
    assert not _exists("test_lifecycle_doc.py", "test_no_such_test", UNIT_DIRS)
    assert not _exists(
        "test_lifecycle_e2e.py", "test_cancel_while_the_loop_is_open_stops_it", UNIT_DIRS
    )
    with pytest.raises(AssertionError):
        _refs("`test_x.py::test_y` and prose")
