"""Build a ledger from its URL (the ``A2I_WORKER_LEDGER_URL`` setting).

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's
  convention: the path is everything after ``sqlite:///``). Option:
  ``?synchronous=NORMAL|FULL`` (default NORMAL, see docs/ledger.md).
- ``dynamodb://table-name``: needs ``dynamodb_client`` (an open aioboto3 client).
  Options: ``?ttl_days=30`` (``none`` disables TTL), ``?shards=4``.

Anything else raises :class:`ConfigError` naming what is wrong.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from a2i_worker.errors import ConfigError
from a2i_worker.ledger.dynamodb import DEFAULT_SHARDS, DynamoDbLedger
from a2i_worker.ledger.protocol import Ledger
from a2i_worker.ledger.sqlite import SqliteLedger

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

__all__ = ["ledger_from_url"]

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def _options(query: str, allowed: set[str], url: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"ledger URL {url!r}: bad query string: {exc}") from exc
    unknown = sorted(set(parsed) - allowed)
    if unknown:
        raise ConfigError(
            f"ledger URL {url!r}: unknown option(s) {unknown}; allowed: {sorted(allowed)}"
        )
    return {k: v[-1] for k, v in parsed.items()}


def _number(url: str, name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"ledger URL {url!r}: {name} must be a positive number, not {raw!r}")
    return value


def _sqlite(url: str, rest: str) -> SqliteLedger:
    path, _, query = rest.partition("?")
    if not path:
        raise ConfigError(f"ledger URL {url!r}: no file path after 'sqlite:///'")
    opts = _options(query, {"synchronous"}, url)
    sync = opts.get("synchronous", "NORMAL").upper()
    if sync == "NORMAL":
        return SqliteLedger(path, synchronous="NORMAL")
    if sync == "FULL":
        return SqliteLedger(path, synchronous="FULL")
    raise ConfigError(f"ledger URL {url!r}: synchronous must be NORMAL or FULL, not {sync!r}")


def _dynamodb(url: str, rest: str, client: DynamoDBClient | None) -> DynamoDbLedger:
    table, _, query = rest.partition("?")
    if not _TABLE_NAME.fullmatch(table):
        raise ConfigError(
            f"ledger URL {url!r}: {table!r} is not a DynamoDB table name "
            "(3-255 characters of A-Z a-z 0-9 _ . -)"
        )
    if client is None:
        raise ConfigError(f"ledger URL {url!r}: a DynamoDB ledger needs a dynamodb client")
    opts = _options(query, {"ttl_days", "shards"}, url)
    kwargs: dict[str, Any] = {}
    if "ttl_days" in opts:
        raw = opts["ttl_days"].lower()
        kwargs["ttl_days"] = None if raw in {"none", "off", ""} else _number(url, "ttl_days", raw)
    shards = int(_number(url, "shards", opts.get("shards", str(DEFAULT_SHARDS))))
    if shards != _number(url, "shards", opts.get("shards", str(DEFAULT_SHARDS))):
        raise ConfigError(f"ledger URL {url!r}: shards must be a whole number")
    return DynamoDbLedger(table, client, shards=shards, **kwargs)


def ledger_from_url(url: str, *, dynamodb_client: DynamoDBClient | None = None) -> Ledger:
    """The ledger named by ``url`` (not opened yet: call ``await ledger.open()``)."""
    if url.startswith("sqlite:///"):
        return _sqlite(url, url[len("sqlite:///") :])
    if url.startswith("dynamodb://"):
        return _dynamodb(url, url[len("dynamodb://") :], dynamodb_client)
    raise ConfigError(
        f"ledger URL {url!r} is not supported: use sqlite:///path/to/file.db "
        "or dynamodb://table-name"
    )
