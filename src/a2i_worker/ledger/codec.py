"""LedgerRecord <-> flat row of primitive values, shared by both backends.

A row is a ``dict[str, str | int | bytes | None]`` with one entry per column
(SQLite) or attribute (DynamoDB, where ``None`` means "attribute absent"):

- datetimes are integers, microseconds since the Unix epoch, UTC (exact round trip,
  sortable); they always come back as tz-aware UTC datetimes;
- ``decision``, ``context``, ``result`` and the content classifiers are compact JSON;
- the InputContent of the start payload is zlib-compressed (``input_z``), since it
  may be up to 3 MiB and JSON compresses well;
- four *derived* columns exist only for the indexes and are recomputed from the
  record on every write: ``due_at`` (next_check_at while STARTING/OPEN),
  ``done_at`` (updated_at while DONE), ``open_flow`` / ``open_sort`` (flow ARN and
  loop creation time of OPEN records whose loop is not terminal yet).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from a2i_worker.ledger.protocol import LedgerRecord, Phase, StartPayload, Step
from a2i_worker.ledger.transitions import ACTIVE_PHASES, ensure_utc, is_open_loop

__all__ = [
    "COLUMNS",
    "DERIVED_COLUMNS",
    "V2_COLUMNS",
    "V3_COLUMNS",
    "Row",
    "Value",
    "changed_columns",
    "from_micros",
    "from_row",
    "from_row_async",
    "off_loop",
    "to_micros",
    "to_row",
]

Value = str | int | bytes | None
Row = dict[str, Value]

#: Stored columns, in a stable order (the SQLite table follows it).
COLUMNS: tuple[str, ...] = (
    "request_id",
    "fingerprint",
    "phase",
    "route",
    "attempt",
    "loop_name",
    "loop_arn",
    "loop_status",
    "failure_code",
    "failure_reason",
    "output_uri",
    "loop_created_at",
    "loop_finished_at",
    "decision",
    "context",
    "flow_definition_arn",
    "input_z",
    "content_classifiers",
    "result",
    "result_id",
    "received_at",
    "updated_at",
    "next_check_at",
    "version",
    "due_at",
    "done_at",
    "open_flow",
    "open_sort",
    # schema v2: the lifecycle's stage bookkeeping
    "phase_since",
    "tries",
    "cancel_requested_at",
    "dlq_copied_at",
    "source_message_id",
    # schema v3: the record's history of transitions
    "history",
)
#: Columns added after the first schema (SQLite adds them with ALTER TABLE).
V2_COLUMNS: tuple[str, ...] = COLUMNS[COLUMNS.index("phase_since") : COLUMNS.index("history")]
V3_COLUMNS: tuple[str, ...] = COLUMNS[COLUMNS.index("history") :]
DERIVED_COLUMNS: frozenset[str] = frozenset({"due_at", "done_at", "open_flow", "open_sort"})

_ZLIB_LEVEL = 6
#: Inputs above this size are (de)compressed on a worker thread, not on the event loop.
OFF_LOOP_BYTES = 256 * 1024


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = ensure_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Inverse of :func:`to_micros` (tz-aware UTC)."""
    seconds, micros = divmod(int(value), 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def _opt_micros(value: datetime | None) -> int | None:
    return None if value is None else to_micros(value)


def _opt_dt(value: Value) -> datetime | None:
    return None if value is None else from_micros(int(value))


def _dump(value: object) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _load(value: Value) -> Any:
    if value is None:
        return None
    if isinstance(value, int):
        raise TypeError("expected JSON text, got an integer")
    return json.loads(value)


def to_row(record: LedgerRecord, *, with_input: bool = True) -> Row:
    """Flatten a record into storable values (including the derived index columns).

    ``with_input=False`` leaves out ``input_z`` (compressing 3 MiB is not free).
    """
    payload = record.payload
    row: Row = {
        "request_id": record.request_id,
        "fingerprint": record.fingerprint,
        "phase": record.phase.value,
        "route": record.route,
        "attempt": record.attempt,
        "loop_name": record.loop_name,
        "loop_arn": record.loop_arn,
        "loop_status": record.loop_status,
        "failure_code": record.failure_code,
        "failure_reason": record.failure_reason,
        "output_uri": record.output_uri,
        "loop_created_at": _opt_micros(record.loop_created_at),
        "loop_finished_at": _opt_micros(record.loop_finished_at),
        "decision": _dump(record.decision),
        "context": _dump(record.context),
        "flow_definition_arn": None if payload is None else payload.flow_definition_arn,
        "input_z": (
            None
            if payload is None or not with_input
            else zlib.compress(payload.input_content.encode("utf-8"), _ZLIB_LEVEL)
        ),
        "content_classifiers": (
            None if payload is None else _dump(list(payload.content_classifiers))
        ),
        "result": _dump(record.result),
        "result_id": record.result_id,
        "received_at": _opt_micros(record.received_at),
        "updated_at": _opt_micros(record.updated_at),
        "next_check_at": _opt_micros(record.next_check_at),
        "version": record.version,
        "phase_since": _opt_micros(record.phase_since),
        "tries": record.tries,
        "cancel_requested_at": _opt_micros(record.cancel_requested_at),
        "dlq_copied_at": _opt_micros(record.dlq_copied_at),
        "source_message_id": record.source_message_id,
        "history": _dump_history(record.history),
        **_derived(record),
    }
    if not with_input:
        del row["input_z"]
    return row


def from_row(row: Mapping[str, Any]) -> LedgerRecord:
    """Rebuild a record from a row written by :func:`to_row` (missing keys mean None)."""
    get = row.get
    payload: StartPayload | None = None
    if get("input_z") is not None and get("flow_definition_arn") is not None:
        payload = StartPayload(
            flow_definition_arn=str(row["flow_definition_arn"]),
            input_content=zlib.decompress(bytes(row["input_z"])).decode("utf-8"),
            content_classifiers=tuple(_load(get("content_classifiers")) or ()),
        )
    return LedgerRecord(
        request_id=str(row["request_id"]),
        fingerprint=str(row["fingerprint"]),
        phase=Phase(row["phase"]),
        route=get("route"),
        attempt=int(row.get("attempt") or 1),
        loop_name=get("loop_name"),
        loop_arn=get("loop_arn"),
        loop_status=get("loop_status"),
        failure_code=get("failure_code"),
        failure_reason=get("failure_reason"),
        output_uri=get("output_uri"),
        loop_created_at=_opt_dt(get("loop_created_at")),
        loop_finished_at=_opt_dt(get("loop_finished_at")),
        decision=_load(get("decision")),
        context=_load(get("context")),
        payload=payload,
        result=_load(get("result")),
        result_id=get("result_id"),
        received_at=_opt_dt(get("received_at")),
        updated_at=_opt_dt(get("updated_at")),
        next_check_at=_opt_dt(get("next_check_at")),
        version=int(row.get("version") or 0),
        phase_since=_opt_dt(get("phase_since")),
        tries=int(row.get("tries") or 0),
        cancel_requested_at=_opt_dt(get("cancel_requested_at")),
        dlq_copied_at=_opt_dt(get("dlq_copied_at")),
        source_message_id=get("source_message_id"),
        history=_load_history(get("history")),
    )


def _dump_history(steps: tuple[Step, ...]) -> str | None:
    """``[[micros, phase, loop_status, attempt, note], ...]``; None when empty."""
    if not steps:
        return None
    return _dump([[to_micros(s.at), s.phase, s.loop_status, s.attempt, s.note] for s in steps])


def _load_history(value: Value) -> tuple[Step, ...]:
    return tuple(
        Step(from_micros(int(at)), str(phase), status, int(attempt), note)
        for at, phase, status, attempt, note in (_load(value) or ())
    )


#: Record fields stored as they are, as integer microseconds, and as JSON text.
_PLAIN_FIELDS = (
    "request_id",
    "fingerprint",
    "route",
    "attempt",
    "loop_name",
    "loop_arn",
    "loop_status",
    "failure_code",
    "failure_reason",
    "output_uri",
    "result_id",
    "version",
    "tries",
    "source_message_id",
)
_TIME_FIELDS = (
    "loop_created_at",
    "loop_finished_at",
    "received_at",
    "updated_at",
    "next_check_at",
    "phase_since",
    "cancel_requested_at",
    "dlq_copied_at",
)
_JSON_FIELDS = ("decision", "context", "result")


def _derived(record: LedgerRecord) -> Row:
    """The index columns :func:`to_row` derives from a record."""
    payload = record.payload
    open_loop = is_open_loop(record) and payload is not None
    return {
        "due_at": (_opt_micros(record.next_check_at) if record.phase in ACTIVE_PHASES else None),
        "done_at": _opt_micros(record.updated_at) if record.phase is Phase.DONE else None,
        "open_flow": payload.flow_definition_arn if payload is not None and open_loop else None,
        "open_sort": (
            (_opt_micros(record.loop_created_at or record.updated_at) or 0) if open_loop else None
        ),
    }


def changed_columns(old: LedgerRecord, new: LedgerRecord) -> Row:
    """The columns of ``new`` whose stored value differs from ``old``'s: what a write sends.

    Field by field, so an unchanged JSON field (the same object after ``replace``) is
    neither encoded nor compared as text; the compressed input is only produced when the
    payload itself changed. Same columns as diffing two :func:`to_row` results.
    """
    row: Row = {}
    for name in _PLAIN_FIELDS:
        value = getattr(new, name)
        if value != getattr(old, name):
            row[name] = value
    if new.phase is not old.phase:
        row["phase"] = new.phase.value
    for name in _TIME_FIELDS:
        value = getattr(new, name)
        if value != getattr(old, name):
            row[name] = _opt_micros(value)
    for name in _JSON_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if after is not before and _dump(after) != _dump(before):
            row[name] = _dump(after)
    if old.payload is not new.payload and old.payload != new.payload:
        before_p, after_p = old.payload, new.payload
        flow = None if after_p is None else after_p.flow_definition_arn
        if flow != (None if before_p is None else before_p.flow_definition_arn):
            row["flow_definition_arn"] = flow
        classifiers = None if after_p is None else _dump(list(after_p.content_classifiers))
        if classifiers != (None if before_p is None else _dump(list(before_p.content_classifiers))):
            row["content_classifiers"] = classifiers
        row["input_z"] = (
            None
            if after_p is None
            else zlib.compress(after_p.input_content.encode("utf-8"), _ZLIB_LEVEL)
        )
    if new.history is not old.history and new.history != old.history:
        row["history"] = _dump_history(new.history)
    old_derived = _derived(old)
    for name, value in _derived(new).items():
        if value != old_derived[name]:
            row[name] = value
    return row


def off_loop(record: LedgerRecord) -> bool:
    """True when encoding ``record``'s payload is worth a thread hop."""
    return record.payload is not None and len(record.payload.input_content) > OFF_LOOP_BYTES


async def from_row_async(row: Mapping[str, Any]) -> LedgerRecord:
    """:func:`from_row`, decompressing a large input on a worker thread."""
    blob = row.get("input_z")
    if blob is not None and len(blob) > OFF_LOOP_BYTES // 8:
        return await asyncio.to_thread(from_row, row)
    return from_row(row)
