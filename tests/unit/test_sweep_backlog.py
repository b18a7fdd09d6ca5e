"""The sweeper leaves running loops to their status events while the events queue has a
backlog, for a bounded time from when their phase began; the events consumer says when
there is one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anyio

from a2i_worker.intake import MessageBatcher, QueueConsumer, SqsMessage, Verdict
from a2i_worker.ledger.protocol import LedgerRecord, Phase
from a2i_worker.sweeper import held_back
from helpers import wait_until

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOLD = timedelta(minutes=5)


def _open(since: datetime, status: str = "InProgress") -> LedgerRecord:
    return LedgerRecord(
        request_id="r-1",
        fingerprint="f",
        phase=Phase.OPEN,
        loop_name="l-1",
        loop_status=status,
        phase_since=since,
    )


def test_a_running_loop_waits_for_its_event_only_while_there_is_a_backlog() -> None:
    young = _open(NOW - timedelta(seconds=30))
    assert held_back(young, NOW, backlogged=True, hold=HOLD)
    assert not held_back(young, NOW, backlogged=False, hold=HOLD)  # events lost: Describe


def test_the_hold_counts_from_when_the_phase_began() -> None:
    assert held_back(_open(NOW - HOLD + timedelta(seconds=1)), NOW, backlogged=True, hold=HOLD)
    assert not held_back(_open(NOW - HOLD), NOW, backlogged=True, hold=HOLD)


def test_a_loop_known_to_be_finished_is_never_held_back() -> None:
    done = _open(NOW - timedelta(seconds=5), status="Completed")
    assert not held_back(done, NOW, backlogged=True, hold=HOLD)


class QueueOf:
    """ReceiveMessage answers from a list of bodies (at most what was asked for)."""

    def __init__(self, n: int) -> None:
        self.bodies = [f"m-{i}" for i in range(n)]

    async def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        take = self.bodies[: kwargs["MaxNumberOfMessages"]]
        del self.bodies[: len(take)]
        if not take:
            await anyio.sleep(0.01)  # an empty long poll, shortened
        return {
            "Messages": [
                {"MessageId": b, "ReceiptHandle": b, "Body": b, "Attributes": {}} for b in take
            ]
        }

    async def delete_message_batch(self, **kwargs: Any) -> dict[str, Any]:
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}


async def test_the_consumer_reports_a_backlog_after_a_full_receive() -> None:
    sqs = QueueOf(25)
    handled: list[str] = []

    async def handle(msg: SqsMessage) -> str:
        handled.append(msg.body)
        return Verdict.DELETE

    batcher = MessageBatcher(cast(Any, sqs))
    consumer = QueueConsumer(
        name="events",
        sqs=cast(Any, sqs),
        queue_url="http://127.0.0.1:9/123456789012/events",
        handler=handle,
        batcher=batcher,
        capacity=100,
    )
    assert not consumer.backlogged(60)  # nothing received yet
    async with anyio.create_task_group() as tg:
        consumer.bind_handler_group(tg)
        tg.start_soon(batcher.run)
        tg.start_soon(consumer.receive_until_stopped)
        await wait_until(lambda: len(handled) == 25, 5, message="25 messages handled")
        await wait_until(lambda: consumer.held == 0, 5, message="25 messages deleted")
        consumer.stop_receiving()
        tg.cancel_scope.cancel()
    assert consumer.backlogged(60)  # receives of 10 came back full
    assert not consumer.backlogged(-1)  # ... but not within the last -1 s
