"""Fixtures for the rules tests: the sample AWS responses and rule files in tests/data/rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "rules"
CONFIG = Path(__file__).resolve().parents[3] / "config" / "rules"


def load_sample(name: str) -> Any:
    """A JSON document from tests/data/rules."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def config_dir() -> Path:
    return CONFIG
