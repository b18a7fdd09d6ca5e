"""The DynamoDB ledger's table: its definition, item encoding and item size.

Key design (the exact definition is :data:`TABLE_DEFINITION`; docs/ledger.md has it
for the CloudFormation template):

- table key ``request_id`` (S); one item per request;
- GSI ``by_loop``: ``loop_name`` -> keys, for status events and Describe answers;
- GSI ``due`` (sparse, STARTING/OPEN only): ``due_shard`` (N, crc32(request_id) mod
  shards) + ``due_at`` (N, µs) -> keys, for the sweeper;
- GSI ``done`` (sparse, DONE only): ``done_shard`` + ``done_at`` -> keys, the outbox;
- GSI ``open`` (sparse, OPEN with a non-terminal loop): ``open_flow`` (S) +
  ``open_sort`` (N, loop creation µs) -> keys + ``loop_created_at``, for List sweeps.

Items are encoded with boto3's ``TypeSerializer``/``TypeDeserializer``; the codec's
rows only hold S, N (integers) and B values. boto3 has no item-size function, so
:func:`item_size` computes DynamoDB's documented one (names + values).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from a2i_worker.errors import PermanentError
from a2i_worker.ledger import codec

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

__all__ = [
    "INDEX_NAMES",
    "MAX_ITEM_BYTES",
    "TABLE_DEFINITION",
    "TTL_ATTRIBUTE",
    "attribute",
    "check_size",
    "create_table",
    "error_code",
    "from_attribute",
    "from_item",
    "item_size",
    "to_item",
    "update_arguments",
]

#: DynamoDB's item size limit (names + values).
MAX_ITEM_BYTES = 400 * 1024
TTL_ATTRIBUTE = "expires_at"

#: CreateTable arguments, minus TableName: the schema every deployment must match.
TABLE_DEFINITION: dict[str, Any] = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [
        {"AttributeName": "request_id", "AttributeType": "S"},
        {"AttributeName": "loop_name", "AttributeType": "S"},
        {"AttributeName": "due_shard", "AttributeType": "N"},
        {"AttributeName": "due_at", "AttributeType": "N"},
        {"AttributeName": "done_shard", "AttributeType": "N"},
        {"AttributeName": "done_at", "AttributeType": "N"},
        {"AttributeName": "open_flow", "AttributeType": "S"},
        {"AttributeName": "open_sort", "AttributeType": "N"},
    ],
    "KeySchema": [{"AttributeName": "request_id", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by_loop",
            "KeySchema": [{"AttributeName": "loop_name", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "due",
            "KeySchema": [
                {"AttributeName": "due_shard", "KeyType": "HASH"},
                {"AttributeName": "due_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "done",
            "KeySchema": [
                {"AttributeName": "done_shard", "KeyType": "HASH"},
                {"AttributeName": "done_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "open",
            "KeySchema": [
                {"AttributeName": "open_flow", "KeyType": "HASH"},
                {"AttributeName": "open_sort", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["loop_created_at"]},
        },
    ],
}
INDEX_NAMES = frozenset(g["IndexName"] for g in TABLE_DEFINITION["GlobalSecondaryIndexes"])

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def attribute(value: str | int | bytes) -> dict[str, Any]:
    """One codec value as a DynamoDB AttributeValue."""
    return dict(_serializer.serialize(value))


def from_attribute(value: dict[str, Any]) -> codec.Value:
    """An AttributeValue as a codec value: N as int, B as bytes, NULL as None."""
    plain = _deserializer.deserialize(value)
    if isinstance(plain, Decimal):
        return int(plain)
    if isinstance(plain, Binary):
        return bytes(plain)
    if plain is None or isinstance(plain, str):
        return plain
    raise ValueError(f"unexpected attribute type in ledger item: {sorted(value)}")


def to_item(row: codec.Row) -> dict[str, Any]:
    return {k: attribute(v) for k, v in row.items() if v is not None}


def from_item(item: dict[str, Any]) -> codec.Row:
    return {k: from_attribute(v) for k, v in item.items()}


def update_arguments(changes: codec.Row, *, read_version: int) -> dict[str, Any]:
    """UpdateItem's expression, names and values: SET the changes, REMOVE the Nones.

    ``#version``/``:read_version`` are there for the caller's ConditionExpression.
    """
    names: dict[str, str] = {"#version": "version"}
    values: dict[str, Any] = {":read_version": attribute(read_version)}
    sets: list[str] = []
    removes: list[str] = []
    for i, (name, value) in enumerate(changes.items()):
        names[f"#a{i}"] = name
        if value is None:
            removes.append(f"#a{i}")
        else:
            values[f":v{i}"] = attribute(value)
            sets.append(f"#a{i} = :v{i}")
    expression = ("SET " + ", ".join(sets)) if sets else ""
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "UpdateExpression": expression.strip(),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _value_size(value: codec.Value) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value)
    return 21  # numbers: at most 21 bytes


def item_size(row: codec.Row) -> int:
    """DynamoDB's size of an item: attribute names plus values (absent ones excluded)."""
    return sum(len(k) + _value_size(v) for k, v in row.items() if v is not None)


def check_size(row: codec.Row) -> None:
    """Raise ``ledger_item_too_large`` when ``row`` (with its input) exceeds DynamoDB's limit."""
    size = item_size(row)
    if size > MAX_ITEM_BYTES:
        raise PermanentError(
            "ledger_item_too_large",
            f"the ledger record would be {size} bytes after compressing the input; "
            f"DynamoDB allows {MAX_ITEM_BYTES}. Send large inputs as input_s3_uri.",
        )


async def create_table(
    client: DynamoDBClient, table_name: str, *, ttl: bool = True, wait: bool = True
) -> None:
    """Create the ledger table (idempotent): for the local stack and tests.

    Production tables come from deploy/ (CloudFormation) with the same definition.
    """
    try:
        await client.create_table(TableName=table_name, **TABLE_DEFINITION)
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
    if wait:
        waiter = client.get_waiter("table_exists")
        await waiter.wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    if ttl:
        try:
            await client.update_time_to_live(
                TableName=table_name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        except ClientError as exc:  # already enabled
            if error_code(exc) != "ValidationException":
                raise
