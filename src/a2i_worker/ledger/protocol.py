"""The ledger: source of truth of request -> decision -> loop -> status -> result.

One record per ``request_id``. Implementations (SQLite for one replica, DynamoDB for
many) keep exactly the same contract, checked by one shared contract test suite.
Every write is a conditional transition: a caller states the phase it expects, and
a write that would move a record backwards (or a terminal loop status) is refused
by returning ``False`` / ``None`` rather than raising. The rules themselves live in
:mod:`a2i_worker.ledger.transitions` (pure), shared by every backend.

Datetimes must be timezone-aware (a naive one raises ``ValueError``); every datetime
read back is UTC, exact to the microsecond.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

__all__ = [
    "TERMINAL_LOOP_STATUSES",
    "Claim",
    "ClaimOutcome",
    "Ledger",
    "LedgerRecord",
    "LiveCounts",
    "LoopUpdate",
    "Phase",
    "StartPayload",
    "Step",
]


class Phase(enum.StrEnum):
    RECEIVED = "received"
    STARTING = "starting"
    OPEN = "open"
    DONE = "done"
    PUBLISHED = "published"


#: Loop statuses after which A2I never changes a loop again.
TERMINAL_LOOP_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


class Step(NamedTuple):
    """One entry of a record's history: a transition, when, and a short reason (a code,
    never request content or answers)."""

    at: datetime
    phase: str
    loop_status: str | None
    attempt: int
    note: str | None = None


@dataclass(frozen=True)
class StartPayload:
    """What StartHumanLoop needs, kept so an expired loop can be resubmitted."""

    flow_definition_arn: str
    input_content: str
    content_classifiers: tuple[str, ...] = ()


@dataclass(frozen=True)
class LedgerRecord:
    request_id: str
    fingerprint: str
    phase: Phase
    route: str | None = None
    attempt: int = 1
    loop_name: str | None = None
    loop_arn: str | None = None
    loop_status: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    loop_created_at: datetime | None = None
    loop_finished_at: datetime | None = None
    #: Activation decision as JSON-able data (activated flag + fired conditions).
    decision: dict[str, Any] | None = None
    #: Non-sensitive context for the final result (metadata, prediction ref, timings).
    context: dict[str, Any] | None = None
    payload: StartPayload | None = None
    result: dict[str, Any] | None = None
    result_id: str | None = None
    received_at: datetime | None = None
    updated_at: datetime | None = None
    #: Sweeper bookkeeping: when this record should next be looked at.
    next_check_at: datetime | None = None
    version: int = 0
    #: When the current stage began: the phase or the loop status last changed. Every
    #: time rule (stopping timeout, start timeout) counts from here, never from
    #: ``updated_at``, which every reschedule refreshes.
    phase_since: datetime | None = None
    #: Failed tries in the current stage (output reads, starts by the sweeper); reset
    #: when the stage changes. Bounded by the finisher and the starter.
    tries: int = 0
    #: A cancel arrived while no loop could be stopped yet (STARTING) or was stopped:
    #: never start (or resubmit) a loop for this request again.
    cancel_requested_at: datetime | None = None
    #: A rejection's copy of the original went to the requests DLQ (exactly once).
    dlq_copied_at: datetime | None = None
    #: SQS MessageId of the message a rejection was decided for.
    source_message_id: str | None = None
    #: The record's transitions, oldest first (the first and the latest ones when long):
    #: what ``a2i-worker requests show`` prints. Written by every transition (schema v3).
    history: tuple[Step, ...] = ()


class ClaimOutcome(enum.StrEnum):
    NEW = "new"  # record created (RECEIVED, or as claim(then=...) made it): caller owns it
    EXISTING = "existing"  # same request_id and fingerprint: resume from record.phase
    MISMATCH = "mismatch"  # same request_id, different content: reject


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    record: LedgerRecord


@dataclass(frozen=True)
class LoopUpdate:
    """A loop status observation (from an event, Describe or List)."""

    loop_name: str
    status: str
    observed_at: datetime
    failure_code: str | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    loop_arn: str | None = None
    loop_created_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveCounts:
    """What the ledger's sparse indexes count without reading the whole table.

    ``in_progress``: STARTING and OPEN records (a loop being started, open in A2I, or
    finished with its result not stored yet). ``unpublished``: DONE records, results
    waiting for the results queue. ``open_by_flow``: loops open in A2I (not finished) by
    flow definition ARN: (count, creation time of the oldest).
    """

    in_progress: int
    unpublished: int
    open_by_flow: dict[str, tuple[int, datetime | None]]

    @property
    def open_loops(self) -> int:
        return sum(n for n, _ in self.open_by_flow.values())


class Ledger(Protocol):
    async def open(self) -> None:
        """Create tables/check reachability. Raises ConfigError with a clear message."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Cheap reachability check for /readyz; raises on failure."""

    async def claim(
        self,
        request_id: str,
        fingerprint: str,
        *,
        route: str | None,
        received_at: datetime,
        then: Callable[[LedgerRecord], LedgerRecord | None] | None = None,
    ) -> Claim:
        """Create the request's record (phase RECEIVED) unless ``request_id`` exists.

        ``then``: a pure transition (see :mod:`a2i_worker.ledger.transitions`) applied to
        the new record before it is stored, so a request decided before its first claim
        is stored with its decision in one write (``start`` -> STARTING, ``store_result``
        -> DONE). NEW returns the record as stored; EXISTING / MISMATCH return the stored
        record untouched (``then`` is not applied to it).
        """

    async def get(self, request_id: str) -> LedgerRecord | None: ...

    async def get_by_loop(self, loop_name: str) -> LedgerRecord | None: ...

    async def mark_starting(
        self,
        request_id: str,
        *,
        expected: Sequence[Phase],
        attempt: int,
        loop_name: str,
        decision: dict[str, Any] | None,
        context: dict[str, Any] | None,
        payload: StartPayload,
        next_check_at: datetime,
    ) -> bool:
        """Fix the loop name for ``attempt`` before StartHumanLoop is called.

        True when written. Refused (False) unless the phase is in ``expected``, and
        whenever the write could orphan or duplicate a loop: a lower ``attempt`` than
        stored; the same attempt under another loop name; from OPEN while the loop is
        not terminal or without a higher ``attempt``. Clears the previous attempt's
        loop fields. (DynamoDB: ``PermanentError("ledger_item_too_large")`` when the
        record cannot fit in an item even compressed; nothing is written then.)
        """

    async def mark_open(
        self,
        request_id: str,
        *,
        loop_name: str,
        loop_arn: str,
        loop_created_at: datetime | None,
        next_check_at: datetime,
    ) -> LedgerRecord | None:
        """The loop for the current attempt exists: STARTING -> OPEN (same loop_name).

        Returns the record as stored afterwards (so the caller sees, e.g., a cancel noted
        meanwhile without a second read), None when refused. Idempotent: also accepted
        when the record is already OPEN for ``loop_name`` (an earlier call, or a status
        event that arrived first); missing arn/creation time are filled in then. Refused
        for another loop name or any other phase.
        """

    async def apply_loop_update(self, update: LoopUpdate) -> LedgerRecord | None:
        """Record a status observation for the record whose *current* loop is ``loop_name``.

        Idempotent: returns the updated record when the stored status changed, ``None``
        when nothing changed (duplicate, stale, terminal already, or unknown loop).
        """

    async def store_result(
        self,
        request_id: str,
        *,
        expected: Sequence[Phase],
        result: dict[str, Any],
        result_id: str,
        decision: dict[str, Any] | None = None,
        source_message_id: str | None = None,
    ) -> bool:
        """Move to DONE with the final result (outbox). Refused from DONE/PUBLISHED.
        ``source_message_id``: the SQS message a rejection was decided for."""

    async def mark_published(self, request_id: str, result_id: str) -> bool: ...

    async def mark_published_many(self, items: Sequence[tuple[str, str]]) -> int:
        """:meth:`mark_published` for ``(request_id, result_id)`` pairs (one batch of
        results sent together); returns how many moved to PUBLISHED. A backend may do it
        in one round trip; each record is still its own conditional transition."""

    async def reschedule(self, request_id: str, next_check_at: datetime) -> None: ...

    async def note_try(self, request_id: str, next_check_at: datetime) -> LedgerRecord | None:
        """Count one failed try of the current stage and look again at ``next_check_at``
        (STARTING/OPEN only). Returns the record as stored, None when refused."""

    async def request_cancel(self, request_id: str) -> LedgerRecord | None:
        """Note a cancel on a STARTING/OPEN record (idempotent); the record as stored."""

    async def mark_dlq_copied(self, request_id: str) -> bool:
        """A final record's rejection has its DLQ copy; True when written now."""

    async def due_for_check(self, now: datetime, limit: int) -> list[LedgerRecord]:
        """STARTING/OPEN records whose next_check_at <= now, oldest first."""

    async def unpublished(self, limit: int) -> list[LedgerRecord]:
        """DONE records, oldest first."""

    async def open_loops_by_flow(self) -> dict[str, tuple[int, datetime | None]]:
        """Flow definition ARN -> (open loop count, oldest loop creation time)."""

    async def open_records_for_flow(
        self, flow_definition_arn: str, limit: int
    ) -> list[LedgerRecord]:
        """OPEN records of one flow definition, oldest loop first (for List-based sweeps)."""

    async def count_by_phase(self) -> dict[Phase, int]:
        """Every record by phase. O(table) on DynamoDB (a Scan): for operators, not gauges."""

    async def live_counts(self, flows: Collection[str]) -> LiveCounts:
        """The counts the gauges show, from the sparse indexes only (never a table Scan).

        ``open_by_flow`` holds every flow of ``flows`` (zero counts included); a backend
        that can count all flows at the same cost (SQLite) adds the others it finds.
        """
