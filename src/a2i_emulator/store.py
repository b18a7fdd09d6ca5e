"""Human loops and their semantics (pure: no I/O, no clock of its own).

Promises (documented A2I behaviour, see docs/INTERNALS.md "Emulator"):
- Names are unique per account and region, for ever: the name of a finished or deleted loop
  cannot be reused (:class:`NameReusedError` -> ValidationException).
- Start with a name whose loop is active (InProgress/Stopping): identical input returns the
  existing loop (``created=False``); different input is :class:`ConflictError`.
- Stop: InProgress -> Stopping; Stopping -> Stopping (idempotent); terminal -> no-op
  (:class:`StopResult.already_terminal`), the loop's status is never moved.
- Delete: terminal loops only (else :class:`NotTerminalError`); afterwards the loop is gone
  from Describe and List, and its name stays taken.
- A terminal status never changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from a2i_emulator.tokens import TokenCodec, TokenError

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ConflictError",
    "Loop",
    "LoopStore",
    "NameReusedError",
    "NotFoundError",
    "NotTerminalError",
    "Page",
    "StoreError",
    "TokenError",
]

ACTIVE_STATUSES = frozenset({"InProgress", "Stopping"})
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})


class StoreError(Exception):
    """Base of the store's refusals; ``message`` is shown to the API caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConflictError(StoreError):
    """Same name as an active loop, different input (ConflictException)."""


class NameReusedError(StoreError):
    """The name belongs to a finished or deleted loop (ValidationException)."""


class NotFoundError(StoreError):
    """No such loop (ResourceNotFoundException)."""


class NotTerminalError(StoreError):
    """Delete of a loop that is still active (ValidationException)."""


class _Order(Enum):
    ASC = "Ascending"
    DESC = "Descending"


@dataclass(slots=True)
class Loop:
    """One human loop. ``creation_time`` is epoch seconds (UTC)."""

    name: str
    arn: str
    flow_definition_arn: str
    input_content: str
    content_classifiers: tuple[str, ...] | None
    creation_time: float
    seq: int
    status: str = "InProgress"
    failure_reason: str | None = None
    failure_code: str | None = None
    output_s3_uri: str | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    loops: list[Loop]
    next_token: str | None


@dataclass(slots=True)
class _FlowIndex:
    seqs: list[int] = field(default_factory=list)  # ascending creation order
    loops: list[Loop] = field(default_factory=list)


