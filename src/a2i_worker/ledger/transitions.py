"""The ledger's state machine as pure functions, shared by every backend.

Each function takes the record as it is stored (plus the caller's arguments and
``now``) and returns the record as it must be stored next, or ``None`` when the
transition is refused (wrong phase, stale or duplicate observation, terminal loop
status). A backend reads a record, calls one of these, and writes the answer back
with a condition on the ``version`` it read, retrying from a fresh read when the
condition fails. That makes every transition atomic per record on both SQLite and
DynamoDB, and keeps the rules in one place that is tested on its own.

Every returned record has ``version`` incremented by one and ``updated_at = now``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from a2i_worker.ledger.protocol import (
    TERMINAL_LOOP_STATUSES,
    ClaimOutcome,
    LedgerRecord,
    LoopUpdate,
    Phase,
    StartPayload,
    Step,
)

__all__ = [
    "ACTIVE_PHASES",
    "FINAL_PHASES",
    "LOOP_STATUS_RANK",
    "MAX_HISTORY",
    "apply_update",
    "claim_outcome",
    "ensure_utc",
    "is_open_loop",
    "mark_dlq_copied",
    "new_record",
    "note_try",
    "open_loop",
    "publish",
    "request_cancel",
    "reschedule",
    "start",
    "store_result",
]

#: Phases in which a record has a loop name and is watched by the sweeper.
ACTIVE_PHASES = frozenset({Phase.STARTING, Phase.OPEN})
#: Phases that hold the one result of a request; a record never leaves them backwards.
FINAL_PHASES = frozenset({Phase.DONE, Phase.PUBLISHED})

#: Order of A2I loop statuses. An observation ranked below the stored one is stale.
#: Every terminal status has the same (top) rank: the first terminal status stored wins.
LOOP_STATUS_RANK: dict[str, int] = {
    "InProgress": 0,
    "Stopping": 1,
    "Completed": 2,
    "Failed": 2,
    "Stopped": 2,
}


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive datetime is a programming error."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("ledger datetimes must be timezone-aware")
    return value.astimezone(UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return None if value is None else ensure_utc(value)


#: History entries a record keeps: the first one and the latest ``MAX_HISTORY - 1``.
MAX_HISTORY = 32


def _note(record: LedgerRecord, changes: dict[str, Any]) -> str | None:
    """A transition's reason, as a code: what made it (never content or answers)."""
    result = changes.get("result")
    if isinstance(result, dict):
        code = result.get("rejection_code") or result.get("failure_code")
        return f"result {result.get('outcome')}" + (f": {code}" if code else "")
    decision = changes.get("decision")
    if isinstance(decision, dict) and record.decision is None:
        fired = [
            str(f.get("condition_type") if isinstance(f, dict) else f)
            for f in decision.get("fired") or []
        ]
        verdict = "review" if decision.get("activated") else "no review"
        return verdict + (f" ({', '.join(fired)})" if fired else "")
    if changes.get("failure_code") and changes["failure_code"] != record.failure_code:
        return str(changes["failure_code"])
    if changes.get("cancel_requested_at") and record.cancel_requested_at is None:
        return "cancel requested"
    if changes.get("dlq_copied_at") and record.dlq_copied_at is None:
        return "copied to the requests DLQ"
    return None


def _bump(record: LedgerRecord, now: datetime, **changes: Any) -> LedgerRecord:
    """The next version of ``record``. A new phase or loop status starts a new stage:
    ``phase_since = now`` and the stage's ``tries`` start again from zero. A new stage,
    attempt or reason is appended to the record's history."""
    at = ensure_utc(now)
    phase = changes.get("phase", record.phase)
    status = changes.get("loop_status", record.loop_status)
    attempt = changes.get("attempt", record.attempt)
    new_stage = phase is not record.phase or status != record.loop_status
    if new_stage:
        changes.setdefault("phase_since", at)
        changes.setdefault("tries", 0)
    note = _note(record, changes)
    if new_stage or attempt != record.attempt or note is not None:
        steps = (*record.history, Step(at, Phase(phase).value, status, attempt, note))
        if len(steps) > MAX_HISTORY:
            steps = (steps[0], *steps[-(MAX_HISTORY - 1) :])
        changes["history"] = steps
    return dataclasses.replace(record, version=record.version + 1, updated_at=at, **changes)


