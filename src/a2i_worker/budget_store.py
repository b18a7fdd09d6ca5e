"""Review-budget counters, stored next to the ledger's records (same SQLite file, same
DynamoDB table), so budgets hold across restarts and across replicas.

- SQLite: table ``budget_counters(key, used, lim, expires_at)``, created on first use.
  One take is a single ``UPDATE ... WHERE`` over all of a route's windows whose
  condition reads the same rows, so it is atomic (all windows or none) for every
  process sharing the file.
- DynamoDB: one item per window in the ledger table (``request_id`` = the window key,
  which starts with a control character and so never equals a request id), taken with
  one ``TransactWriteItems`` of conditional ``ADD used :1`` updates: all or none, across
  replicas. ``expires_at`` is the table's TTL attribute, so old windows disappear.

A take carries a token (the request id): the same request taking the same windows again
(its message redelivered after a crash between the take and the start) finds its take
and is not counted twice, nor refused by its own earlier take. SQLite keeps the tokens in
``budget_takes(key, token, expires_at)`` (same transaction as the counters); DynamoDB
writes one marker item per window and token in the same transaction, expiring with the
window.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import anyio
import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from a2i_worker.errors import TransientError

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient

    from a2i_worker.ledger.protocol import Ledger

__all__ = [
    "BudgetCounter",
    "BudgetStore",
    "DynamoDbBudgetStore",
    "SqliteBudgetStore",
    "budget_store_for",
]


class BudgetCounter(Protocol):
    """What a store needs of a window (:class:`a2i_worker.budget.BudgetWindow` has it)."""

    @property
    def key(self) -> str: ...

    @property
    def limit(self) -> int: ...

    @property
    def expires_at(self) -> datetime: ...


_C = TypeVar("_C", bound=BudgetCounter)


class BudgetStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def take(
        self, counters: Sequence[_C], *, force: bool = False, token: str | None = None
    ) -> _C | None:
        """Add one to every counter at once if none is at its limit. ``None`` when taken
        (or already taken with this ``token``); otherwise a full counter (nothing
        written). ``force`` takes beyond the limits."""
        ...

    async def usage(self, keys: Sequence[str]) -> dict[str, int]:
        """The value of each key (0 for a window never taken)."""
        ...


_T = TypeVar("_T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS budget_counters ("
    "key TEXT PRIMARY KEY NOT NULL, used INTEGER NOT NULL, lim INTEGER NOT NULL, "
    "expires_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS budget_takes (key TEXT NOT NULL, token TEXT NOT NULL, "
    "expires_at INTEGER NOT NULL, PRIMARY KEY (key, token))",
    # the purge of takes whose window is over reads this index, not the table
    "CREATE INDEX IF NOT EXISTS ix_budget_takes_expiry ON budget_takes(expires_at)",
)


class SqliteBudgetStore:
    """Counters in the ledger's SQLite file. Each call opens a short-lived connection in a
    worker thread, so there is nothing to close (and nothing to leak at shutdown)."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5_000) -> None:
        self.path = Path(path)
        self._busy = busy_timeout_ms
        self._ready = False

    async def open(self) -> None:
        await anyio.to_thread.run_sync(self._run, self._create)
        self._ready = True

    async def close(self) -> None:
        """Nothing held between calls."""

    def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy / 1000)
        try:
            return fn(conn)
        except sqlite3.OperationalError as exc:  # locked/busy beyond the timeout
            raise TransientError(f"budget counters: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)

    async def take(
        self, counters: Sequence[_C], *, force: bool = False, token: str | None = None
    ) -> _C | None:
        if not counters:
            return None
        if not self._ready:
            await self.open()
        rows = [(c.key, c.limit, int(c.expires_at.timestamp())) for c in counters]
        keys = [c.key for c in counters]

        marks = ",".join("?" * len(keys))
        # A window ended by the time the earliest current one ends minus a day (the
        # longest window) is over: its takes are never asked about again. The callers'
        # windows are the clock here, not this machine's.
        horizon = min(exp for _, _, exp in rows) - 86_400

        def in_transaction(conn: sqlite3.Connection) -> dict[str, int] | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                usage = take_windows(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return usage

        def take_windows(conn: sqlite3.Connection) -> dict[str, int] | None:
            if token is not None:
                conn.execute("DELETE FROM budget_takes WHERE expires_at < ?", (horizon,))
                done = conn.execute(
                    f"SELECT COUNT(*) FROM budget_takes WHERE token = ? AND key IN ({marks})",  # noqa: S608
                    [token, *keys],
                ).fetchone()[0]
                if done == len(keys):
                    return None  # this request took these windows already
            conn.executemany(
                "INSERT INTO budget_counters(key, used, lim, expires_at) VALUES (?, 0, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET lim = excluded.lim",
                rows,
            )
            guard = (
                ""
                if force
                else " AND NOT EXISTS (SELECT 1 FROM budget_counters WHERE key IN "  # noqa: S608
                f"({marks}) AND used >= lim)"
            )
            cur = conn.execute(
                f"UPDATE budget_counters SET used = used + 1 WHERE key IN ({marks})"  # noqa: S608
                + guard,
                keys + ([] if force else keys),
            )
            if cur.rowcount != len(keys):
                return _usage(conn, keys)
            if token is not None:
                conn.executemany(
                    "INSERT OR IGNORE INTO budget_takes(key, token, expires_at) VALUES (?, ?, ?)",
                    [(key, token, exp) for key, _, exp in rows],
                )
            return None

        usage = await anyio.to_thread.run_sync(self._run, in_transaction)
        if usage is None:
            return None
        return next((c for c in counters if usage[c.key] >= c.limit), counters[0])

    async def usage(self, keys: Sequence[str]) -> dict[str, int]:
        if not self._ready:
            await self.open()
        return await anyio.to_thread.run_sync(self._run, lambda conn: _usage(conn, list(keys)))


def _usage(conn: sqlite3.Connection, keys: list[str]) -> dict[str, int]:
    out = dict.fromkeys(keys, 0)
    if keys:
        marks = ",".join("?" * len(keys))
        sql = f"SELECT key, used FROM budget_counters WHERE key IN ({marks})"  # noqa: S608
        for key, used in conn.execute(sql, keys).fetchall():
            out[str(key)] = int(used)
    return out


class DynamoDbBudgetStore:
    """Counters as items of the ledger's DynamoDB table."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = client

    async def open(self) -> None:
        """Nothing to do: the ledger checks the table."""

    async def close(self) -> None:
        """The client belongs to the caller."""

    async def take(
        self, counters: Sequence[_C], *, force: bool = False, token: str | None = None
    ) -> _C | None:
        if not counters:
            return None
        items: list[Any] = []
        if token is not None:
            # one marker per window and token, in the same transaction: a second take by
            # the same request fails on its marker and is answered as taken
            for c in counters:
                items.append(
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": {
                                "request_id": {"S": f"{c.key}\x1f{token}"},
                                "expires_at": {"N": str(int(c.expires_at.timestamp()))},
                            },
                            "ConditionExpression": "attribute_not_exists(request_id)",
                        }
                    }
                )
        markers = len(items)
        for c in counters:
            update: dict[str, Any] = {
                "TableName": self.table_name,
                "Key": {"request_id": {"S": c.key}},
                "UpdateExpression": "ADD used :one SET expires_at = :exp, lim = :lim",
                "ExpressionAttributeValues": {
                    ":one": {"N": "1"},
                    ":exp": {"N": str(int(c.expires_at.timestamp()))},
                    ":lim": {"N": str(c.limit)},
                },
            }
            if not force:
                update["ConditionExpression"] = "attribute_not_exists(used) OR used < :lim"
            items.append({"Update": update})
        try:
            await self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "TransactionCanceledException":
                raise TransientError(f"budget counters: {code}") from exc
            reasons = exc.response.get("CancellationReasons") or []
            codes = [r.get("Code") for r in reasons]
            if codes and "ConditionalCheckFailed" not in codes:
                # Cancelled for another reason (a conflicting transaction): try again later.
                raise TransientError(f"budget counters: cancelled ({codes})") from exc
            if markers and all(
                r.get("Code") == "ConditionalCheckFailed" for r in reasons[:markers]
            ):
                return None  # this request took these windows already
            for c, r in zip(counters, reasons[markers:], strict=False):
                if r.get("Code") == "ConditionalCheckFailed":
                    return c
            return counters[0]
        except BotoCoreError as exc:
            raise TransientError(f"budget counters: {exc}") from exc
        return None

    async def usage(self, keys: Sequence[str]) -> dict[str, int]:
        out = dict.fromkeys(keys, 0)
        for key in keys:
            try:
                resp = await self._client.get_item(
                    TableName=self.table_name,
                    Key={"request_id": {"S": key}},
                    ConsistentRead=True,
                    ProjectionExpression="used",
                )
            except (ClientError, BotoCoreError) as exc:
                raise TransientError(f"budget counters: {exc}") from exc
            item = resp.get("Item")
            if item and "used" in item:
                out[key] = int(item["used"]["N"])
        return out


def budget_store_for(ledger: Ledger) -> BudgetStore:
    """The store that lives with ``ledger`` (same SQLite file or DynamoDB table); another
    ledger (an in-memory one in tests) may bring its own with a ``budget_store()`` method."""
    from a2i_worker.ledger.dynamodb import DynamoDbLedger
    from a2i_worker.ledger.sqlite import SqliteLedger

    if isinstance(ledger, SqliteLedger):
        return SqliteBudgetStore(ledger.path)
    if isinstance(ledger, DynamoDbLedger):
        # The ledger does not expose its client publicly; it is the same open client.
        return DynamoDbBudgetStore(ledger.table_name, ledger.client)
    own = getattr(ledger, "budget_store", None)
    if callable(own):
        return cast("BudgetStore", own())
    raise TypeError(f"no budget store for {type(ledger).__name__}")
