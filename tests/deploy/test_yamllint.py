"""Every YAML file under deploy/ passes yamllint with the repository's .yamllint.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = YamlLintConfig(file=str(REPO / ".yamllint.yaml"))
FILES = [*sorted((REPO / "deploy").rglob("*.yaml")), REPO / ".yamllint.yaml"]


def _problems(path: Path, text: str | None = None) -> list[str]:
    source = path.read_text(encoding="utf-8") if text is None else text
    return [
        f"{path.name}:{p.line}:{p.column} {p.rule}: {p.desc}"
        for p in linter.run(source, CONFIG, str(path))
    ]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_yamllint_reports_nothing(path: Path) -> None:
    assert _problems(path) == []


def test_yamllint_does_catch_a_broken_file() -> None:
    path = REPO / "deploy" / "kubernetes" / "service.yaml"
    broken = path.read_text(encoding="utf-8").replace(
        "  type: ClusterIP", "  type: ClusterIP\n  type: x"
    )
    assert any("key-duplicates" in p for p in _problems(path, broken))