def is_open_loop(record: LedgerRecord) -> bool:
    """True for an OPEN record whose loop A2I may still change (not terminal yet)."""
    return record.phase is Phase.OPEN and record.loop_status not in TERMINAL_LOOP_STATUSES


def new_record(
    request_id: str, fingerprint: str, *, route: str | None, received_at: datetime
) -> LedgerRecord:
    """The record a first claim creates: phase RECEIVED, version 1."""
    at = ensure_utc(received_at)
    return LedgerRecord(
        request_id=request_id,
        fingerprint=fingerprint,
        phase=Phase.RECEIVED,
        route=route,
        received_at=at,
        updated_at=at,
        phase_since=at,
        version=1,
        history=(Step(at, Phase.RECEIVED.value, None, 1, None),),
    )


def claim_outcome(existing: LedgerRecord, fingerprint: str) -> ClaimOutcome:
    """How a claim of an already stored request_id is answered."""
    if existing.fingerprint == fingerprint:
        return ClaimOutcome.EXISTING
    return ClaimOutcome.MISMATCH


def start(
    record: LedgerRecord,
    *,
    expected: Sequence[Phase],
    attempt: int,
    loop_name: str,
    decision: dict[str, Any] | None,
    context: dict[str, Any] | None,
    payload: StartPayload,
    next_check_at: datetime,
    now: datetime,
) -> LedgerRecord | None:
    """RECEIVED/OPEN/STARTING -> STARTING for ``attempt`` with ``loop_name``.

    Refused unless ``record.phase`` is in ``expected`` and, beyond that, whenever the
    write could orphan or duplicate a loop:

    - ``attempt`` lower than the stored one (an old attempt's name may be finished);
    - the same attempt under a different loop name (a loop may exist under the old one);
    - from OPEN: the current loop is not terminal yet, or ``attempt`` is not higher
      (a resubmission needs the next attempt's name; A2I never reuses a finished name).

    Clears the previous attempt's loop fields (arn, status, failure, output, times).
    """
    if record.phase not in expected or record.phase in FINAL_PHASES or attempt < 1:
        return None
    if attempt < record.attempt:
        return None
    if attempt == record.attempt and record.loop_name not in (None, loop_name):
        return None
    if record.phase is Phase.OPEN and (
        record.loop_status not in TERMINAL_LOOP_STATUSES or attempt <= record.attempt
    ):
        return None
    keep_loop = record.phase is Phase.STARTING and record.loop_name == loop_name
    return _bump(
        record,
        now,
        phase=Phase.STARTING,
        attempt=attempt,
        loop_name=loop_name,
        decision=decision,
        context=context,
        payload=payload,
        next_check_at=ensure_utc(next_check_at),
        loop_arn=record.loop_arn if keep_loop else None,
        loop_status=record.loop_status if keep_loop else None,
        failure_code=None,
        failure_reason=None,
        output_uri=None,
        loop_created_at=record.loop_created_at if keep_loop else None,
        loop_finished_at=None,
    )


def open_loop(
    record: LedgerRecord,
    *,
    loop_name: str,
    loop_arn: str,
    loop_created_at: datetime | None,
    next_check_at: datetime,
    now: datetime,
) -> tuple[bool, LedgerRecord | None]:
    """STARTING -> OPEN for the current loop; idempotent once OPEN.

    Returns ``(accepted, new_record)``. ``accepted`` is True when the record is OPEN
    for ``loop_name`` afterwards (moved now, or already moved by an earlier call or by
    a status event that arrived first); ``new_record`` is None when nothing needs
    writing. Refused for another loop name or any other phase.
    """
    if record.loop_name != loop_name:
        return False, None
    created = _opt_utc(loop_created_at)
    if record.phase is Phase.STARTING:
        return True, _bump(
            record,
            now,
            phase=Phase.OPEN,
            loop_arn=loop_arn,
            loop_created_at=created or record.loop_created_at,
            loop_status=record.loop_status or "InProgress",
            next_check_at=ensure_utc(next_check_at),
        )
    if record.phase is Phase.OPEN:
        changes: dict[str, Any] = {}
        if record.loop_arn is None:
            changes["loop_arn"] = loop_arn
        if record.loop_created_at is None and created is not None:
            changes["loop_created_at"] = created
        return True, (_bump(record, now, **changes) if changes else None)
    return False, None


