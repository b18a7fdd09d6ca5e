"""The generated tables in the docs match the code (``make docs`` regenerates them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from a2i_worker import docgen
from a2i_worker.metrics import Metrics
from a2i_worker.rejection_codes import REJECTION_CODES
from a2i_worker.settings_doc import settings_reference

REPO = Path(__file__).resolve().parents[2]
EXPECTED = {
    "README.md": {"settings", "cli"},
    "docs/messages.md": {"rejection-codes", "settings"},
    "docs/operations.md": {"metrics"},
}


def _begin(name: str) -> str:
    return f"<!-- generated:{name} (make docs; do not edit by hand) -->"


def _end(name: str) -> str:
    return f"<!-- /generated:{name} -->"


def test_no_generated_table_is_stale() -> None:
    stale = [str(p.relative_to(REPO)) for p in docgen.stale_files(REPO)]
    assert stale == [], "generated tables are stale: run `make docs`"


@pytest.mark.parametrize(("name", "sections"), EXPECTED.items())
def test_each_file_holds_its_generated_sections(name: str, sections: set[str]) -> None:
    text = (REPO / name).read_text(encoding="utf-8")
    for section in sections:
        assert text.count(_begin(section)) == 1, section
        assert text.count(_end(section)) == 1, section
    assert set(EXPECTED) == set(docgen.FILES)


def test_every_setting_metric_code_and_command_is_in_its_table() -> None:
    settings = docgen.settings_table()
    for row in settings_reference():
        assert settings.count(f"| `{row.variable}` |") == 1
    metrics = docgen.metrics_table()
    assert metrics.count("\n| `a2i_worker_") == sum(
        1 for v in vars(Metrics()).values() if hasattr(v, "_documentation")
    )
    codes = docgen.rejection_codes_table()
    for code in REJECTION_CODES:
        assert codes.count(f"| `{code}` |") == 1
    cli = docgen.cli_table()
    for command in ("run", "local", "enqueue", "rules check", "loops status", "loops stop"):
        assert f"| `a2i-worker {command}" in cli


def test_render_replaces_only_between_markers() -> None:
    doc = f"intro\n{_begin('settings')}\nold table\n{_end('settings')}\noutro\n"
    out = docgen.render(doc, {"settings": lambda: "| new |"})
    assert out == f"intro\n{_begin('settings')}\n| new |\n{_end('settings')}\noutro\n"


def test_render_refuses_unknown_or_unpaired_markers() -> None:
    with pytest.raises(ValueError, match="unknown"):
        docgen.render(f"{_begin('nope')}\nx\n{_end('nope')}\n")
    with pytest.raises(ValueError, match="partner"):
        docgen.render(f"{_begin('settings')}\nno end\n")


def test_check_command_fails_on_a_stale_copy_and_make_docs_fixes_it(tmp_path: Path) -> None:
    for name in docgen.FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    operations = tmp_path / "docs" / "operations.md"
    text = operations.read_text(encoding="utf-8")
    operations.write_text(text.replace("| `a2i_worker_requests_total` |", "| `x` |"), "utf-8")
    command = [sys.executable, "-m", "a2i_worker.docgen"]
    check = subprocess.run([*command, "--check", str(tmp_path)], capture_output=True, text=True)
    assert check.returncode == 1
    assert "docs/operations.md" in check.stderr
    subprocess.run([*command, str(tmp_path)], check=True, capture_output=True)
    assert operations.read_text(encoding="utf-8") == text
    again = subprocess.run([*command, "--check", str(tmp_path)], capture_output=True)
    assert again.returncode == 0
