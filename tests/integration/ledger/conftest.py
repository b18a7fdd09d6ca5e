"""Fixtures of the ledger contract suite: both backends, DynamoDB on the session's moto.

moto is the session's local stack (tests/conftest.py): the project's keep-alive server,
where conditional DynamoDB writes are atomic as on AWS (moto's own threaded server lets
two racing writers pass the same condition). Every test gets its own table, so tests
never see each other's records.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from a2i_worker.ledger.dynamodb import DynamoDbLedger
from a2i_worker.ledger.dynamodb_table import create_table
from a2i_worker.ledger.protocol import Ledger
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.local import LocalStack

_tables = itertools.count()


def _table() -> str:
    """A table name no other test of this session (or process) uses."""
    return f"ledger-{os.getpid()}-{next(_tables)}"


@pytest.fixture(scope="session")
def moto_url(stack: LocalStack) -> str:
    return stack.moto_url


@pytest.fixture
async def dynamodb_client(moto_url: str, aws_session: Any) -> AsyncIterator[Any]:
    async with aws_session.client("dynamodb", endpoint_url=moto_url) as client:
        yield client


@pytest.fixture
async def table_name(dynamodb_client: Any) -> str:
    name = _table()
    await create_table(dynamodb_client, name)
    return name


async def _open(kind: str, tmp_path: Path, dynamodb_client: Any) -> Ledger:
    ledger: Ledger
    if kind == "sqlite":
        ledger = SqliteLedger(tmp_path / "ledger.db")
    else:
        name = _table()
        await create_table(dynamodb_client, name)
        ledger = DynamoDbLedger(name, dynamodb_client)
    await ledger.open()
    return ledger


async def _open_pair(kind: str, tmp_path: Path, client: Any) -> tuple[Ledger, Ledger]:
    first: Ledger
    second: Ledger
    if kind == "sqlite":
        first, second = SqliteLedger(tmp_path / "l.db"), SqliteLedger(tmp_path / "l.db")
    else:
        name = _table()
        await create_table(client, name)
        first, second = DynamoDbLedger(name, client), DynamoDbLedger(name, client)
    await first.open()
    await second.open()
    return first, second


@pytest.fixture(params=["sqlite", "dynamodb"])
async def ledger_pair(
    request: pytest.FixtureRequest, tmp_path: Path, dynamodb_client: Any
) -> AsyncIterator[tuple[Ledger, Ledger]]:
    """Two ledger instances over the same storage: two replicas (DynamoDB) or two
    connections to one file (SQLite)."""
    pair = await _open_pair(str(request.param), tmp_path, dynamodb_client)
    try:
        yield pair
    finally:
        for led in pair:
            await led.close()


@pytest.fixture(params=["sqlite", "dynamodb"])
async def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, dynamodb_client: Any
) -> AsyncIterator[Ledger]:
    """An open, empty ledger of each backend."""
    led = await _open(str(request.param), tmp_path, dynamodb_client)
    try:
        yield led
    finally:
        await led.close()