class LoopStore:
    """All loops of one emulated account+region."""

    def __init__(self, region: str, account_id: str, token_key: bytes) -> None:
        self._arn_prefix = f"arn:aws:sagemaker:{region}:{account_id}:human-loop/"
        self._tokens = TokenCodec(token_key)
        self._loops: dict[str, Loop] = {}
        self._by_flow: dict[str, _FlowIndex] = {}
        self._seq = 0
        self._last_time = 0.0
        self.status_counts: dict[str, int] = dict.fromkeys(
            ("InProgress", "Stopping", "Completed", "Failed", "Stopped"), 0
        )
        self.deleted = 0
        self.starts_per_name: dict[str, int] = {}
        self.max_starts_per_name = 0
        self.names_started_more_than_once: list[str] = []
        self.idempotent_repeats = 0

    # -- queries -----------------------------------------------------------------------------

    @property
    def open_loops(self) -> int:
        """Loops not yet terminal (InProgress + Stopping): what the concurrency cap counts."""
        return self.status_counts["InProgress"] + self.status_counts["Stopping"]

    def __len__(self) -> int:
        return len(self._loops)

    def get(self, name: str) -> Loop:
        """The loop called ``name`` (NotFoundError if unknown or deleted)."""
        loop = self._loops.get(name)
        if loop is None or loop.deleted:
            raise NotFoundError(f"Human loop {name} does not exist.")
        return loop

    def peek(self, name: str) -> Loop | None:
        """The loop called ``name`` including deleted ones, or ``None``."""
        return self._loops.get(name)

    def __iter__(self) -> Iterator[Loop]:
        return iter(self._loops.values())

    # -- commands ----------------------------------------------------------------------------

    def start(
        self,
        name: str,
        flow_definition_arn: str,
        input_content: str,
        content_classifiers: tuple[str, ...] | None,
        now: float,
    ) -> tuple[Loop, bool]:
        """Create the loop, or return the active identical one. ``(loop, created)``."""
        existing = self._loops.get(name)
        if existing is not None:
            if existing.deleted or existing.status in TERMINAL_STATUSES:
                raise NameReusedError(
                    f"Human loop name {name} was already used by a finished or deleted human "
                    "loop; names are unique per account and region and cannot be reused."
                )
            if (
                existing.flow_definition_arn == flow_definition_arn
                and existing.input_content == input_content
                and existing.content_classifiers == content_classifiers
            ):
                self.idempotent_repeats += 1
                return existing, False
            raise ConflictError(
                f"Human loop {name} already exists with different input data and is "
                f"{existing.status}."
            )
        # Creation times never go backwards, so creation order == seq order.
        now = max(now, self._last_time)
        self._last_time = now
        self._seq += 1
        loop = Loop(
            name=name,
            arn=self._arn_prefix + name,
            flow_definition_arn=flow_definition_arn,
            input_content=input_content,
            content_classifiers=content_classifiers,
            creation_time=now,
            seq=self._seq,
        )
        self._loops[name] = loop
        index = self._by_flow.get(flow_definition_arn)
        if index is None:
            index = self._by_flow[flow_definition_arn] = _FlowIndex()
        index.seqs.append(loop.seq)
        index.loops.append(loop)
        self.status_counts["InProgress"] += 1
        starts = self.starts_per_name[name] = self.starts_per_name.get(name, 0) + 1
        self.max_starts_per_name = max(self.max_starts_per_name, starts)
        if starts == 2:
            self.names_started_more_than_once.append(name)
        return loop, True

    def _set_status(self, loop: Loop, status: str) -> None:
        self.status_counts[loop.status] -= 1
        self.status_counts[status] += 1
        loop.status = status

    def stop(self, name: str) -> bool:
        """Request a stop. ``True`` if the loop moved InProgress -> Stopping now."""
        loop = self.get(name)
        if loop.status == "InProgress":
            self._set_status(loop, "Stopping")
            return True
        return False

    def finish(
        self,
        name: str,
        status: str,
        *,
        failure_code: str | None = None,
        failure_reason: str | None = None,
        output_s3_uri: str | None = None,
        allowed_from: frozenset[str] = ACTIVE_STATUSES,
    ) -> Loop | None:
        """Move an active loop to terminal ``status``; ``None`` if it is not in ``allowed_from``.

        Never moves a terminal loop.
        """
        if status not in TERMINAL_STATUSES:
            raise ValueError(f"not a terminal status: {status}")
        loop = self._loops.get(name)
        if loop is None or loop.deleted or loop.status not in allowed_from:
            return None
        if loop.status in TERMINAL_STATUSES:
            return None
        self._set_status(loop, status)
        loop.failure_code = failure_code
        loop.failure_reason = failure_reason
        loop.output_s3_uri = output_s3_uri
        return loop

    def delete(self, name: str) -> Loop:
        loop = self.get(name)
        if loop.status not in TERMINAL_STATUSES:
            raise NotTerminalError(
                f"Human loop {name} is {loop.status}; stop it and wait until it is Stopped "
                "before deleting it."
            )
        loop.deleted = True
        self.deleted += 1
        return loop

    # -- listing -----------------------------------------------------------------------------

    def list(
        self,
        flow_definition_arn: str,
        *,
        creation_time_after: float | None = None,
        creation_time_before: float | None = None,
        sort_order: str = "Descending",
        max_results: int = 100,
        next_token: str | None = None,
    ) -> Page:
        """One page of the flow's (non-deleted) loops, filtered by creation time.

        ``creation_time_after``/``before`` are inclusive bounds on CreationTime; the token is
        bound to this exact query (flow, filters, order) and signed, so garbage is refused.
        """
        order = _Order(sort_order)
        query_id = TokenCodec.query_id(
            flow_definition_arn, creation_time_after, creation_time_before, order.value
        )
        index = self._by_flow.get(flow_definition_arn)
        cursor = None if next_token is None else self._tokens.decode(next_token, query_id)
        if index is None:
            return Page([], None)
        seqs, loops = index.seqs, index.loops
        out: list[Loop] = []
        if order is _Order.ASC:
            i = 0 if cursor is None else bisect.bisect_right(seqs, cursor)
            step, stop = 1, len(loops)
        else:
            i = (len(seqs) if cursor is None else bisect.bisect_left(seqs, cursor)) - 1
            step, stop = -1, -1
        last_seq: int | None = None
        while i != stop:
            loop = loops[i]
            ct = loop.creation_time
            if (
                order is _Order.ASC
                and creation_time_before is not None
                and ct > (creation_time_before)
            ):
                break
            if (
                order is _Order.DESC
                and creation_time_after is not None
                and ct < (creation_time_after)
            ):
                break
            if (
                not loop.deleted
                and (creation_time_after is None or ct >= creation_time_after)
                and (creation_time_before is None or ct <= creation_time_before)
            ):
                if len(out) == max_results:
                    return Page(out, self._tokens.encode(query_id, last_seq or loop.seq))
                out.append(loop)
                last_seq = loop.seq
            i += step
        return Page(out, None)

    def clear(self) -> None:
        """Forget every loop, name and count (names become usable again)."""
        self._loops.clear()
        self._by_flow.clear()
        for key in self.status_counts:
            self.status_counts[key] = 0
        self.deleted = 0
        self.starts_per_name.clear()
        self.max_starts_per_name = 0
        self.names_started_more_than_once.clear()
        self.idempotent_repeats = 0
