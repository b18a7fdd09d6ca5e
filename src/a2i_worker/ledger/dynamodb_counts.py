"""The DynamoDB ledger's counting reads: gauges and operator views, not transitions.

:func:`live_counts` reads the sparse indexes only (``Select=COUNT`` Queries), so its
cost follows the records in progress; :func:`open_loops_by_flow` scans the ``open``
index; :func:`count_by_phase` scans the whole table (call it rarely). Each takes ``op``,
the ledger's one-call function (errors already classified), and the table's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

from a2i_worker.ledger import codec
from a2i_worker.ledger.protocol import LiveCounts, Phase

__all__ = ["Op", "count_by_phase", "live_counts", "open_loops_by_flow", "paged"]

#: ``op(operation, **kwargs)``: one DynamoDB call by name, e.g. ``op("query", ...)``.
Op = Callable[..., Awaitable[dict[str, Any]]]


async def paged(op: Op, table: str, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
    """All items of a Query or Scan, following LastEvaluatedKey (up to ``Limit``)."""
    items: list[dict[str, Any]] = []
    limit = kwargs.get("Limit")
    while True:
        page = await op(operation, TableName=table, **kwargs)
        items.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if not start or (limit is not None and len(items) >= limit):
            return items
        kwargs["ExclusiveStartKey"] = start


async def open_loops_by_flow(op: Op, table: str) -> dict[str, tuple[int, datetime | None]]:
    """(open loops, oldest loop's creation) per flow definition: a Scan of ``open``."""
    counts: dict[str, tuple[int, datetime | None]] = {}
    for item in await paged(op, table, "scan", IndexName="open"):
        flow = str(item["open_flow"]["S"])
        created_raw = item.get("loop_created_at", {}).get("N")
        created = None if created_raw is None else codec.from_micros(int(created_raw))
        n, oldest = counts.get(flow, (0, None))
        if created is not None and (oldest is None or created < oldest):
            oldest = created
        counts[flow] = (n + 1, oldest)
    return counts


async def count_by_phase(op: Op, table: str) -> dict[Phase, int]:
    """Counts by a full Scan of the ``phase`` attribute: O(table); call it rarely."""
    counts = dict.fromkeys(Phase, 0)
    items = await paged(
        op, table, "scan", ProjectionExpression="#p", ExpressionAttributeNames={"#p": "phase"}
    )
    for item in items:
        if "phase" in item:  # review-budget counters share the table and have none
            counts[Phase(item["phase"]["S"])] += 1
    return counts


async def live_counts(op: Op, table: str, shards: int, flows: Collection[str]) -> LiveCounts:
    """Queries of the sparse indexes only, never a Scan: ``Select=COUNT`` on every
    shard of ``due`` and ``done``, and per flow of ``flows`` on ``open`` (plus one
    ``Limit=1`` read for its oldest loop). The read cost is proportional to the
    records in progress (index items of ~100 bytes), not to the table."""
    every = range(shards)
    wanted = sorted(set(flows))
    due, done, opened = await asyncio.gather(
        asyncio.gather(
            *(_index_count(op, table, "due", "due_shard", {"N": str(s)}) for s in every)
        ),
        asyncio.gather(
            *(_index_count(op, table, "done", "done_shard", {"N": str(s)}) for s in every)
        ),
        asyncio.gather(*(_open_of_flow(op, table, f) for f in wanted)),
    )
    return LiveCounts(sum(due), sum(done), dict(zip(wanted, opened, strict=True)))


async def _index_count(op: Op, table: str, index: str, key: str, value: dict[str, Any]) -> int:
    """Items of one index partition: Query with Select=COUNT (reads index items only)."""
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": f"{key} = :k",
        "ExpressionAttributeValues": {":k": value},
        "Select": "COUNT",
    }
    total = 0
    while True:
        page = await op("query", **kwargs)
        total += int(page.get("Count", 0))
        start = page.get("LastEvaluatedKey")
        if not start:
            return total
        kwargs["ExclusiveStartKey"] = start


async def _open_of_flow(op: Op, table: str, flow: str) -> tuple[int, datetime | None]:
    value = {"S": flow}
    count, first = await asyncio.gather(
        _index_count(op, table, "open", "open_flow", value),
        op(
            "query",
            TableName=table,
            IndexName="open",
            KeyConditionExpression="open_flow = :k",
            ExpressionAttributeValues={":k": value},
            ScanIndexForward=True,
            Limit=1,
        ),
    )
    items = first.get("Items", [])
    oldest = codec.from_micros(int(items[0]["open_sort"]["N"])) if items else None
    return count, oldest
