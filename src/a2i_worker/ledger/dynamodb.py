"""DynamoDB ledger, shared by many replicas: one table, conditional writes only.

The table, its key design and the item encoding are in
:mod:`a2i_worker.ledger.dynamodb_table`; the counting reads (gauges, operator views) in
:mod:`a2i_worker.ledger.dynamodb_counts`.

Every transition is GetItem(ConsistentRead) -> :mod:`a2i_worker.ledger.transitions`
-> UpdateItem of the changed attributes with ``ConditionExpression version = :read``;
a failed condition re-reads and re-decides, so exactly one of several racing
replicas wins. Index reads are eventually consistent; their keys are re-read with
ConsistentRead and re-checked before a record is returned.

The InputContent is stored zlib-compressed (``input_z``, B). An item still larger
than DynamoDB's 400 KB after that raises :class:`PermanentError`
(``ledger_item_too_large``): such inputs belong in S3 (``input_s3_uri``). Writes that
add the input or the result are measured before they are sent; DynamoDB's own refusal
has no code of its own (a ValidationException), so the item is measured then too.
PUBLISHED items get ``expires_at`` (epoch seconds) for DynamoDB TTL.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from a2i_worker.backoff import DYNAMODB_UNPROCESSED, Backoff
from a2i_worker.errors import ConfigError, TransientError
from a2i_worker.ledger import codec, dynamodb_counts, transitions
from a2i_worker.ledger.base import TransitionLedger
from a2i_worker.ledger.dynamodb_table import (
    INDEX_NAMES,
    TTL_ATTRIBUTE,
    check_size,
    error_code,
    from_item,
    to_item,
    update_arguments,
)
from a2i_worker.ledger.protocol import Claim, ClaimOutcome, LedgerRecord, LiveCounts, Phase

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

__all__ = ["DEFAULT_SHARDS", "DynamoDbLedger"]

log = structlog.get_logger(__name__)

#: Partitions of the sparse ``due`` and ``done`` indexes (spreads hot index writes).
DEFAULT_SHARDS = 4
_BATCH_GET = 100

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_T = TypeVar("_T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DynamoDbLedger(TransitionLedger):
    """The :class:`~a2i_worker.ledger.protocol.Ledger` on one DynamoDB table.

    ``client`` is an open aioboto3 DynamoDB client; its lifetime belongs to the caller.
    ``ttl_days`` (None: never) is how long PUBLISHED records live before TTL deletes them.
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        ttl_days: float | None = 30.0,
        shards: int = DEFAULT_SHARDS,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.table_name = table_name
        self._client = client
        self._ttl = None if ttl_days is None else timedelta(days=ttl_days)
        self._shards = shards
        self._clock = clock

    # -- lifecycle ------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The DynamoDB client (for stores that share the ledger's table)."""
        return self._client

    async def open(self) -> None:
        """Check the table exists with the expected key and indexes (never creates it)."""
        try:
            desc = (await self._client.describe_table(TableName=self.table_name))["Table"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise ConfigError(
                    f"ledger table {self.table_name!r} does not exist; deploy it (deploy/) "
                    "or create it with a2i_worker.ledger.dynamodb_table.create_table"
                ) from exc
            raise ConfigError(f"ledger table {self.table_name!r}: {exc}") from exc
        except BotoCoreError as exc:
            raise ConfigError(f"ledger table {self.table_name!r}: unreachable: {exc}") from exc
        keys = [(k["AttributeName"], k["KeyType"]) for k in desc.get("KeySchema", [])]
        if keys != [("request_id", "HASH")]:
            raise ConfigError(
                f"ledger table {self.table_name!r}: key schema is {keys}, expected request_id HASH"
            )
        present = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes", [])}
        missing = sorted(INDEX_NAMES - present)
        if missing:
            raise ConfigError(
                f"ledger table {self.table_name!r}: missing global secondary indexes {missing}"
            )
        log.info("ledger.dynamodb.opened", table=self.table_name)

    async def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""

    async def ping(self) -> None:
        key = {"request_id": {"S": "__ping__"}}
        await self._call(lambda: self._client.get_item(TableName=self.table_name, Key=key))

    # -- plumbing -------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """Run one request; throttling, 5xx and network errors become TransientError."""
        try:
            return await fn()
        except ClientError as exc:
            code = error_code(exc)
            if code in {"ConditionalCheckFailedException", "ValidationException"}:
                raise
            raise TransientError(f"ledger table {self.table_name!r}: {code}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"ledger table {self.table_name!r}: {exc}") from exc

    def _row(self, record: LedgerRecord, *, with_input: bool) -> codec.Row:
        row = codec.to_row(record, with_input=with_input)
        shard = zlib.crc32(record.request_id.encode("utf-8")) % self._shards
        row["due_shard"] = shard if row["due_at"] is not None else None
        row["done_shard"] = shard if row["done_at"] is not None else None
        expires: int | None = None
        if record.phase is Phase.PUBLISHED and self._ttl is not None and record.updated_at:
            expires = int((record.updated_at + self._ttl).timestamp())
        row[TTL_ATTRIBUTE] = expires
        return row

    async def _full_row(self, record: LedgerRecord, *, with_input: bool) -> codec.Row:
        if with_input and codec.off_loop(record):
            return await asyncio.to_thread(self._row, record, with_input=True)
        return self._row(record, with_input=with_input)

    async def _write(self, old: LedgerRecord, new: LedgerRecord) -> bool:
        with_input = old.payload != new.payload
        old_row = self._row(old, with_input=False)
        new_row = await self._full_row(new, with_input=with_input)
        if with_input:
            check_size(new_row)
        elif old.result != new.result:
            check_size(await self._full_row(new, with_input=True))
        changes = {k: v for k, v in new_row.items() if k == "input_z" or old_row.get(k) != v}
        try:
            await self._call(
                lambda: self._client.update_item(
                    TableName=self.table_name,
                    Key={"request_id": {"S": old.request_id}},
                    ConditionExpression="#version = :read_version",
                    **update_arguments(changes, read_version=old.version),
                )
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            if error_code(exc) == "ValidationException" and not with_input:
                check_size(await self._full_row(new, with_input=True))
            raise
        return True

    async def _op(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One call with arguments built at run time (untyped view of the client)."""
        method: Callable[..., Awaitable[dict[str, Any]]] = getattr(self._client, operation)
        return await self._call(lambda: method(**kwargs))

    async def _paged(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        return await dynamodb_counts.paged(self._op, self.table_name, operation, **kwargs)

    async def _get_many(self, request_ids: Sequence[str]) -> dict[str, LedgerRecord]:
        """Consistent reads of many records (BatchGetItem, unprocessed keys retried)."""
        found: dict[str, LedgerRecord] = {}
        unique = list(dict.fromkeys(request_ids))
        for i in range(0, len(unique), _BATCH_GET):
            pending: list[dict[str, Any]] = [
                {"request_id": {"S": rid}} for rid in unique[i : i + _BATCH_GET]
            ]
            backoff = Backoff(DYNAMODB_UNPROCESSED)
            while pending:
                answer = await self._op(
                    "batch_get_item",
                    RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}},
                )
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    record = await codec.from_row_async(from_item(item))
                    found[record.request_id] = record
                pending = list(
                    answer.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                )
                if pending:  # DynamoDB asks for back-off before retrying unprocessed keys
                    await backoff.retry()  # no attempt limit
        return found

    # -- reads ----------------------------------------------------------------------

    async def get(self, request_id: str) -> LedgerRecord | None:
        answer = await self._call(
            lambda: self._client.get_item(
                TableName=self.table_name,
                Key={"request_id": {"S": request_id}},
                ConsistentRead=True,
            )
        )
        item = answer.get("Item")
        return None if item is None else await codec.from_row_async(from_item(dict(item)))

    async def get_by_loop(self, loop_name: str) -> LedgerRecord | None:
        hits = await self._paged(
            "query",
            IndexName="by_loop",
            KeyConditionExpression="loop_name = :n",
            ExpressionAttributeValues={":n": {"S": loop_name}},
        )
        for hit in hits:
            record = await self.get(str(hit["request_id"]["S"]))
            if record is not None and record.loop_name == loop_name:
                return record
        return None

    async def _sharded(
        self, index: str, shard_attr: str, sort_attr: str, upper: int | None, limit: int
    ) -> list[str]:
        """request_ids of the ``limit`` smallest sort keys across all shards of ``index``."""

        async def one(shard: int) -> list[tuple[int, str]]:
            condition = f"{shard_attr} = :s"
            values: dict[str, Any] = {":s": {"N": str(shard)}}
            if upper is not None:
                condition += f" AND {sort_attr} <= :u"
                values[":u"] = {"N": str(upper)}
            items = await self._paged(
                "query",
                IndexName=index,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ScanIndexForward=True,
                Limit=limit,
            )
            return [(int(it[sort_attr]["N"]), str(it["request_id"]["S"])) for it in items]

        per_shard = await asyncio.gather(*(one(s) for s in range(self._shards)))
        merged = sorted(pair for pairs in per_shard for pair in pairs)
        return [rid for _, rid in merged[:limit]]

    async def due_for_check(self, now: datetime, limit: int) -> list[LedgerRecord]:
        if limit <= 0:
            return []
        ids = await self._sharded("due", "due_shard", "due_at", codec.to_micros(now), limit)
        records = await self._get_many(ids)
        due = [
            r
            for r in records.values()
            if r.phase in transitions.ACTIVE_PHASES
            and r.next_check_at is not None
            and r.next_check_at <= now
        ]
        return sorted(due, key=lambda r: (r.next_check_at, r.request_id))

    async def unpublished(self, limit: int) -> list[LedgerRecord]:
        if limit <= 0:
            return []
        ids = await self._sharded("done", "done_shard", "done_at", None, limit)
        records = await self._get_many(ids)
        done = [r for r in records.values() if r.phase is Phase.DONE]
        return sorted(done, key=lambda r: (r.updated_at or _EPOCH, r.request_id))

    async def open_loops_by_flow(self) -> dict[str, tuple[int, datetime | None]]:
        return await dynamodb_counts.open_loops_by_flow(self._op, self.table_name)

    async def open_records_for_flow(
        self, flow_definition_arn: str, limit: int
    ) -> list[LedgerRecord]:
        if limit <= 0:
            return []
        hits = await self._paged(
            "query",
            IndexName="open",
            KeyConditionExpression="open_flow = :f",
            ExpressionAttributeValues={":f": {"S": flow_definition_arn}},
            ScanIndexForward=True,
            Limit=limit,
        )
        ids = [str(h["request_id"]["S"]) for h in hits[:limit]]
        records = await self._get_many(ids)
        rows = [
            r
            for r in records.values()
            if transitions.is_open_loop(r)
            and r.payload is not None
            and r.payload.flow_definition_arn == flow_definition_arn
        ]
        return sorted(rows, key=lambda r: codec.to_row(r, with_input=False)["open_sort"] or 0)

    async def count_by_phase(self) -> dict[Phase, int]:
        """Counts by a full Scan of the ``phase`` attribute: O(table); call it rarely."""
        return await dynamodb_counts.count_by_phase(self._op, self.table_name)

    async def live_counts(self, flows: Collection[str]) -> LiveCounts:
        """Queries of the sparse indexes only, never a Scan (see :mod:`.dynamodb_counts`)."""
        return await dynamodb_counts.live_counts(self._op, self.table_name, self._shards, flows)

    # -- transitions ----------------------------------------------------------------

    async def mark_published_many(self, items: Sequence[tuple[str, str]]) -> int:
        """One conditional UpdateItem per record, concurrently (a batch holds ten)."""
        outcomes = await asyncio.gather(
            *(self.mark_published(rid, res_id) for rid, res_id in items),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(1 for outcome in outcomes if outcome is True)

    async def claim(
        self,
        request_id: str,
        fingerprint: str,
        *,
        route: str | None,
        received_at: datetime,
        then: Callable[[LedgerRecord], LedgerRecord | None] | None = None,
    ) -> Claim:
        record = transitions.new_record(
            request_id, fingerprint, route=route, received_at=received_at
        )
        if then is not None:
            record = then(record) or record
        row = await self._full_row(record, with_input=True)
        if record.payload is not None or record.result is not None:
            check_size(row)
        try:
            await self._call(
                lambda: self._client.put_item(
                    TableName=self.table_name,
                    Item=to_item(row),
                    ConditionExpression="attribute_not_exists(request_id)",
                )
            )
        except ClientError as exc:
            if error_code(exc) == "ValidationException":
                check_size(row)
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        else:
            return Claim(ClaimOutcome.NEW, record)
        existing = await self.get(request_id)
        if existing is None:  # deleted by TTL in between: claim again from scratch
            return await self.claim(
                request_id, fingerprint, route=route, received_at=received_at, then=then
            )
        return Claim(transitions.claim_outcome(existing, fingerprint), existing)
