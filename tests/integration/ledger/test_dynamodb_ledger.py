"""What only the DynamoDB backend has: table checks, item size, TTL, key design."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from a2i_worker.errors import ConfigError, PermanentError
from a2i_worker.ledger import codec, transitions
from a2i_worker.ledger.dynamodb import DynamoDbLedger
from a2i_worker.ledger.dynamodb_table import (
    MAX_ITEM_BYTES,
    TABLE_DEFINITION,
    create_table,
    item_size,
)
from a2i_worker.ledger.protocol import ClaimOutcome, LedgerRecord, Phase, StartPayload

T0 = datetime(2026, 3, 2, tzinfo=UTC)


async def test_open_refuses_a_missing_table(dynamodb_client: Any) -> None:
    with pytest.raises(ConfigError, match="'no-such-table' does not exist"):
        await DynamoDbLedger("no-such-table", dynamodb_client).open()


async def test_open_refuses_a_table_without_the_indexes(dynamodb_client: Any) -> None:
    await dynamodb_client.create_table(
        TableName="bare-ledger",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "request_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "request_id", "KeyType": "HASH"}],
    )
    with pytest.raises(ConfigError, match="missing global secondary indexes"):
        await DynamoDbLedger("bare-ledger", dynamodb_client).open()


async def test_create_table_is_idempotent_and_matches_the_definition(
    dynamodb_client: Any, table_name: str
) -> None:
    await create_table(dynamodb_client, table_name)
    desc = (await dynamodb_client.describe_table(TableName=table_name))["Table"]
    assert desc["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert sorted(g["IndexName"] for g in desc["GlobalSecondaryIndexes"]) == [
        "by_loop",
        "done",
        "due",
        "open",
    ]
    ttl = await dynamodb_client.describe_time_to_live(TableName=table_name)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


async def test_incompressible_large_input_is_a_permanent_error(
    dynamodb_client: Any, table_name: str
) -> None:
    ledger = DynamoDbLedger(table_name, dynamodb_client)
    await ledger.open()
    await ledger.claim("r1", "fp", route=None, received_at=T0)
    noise = os.urandom(MAX_ITEM_BYTES).hex()  # hex of random bytes: compresses only 2:1
    with pytest.raises(PermanentError) as info:
        await ledger.mark_starting(
            "r1",
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name="l1",
            decision=None,
            context=None,
            payload=StartPayload("arn:flow", noise),
            next_check_at=T0,
        )
    assert info.value.code == "ledger_item_too_large"
    assert "input_s3_uri" in info.value.reason
    rec = await ledger.get("r1")
    assert rec is not None
    assert rec.phase is Phase.RECEIVED  # nothing written: it can still be rejected
    assert await ledger.store_result(
        "r1", expected=[Phase.RECEIVED], result={"outcome": "rejected"}, result_id="x"
    )


async def test_a_first_claim_too_large_to_store_writes_nothing(
    dynamodb_client: Any, table_name: str
) -> None:
    ledger = DynamoDbLedger(table_name, dynamodb_client)
    await ledger.open()
    noise = os.urandom(MAX_ITEM_BYTES).hex()

    def start(r: LedgerRecord) -> LedgerRecord | None:
        return transitions.start(
            r,
            expected=[Phase.RECEIVED],
            attempt=1,
            loop_name="l1",
            decision=None,
            context=None,
            payload=StartPayload("arn:flow", noise),
            next_check_at=T0,
            now=T0,
        )

    with pytest.raises(PermanentError) as info:
        await ledger.claim("r1", "fp", route=None, received_at=T0, then=start)
    assert info.value.code == "ledger_item_too_large"
    assert await ledger.get("r1") is None  # the plain claim after it starts from scratch
    assert (await ledger.claim("r1", "fp", route=None, received_at=T0)).outcome is ClaimOutcome.NEW


async def test_items_carry_sparse_index_keys_and_ttl(dynamodb_client: Any, table_name: str) -> None:
    ledger = DynamoDbLedger(table_name, dynamodb_client, ttl_days=7, shards=3)
    await ledger.open()

    async def raw() -> dict[str, Any]:
        got = await dynamodb_client.get_item(
            TableName=table_name, Key={"request_id": {"S": "r1"}}, ConsistentRead=True
        )
        return dict(got["Item"])

    await ledger.claim("r1", "fp", route=None, received_at=T0)
    assert not {"due_shard", "done_shard", "open_flow", "expires_at"} & set(await raw())
    await ledger.mark_starting(
        "r1",
        expected=[Phase.RECEIVED],
        attempt=1,
        loop_name="l1",
        decision=None,
        context=None,
        payload=StartPayload("arn:flow", "{}"),
        next_check_at=T0,
    )
    item = await raw()
    assert "due_shard" in item
    assert int(item["due_shard"]["N"]) in range(3)
    assert "B" in item["input_z"]
    await ledger.mark_open("r1", loop_name="l1", loop_arn="a", loop_created_at=T0, next_check_at=T0)
    assert (await raw())["open_flow"] == {"S": "arn:flow"}
    await ledger.store_result("r1", expected=[Phase.OPEN], result={}, result_id="x")
    item = await raw()
    assert "done_shard" in item
    assert not {"due_shard", "open_flow", "expires_at"} & set(item)
    await ledger.mark_published("r1", "x")
    item = await raw()
    assert "done_shard" not in item
    rec = await ledger.get("r1")
    assert rec is not None
    assert rec.updated_at is not None
    expected = int((rec.updated_at + timedelta(days=7)).timestamp())
    assert int(item["expires_at"]["N"]) == expected


async def test_a_small_write_dynamodb_refuses_for_size_is_a_permanent_error(
    dynamodb_client: Any, table_name: str
) -> None:
    """An item just under the limit, then a write that only adds a long loop ARN: the
    ledger does not measure that write, DynamoDB refuses it (a bare ValidationException),
    and the ledger tells it apart by measuring the item, not by the message's words.

    The bulk is a string (the context), not the compressed input: moto counts binary
    values at their base64 length, AWS at their byte length; strings both count alike."""
    ledger = DynamoDbLedger(table_name, dynamodb_client)
    await ledger.open()
    await ledger.claim("r1", "fp", route=None, received_at=T0)

    def started(blob: str) -> dict[str, Any]:
        return {
            "expected": [Phase.RECEIVED],
            "attempt": 1,
            "loop_name": "l1",
            "decision": None,
            "context": {"blob": blob},
            "payload": StartPayload("arn:flow", "{}"),
            "next_check_at": T0,
        }

    rec = transitions.new_record("r1", "fp", route=None, received_at=T0)
    bare = transitions.start(rec, now=T0, **started(""))
    assert bare is not None
    # moto refuses above 405,000 bytes, AWS above 409,600: stay under both, then go over.
    blob = "x" * (MAX_ITEM_BYTES - 10_000 - item_size(codec.to_row(bare)))
    assert await ledger.mark_starting("r1", **started(blob))
    with pytest.raises(PermanentError) as info:
        await ledger.mark_open(
            "r1", loop_name="l1", loop_arn="a" * 16_384, loop_created_at=T0, next_check_at=T0
        )
    assert info.value.code == "ledger_item_too_large"
    assert "input_s3_uri" in info.value.reason
    # Not checked: what is stored after the refusal. AWS writes nothing; moto 5.2.5 keeps
    # the attributes it set before it noticed the size (its update is not atomic there).
