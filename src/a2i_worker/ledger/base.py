"""What every ledger backend shares: the conditional-transition loop and the protocol's
write methods, expressed with the pure functions of :mod:`a2i_worker.ledger.transitions`.

A backend supplies ``get``, ``get_by_loop`` and ``_write(old, new)`` — a conditional
write that succeeds only while the stored record still is ``old`` (same version).
Everything else about transitions lives here, once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from a2i_worker.errors import TransientError
from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import LedgerRecord, LoopUpdate, Phase, StartPayload

__all__ = ["TransitionLedger"]

#: Optimistic-concurrency retries of one transition before giving up (TransientError).
_MAX_RETRIES = 50


class TransitionLedger(ABC):
    _clock: Callable[[], datetime]

    @abstractmethod
    async def get(self, request_id: str) -> LedgerRecord | None: ...

    @abstractmethod
    async def get_by_loop(self, loop_name: str) -> LedgerRecord | None: ...

    @abstractmethod
    async def _write(self, old: LedgerRecord, new: LedgerRecord) -> bool:
        """Store ``new`` only if the stored record is still ``old`` (same version)."""

    async def _transition(
        self, request_id: str, step: Callable[[LedgerRecord], LedgerRecord | None]
    ) -> tuple[LedgerRecord | None, LedgerRecord | None]:
        """Apply ``step`` atomically: ``(record read, record written or None)``."""
        for _ in range(_MAX_RETRIES):
            old = await self.get(request_id)
            if old is None:
                return None, None
            new = step(old)
            if new is None:
                return old, None
            if await self._write(old, new):
                return old, new
        raise TransientError(f"ledger: too much contention on one record ({_MAX_RETRIES} tries)")

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
        def step(r: LedgerRecord) -> LedgerRecord | None:
            return transitions.start(
                r,
                expected=expected,
                attempt=attempt,
                loop_name=loop_name,
                decision=decision,
                context=context,
                payload=payload,
                next_check_at=next_check_at,
                now=self._clock(),
            )

        return (await self._transition(request_id, step))[1] is not None

    async def mark_open(
        self,
        request_id: str,
        *,
        loop_name: str,
        loop_arn: str,
        loop_created_at: datetime | None,
        next_check_at: datetime,
    ) -> bool:
        accepted = False

        def step(r: LedgerRecord) -> LedgerRecord | None:
            nonlocal accepted
            accepted, new = transitions.open_loop(
                r,
                loop_name=loop_name,
                loop_arn=loop_arn,
                loop_created_at=loop_created_at,
                next_check_at=next_check_at,
                now=self._clock(),
            )
            return new

        await self._transition(request_id, step)
        return accepted

    async def apply_loop_update(self, update: LoopUpdate) -> LedgerRecord | None:
        current = await self.get_by_loop(update.loop_name)
        if current is None:
            return None
        return (
            await self._transition(
                current.request_id,
                lambda r: transitions.apply_update(r, update, now=self._clock()),
            )
        )[1]

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
        def step(r: LedgerRecord) -> LedgerRecord | None:
            return transitions.store_result(
                r,
                expected=expected,
                result=result,
                result_id=result_id,
                decision=decision,
                now=self._clock(),
                source_message_id=source_message_id,
            )

        return (await self._transition(request_id, step))[1] is not None

    async def mark_published(self, request_id: str, result_id: str) -> bool:
        new = (
            await self._transition(
                request_id, lambda r: transitions.publish(r, result_id, now=self._clock())
            )
        )[1]
        return new is not None

    async def mark_published_many(self, items: Sequence[tuple[str, str]]) -> int:
        return sum([await self.mark_published(rid, res_id) for rid, res_id in items])

    async def reschedule(self, request_id: str, next_check_at: datetime) -> None:
        await self._transition(
            request_id, lambda r: transitions.reschedule(r, next_check_at, now=self._clock())
        )

    async def note_try(self, request_id: str, next_check_at: datetime) -> LedgerRecord | None:
        return (
            await self._transition(
                request_id, lambda r: transitions.note_try(r, next_check_at, now=self._clock())
            )
        )[1]

    async def request_cancel(self, request_id: str) -> LedgerRecord | None:
        old, new = await self._transition(
            request_id, lambda r: transitions.request_cancel(r, now=self._clock())
        )
        if new is not None:
            return new
        if old is not None and old.cancel_requested_at is not None:
            return old
        return None

    async def mark_dlq_copied(self, request_id: str) -> bool:
        new = (
            await self._transition(
                request_id, lambda r: transitions.mark_dlq_copied(r, now=self._clock())
            )
        )[1]
        return new is not None
