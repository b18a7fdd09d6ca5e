"""Row codec round trips and ledger URLs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a2i_worker.errors import ConfigError
from a2i_worker.ledger import codec
from a2i_worker.ledger.dynamodb import DynamoDbLedger
from a2i_worker.ledger.factory import ledger_from_url
from a2i_worker.ledger.protocol import LedgerRecord, Phase, StartPayload
from a2i_worker.ledger.sqlite import SqliteLedger

aware = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=9))]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
records = st.builds(
    LedgerRecord,
    request_id=st.text(min_size=1, max_size=40),
    fingerprint=st.text(max_size=20),
    phase=st.sampled_from(list(Phase)),
    route=st.none() | st.text(max_size=10),
    attempt=st.integers(1, 9),
    loop_name=st.none() | st.text(max_size=63),
    loop_status=st.none() | st.sampled_from(["InProgress", "Stopping", "Completed"]),
    loop_created_at=st.none() | aware,
    loop_finished_at=st.none() | aware,
    decision=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    context=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    payload=st.none()
    | st.builds(
        StartPayload,
        flow_definition_arn=st.text(min_size=1, max_size=30),
        input_content=st.text(max_size=200),
        content_classifiers=st.lists(st.text(max_size=10), max_size=2).map(tuple),
    ),
    result=st.none() | st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    received_at=st.none() | aware,
    updated_at=st.none() | aware,
    next_check_at=st.none() | aware,
    version=st.integers(0, 10_000),
)


@given(records)
def test_row_round_trip(record: LedgerRecord) -> None:
    back = codec.from_row(codec.to_row(record))
    assert back == record
    for value in (back.received_at, back.updated_at, back.next_check_at, back.loop_created_at):
        assert value is None or value.tzinfo is UTC


@given(aware)
def test_micros_round_trip_and_order(value: datetime) -> None:
    assert codec.from_micros(codec.to_micros(value)) == value
    assert codec.to_micros(value + timedelta(microseconds=1)) == codec.to_micros(value) + 1


def _diff_of_rows(old: LedgerRecord, new: LedgerRecord) -> codec.Row:
    """The obvious definition: encode both records whole, keep what differs."""
    with_input = old.payload != new.payload
    old_row = codec.to_row(old, with_input=False)
    new_row = codec.to_row(new, with_input=with_input)
    return {k: v for k, v in new_row.items() if k == "input_z" or old_row.get(k) != v}


@given(records, records)
def test_changed_columns_equal_the_diff_of_whole_rows(old: LedgerRecord, new: LedgerRecord) -> None:
    assert codec.changed_columns(old, new) == _diff_of_rows(old, new)


@given(records, st.data())
def test_changed_columns_of_a_partial_update_equal_the_diff_of_whole_rows(
    old: LedgerRecord, data: st.DataObject
) -> None:
    # transitions use dataclasses.replace: unchanged fields are the very same objects
    other = data.draw(records)
    names = data.draw(st.sets(st.sampled_from(list(old.__dataclass_fields__)), max_size=4))
    new = replace(old, **{n: getattr(other, n) for n in names})
    assert codec.changed_columns(old, new) == _diff_of_rows(old, new)


def test_changed_columns_leave_an_unchanged_payload_out() -> None:
    rec = LedgerRecord(
        request_id="r",
        fingerprint="f",
        phase=Phase.STARTING,
        payload=StartPayload("arn", "x" * 10_000),
        version=1,
    )
    moved = LedgerRecord(**{**rec.__dict__, "loop_arn": "arn:l", "version": 2})
    assert set(codec.changed_columns(rec, moved)) == {"loop_arn", "version"}
    opened = LedgerRecord(**{**rec.__dict__, "phase": Phase.OPEN})
    assert set(codec.changed_columns(rec, opened)) == {"phase", "open_flow", "open_sort"}
    new_payload = LedgerRecord(**{**rec.__dict__, "payload": StartPayload("arn", "y")})
    assert "input_z" in codec.changed_columns(rec, new_payload)


def test_sqlite_urls() -> None:
    led = ledger_from_url("sqlite:///data/ledger.db")
    assert isinstance(led, SqliteLedger)
    assert str(led.path) == "data/ledger.db"
    absolute = ledger_from_url("sqlite:////var/lib/a2i/ledger.db?synchronous=full")
    assert isinstance(absolute, SqliteLedger)
    assert str(absolute.path) == "/var/lib/a2i/ledger.db"


def test_dynamodb_urls() -> None:
    client: Any = object()
    led = ledger_from_url("dynamodb://a2i-ledger?ttl_days=7&shards=2", dynamodb_client=client)
    assert isinstance(led, DynamoDbLedger)
    assert led.table_name == "a2i-ledger"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgres://x", "not supported"),
        ("sqlite://", "not supported"),
        ("sqlite:///", "no file path"),
        ("sqlite:///x.db?synchronous=OFF", "NORMAL or FULL"),
        ("sqlite:///x.db?journal=delete", "unknown option"),
        ("dynamodb://t", "not a DynamoDB table name"),
        ("dynamodb://good-table", "needs a dynamodb client"),
    ],
)
def test_bad_urls(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        ledger_from_url(url)


@pytest.mark.parametrize("query", ["ttl_days=-1", "ttl_days=abc", "shards=0", "shards=1.5"])
def test_bad_dynamodb_options(query: str) -> None:
    with pytest.raises(ConfigError, match="ledger URL"):
        ledger_from_url(f"dynamodb://tbl?{query}", dynamodb_client=object())  # type: ignore[arg-type]
