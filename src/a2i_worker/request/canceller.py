"""Cancel, in every phase of a request (docs/lifecycle.md, "cancel"):

- unknown request → a tombstone record: the request ends ``stopped`` now, and when it
  arrives later (SQS does not keep order) it is acknowledged, never started;
- RECEIVED (not decided yet, or deferred by a review budget) → ``stopped`` result; its
  message and any delayed copy find the final record and never start a loop;
- STARTING → the cancel is noted; the starter stops the loop once it exists (or does
  not start it at all); the sweeper does the same after a crash;
- OPEN → StopHumanLoop; the loop's Stopped status gives the ``stopped`` result, and an
  Expired loop is not resubmitted;
- Stopping, finished, or already final → acknowledged, and the log says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from a2i_worker.ledger import transitions
from a2i_worker.ledger.protocol import TERMINAL_LOOP_STATUSES, Ledger, LedgerRecord, Phase
from a2i_worker.messages import CancelRequest, Outcome
from a2i_worker.request.starter import Starter
from a2i_worker.results import Publisher, make_result
from a2i_worker.sqs_types import SqsMessage, Verdict

__all__ = ["CANCELLED_FINGERPRINT", "Canceller"]

log = structlog.get_logger(__name__)

#: Fingerprint of a tombstone: a cancel that arrived before its request.
CANCELLED_FINGERPRINT = "cancelled-before-arrival"


class Canceller:
    def __init__(
        self,
        *,
        ledger: Ledger,
        starter: Starter,
        publisher: Publisher,
        clock: Callable[[], datetime],
    ) -> None:
        self._ledger = ledger
        self._starter = starter
        self._publisher = publisher
        self._clock = clock

    async def cancel(self, msg: SqsMessage, req: CancelRequest) -> str:
        bound = log.bind(request_id=req.request_id)
        now = self._clock()
        claim = await self._ledger.claim(
            req.request_id,
            CANCELLED_FINGERPRINT,
            route=None,
            received_at=now,
            then=lambda r: self._stopped(r, "cancelled before the request arrived", now),
        )
        record = claim.record
        if claim.outcome.value == "new":
            self._notify_final(record)
            bound.info("cancel for a request not seen yet: it will never start a loop")
            return Verdict.DELETE
        if record.loop_name is not None:
            bound = bound.bind(loop_name=record.loop_name)
        if record.phase in transitions.FINAL_PHASES:
            outcome = (record.result or {}).get("outcome")
            bound.info("cancel after the request finished; nothing to stop", outcome=outcome)
            return Verdict.DELETE
        if record.phase is Phase.RECEIVED:
            done = self._stopped(record, "cancelled before a loop was started", now)
            assert done is not None
            if await self._ledger.store_result(
                record.request_id,
                expected=[Phase.RECEIVED],
                result=done.result or {},
                result_id=str(done.result_id),
            ):
                self._notify_final(done)
                bound.info("cancelled before a loop was started")
                return Verdict.DELETE
            return Verdict.RETRY  # moved on concurrently: look again on redelivery
        noted = await self._ledger.request_cancel(record.request_id)
        if noted is None:
            return Verdict.RETRY  # it became final meanwhile: redelivery acknowledges it
        if noted.phase is Phase.STARTING:
            bound.info("cancel noted while the loop is being started; it stops once it exists")
            return Verdict.DELETE
        if noted.loop_status in TERMINAL_LOOP_STATUSES or noted.loop_status == "Stopping":
            bound.info("cancel while the loop is ending; nothing to stop", status=noted.loop_status)
            return Verdict.DELETE
        await self._starter.stop_open(noted, bound)
        return Verdict.DELETE

    def _stopped(self, record: LedgerRecord, reason: str, now: datetime) -> LedgerRecord | None:
        res_id, result = make_result(record, Outcome.STOPPED, now=now, reason=reason)
        return transitions.store_result(
            record,
            expected=[Phase.RECEIVED],
            result=result,
            result_id=res_id,
            decision=None,
            now=now,
        )

    def _notify_final(self, record: LedgerRecord) -> None:
        self._publisher.notify(replace(record, phase=Phase.DONE))

    @staticmethod
    def is_tombstone(record: LedgerRecord) -> bool:
        return record.fingerprint == CANCELLED_FINGERPRINT

    @staticmethod
    def bound(request_id: str) -> Any:
        return log.bind(request_id=request_id)
