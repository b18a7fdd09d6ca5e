"""Paths and loaders for the rules test data (tests/data/rules) and examples (config/rules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["CONFIG", "DATA", "load_sample"]

DATA = Path(__file__).resolve().parents[2] / "data" / "rules"
CONFIG = Path(__file__).resolve().parents[3] / "config" / "rules"


def load_sample(name: str) -> Any:
    """A JSON document from tests/data/rules."""
    return json.loads((DATA / name).read_text(encoding="utf-8"))
