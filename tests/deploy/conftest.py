"""Fixtures for the deploy tests: the repository paths and the session's moto server."""

from __future__ import annotations

from pathlib import Path

import pytest

from a2i_worker.local import LocalStack

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def moto_url(stack: LocalStack) -> str:
    """moto of the session's local stack (the CloudFormation stack has its own names)."""
    return stack.moto_url