def apply_update(record: LedgerRecord, update: LoopUpdate, *, now: datetime) -> LedgerRecord | None:
    """Apply a loop status observation to the record whose current loop it is.

    Rules: only STARTING/OPEN records whose ``loop_name`` matches; a stored terminal
    status never changes; an observation ranked below the stored status is stale
    (InProgress after Stopping); unknown statuses are ignored. Stopping may still end
    as Completed or Failed (a reviewer can submit while the stop is in flight, and
    A2I's answer is the fact). A matching update for a STARTING record moves it to
    OPEN (the event overtook ``mark_open``). Returns None when nothing changed.
    """
    if record.phase not in ACTIVE_PHASES or record.loop_name != update.loop_name:
        return None
    new_rank = LOOP_STATUS_RANK.get(update.status)
    if new_rank is None or record.loop_status in TERMINAL_LOOP_STATUSES:
        return None
    old_rank = -1 if record.loop_status is None else LOOP_STATUS_RANK.get(record.loop_status, -1)
    changes: dict[str, Any] = {}
    if new_rank < old_rank:
        return None
    if update.status != record.loop_status:
        changes["loop_status"] = update.status
    if record.phase is Phase.STARTING:
        changes["phase"] = Phase.OPEN
    if record.loop_arn is None and update.loop_arn is not None:
        changes["loop_arn"] = update.loop_arn
    if record.loop_created_at is None and update.loop_created_at is not None:
        changes["loop_created_at"] = ensure_utc(update.loop_created_at)
    if update.status in TERMINAL_LOOP_STATUSES:
        changes["loop_finished_at"] = ensure_utc(update.observed_at)
        changes["output_uri"] = update.output_uri
        changes["failure_code"] = update.failure_code
        changes["failure_reason"] = update.failure_reason
    if not changes:
        return None
    return _bump(record, now, **changes)


def store_result(
    record: LedgerRecord,
    *,
    expected: Sequence[Phase],
    result: dict[str, Any],
    result_id: str,
    decision: dict[str, Any] | None,
    now: datetime,
    source_message_id: str | None = None,
) -> LedgerRecord | None:
    """-> DONE with the one result. Refused from DONE/PUBLISHED or a phase not expected."""
    if record.phase not in expected or record.phase in FINAL_PHASES:
        return None
    return _bump(
        record,
        now,
        phase=Phase.DONE,
        result=result,
        result_id=result_id,
        decision=record.decision if decision is None else decision,
        next_check_at=None,
        source_message_id=source_message_id or record.source_message_id,
    )


def publish(record: LedgerRecord, result_id: str, *, now: datetime) -> LedgerRecord | None:
    """DONE -> PUBLISHED, only for the stored ``result_id``."""
    if record.phase is not Phase.DONE or record.result_id != result_id:
        return None
    return _bump(record, now, phase=Phase.PUBLISHED)


def reschedule(
    record: LedgerRecord, next_check_at: datetime, *, now: datetime
) -> LedgerRecord | None:
    """Move the sweeper's next look; only STARTING/OPEN records are scheduled."""
    at = ensure_utc(next_check_at)
    if record.phase not in ACTIVE_PHASES or record.next_check_at == at:
        return None
    return _bump(record, now, next_check_at=at)


def note_try(
    record: LedgerRecord, next_check_at: datetime, *, now: datetime
) -> LedgerRecord | None:
    """One more failed try of the current stage; look again at ``next_check_at``."""
    if record.phase not in ACTIVE_PHASES:
        return None
    return _bump(record, now, tries=record.tries + 1, next_check_at=ensure_utc(next_check_at))


def request_cancel(record: LedgerRecord, *, now: datetime) -> LedgerRecord | None:
    """Remember a cancel on an active record (the first one counts; idempotent)."""
    if record.phase not in ACTIVE_PHASES or record.cancel_requested_at is not None:
        return None
    return _bump(record, now, cancel_requested_at=ensure_utc(now))


def mark_dlq_copied(record: LedgerRecord, *, now: datetime) -> LedgerRecord | None:
    """The rejection stored in a final record has its one DLQ copy."""
    if record.phase not in FINAL_PHASES or record.dlq_copied_at is not None:
        return None
    return _bump(record, now, dlq_copied_at=ensure_utc(now))
