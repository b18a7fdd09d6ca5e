"""QueueConsumer's pause after failed receives doubles up to ``receive_backoff_max``.

A fake of the SQS seam whose ReceiveMessage always fails (connection refused), so only
the consumer's own pauses space the calls out.
"""

from __future__ import annotations

import time
from typing import Any, cast

import anyio
from botocore.exceptions import EndpointConnectionError

from a2i_worker.intake import MessageBatcher, QueueConsumer, SqsMessage
from helpers import wait_until


class UnreachableSqs:
    """ReceiveMessage raises like an SQS endpoint that refuses connections."""

    def __init__(self) -> None:
        self.receive_times: list[float] = []

    async def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receive_times.append(time.monotonic())
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")


async def _never_called(msg: SqsMessage) -> str:
    raise AssertionError("no message can arrive")


async def test_failed_receives_back_off_no_longer_than_the_cap() -> None:
    sqs = UnreachableSqs()
    errors: list[str] = []
    consumer = QueueConsumer(
        name="requests",
        sqs=cast(Any, sqs),
        queue_url="http://127.0.0.1:9/123456789012/q",
        handler=_never_called,
        batcher=MessageBatcher(cast(Any, sqs)),
        capacity=10,
        receive_backoff_max=0.05,
        on_receive_error=errors.append,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer.receive_until_stopped)
        # With the default cap (20 s, doubling from 0.5 s) the 8th call would come ~1 min in.
        await wait_until(lambda: len(sqs.receive_times) >= 8, 5, message="8 receive attempts")
        consumer.stop_receiving()
    gaps = [b - a for a, b in zip(sqs.receive_times, sqs.receive_times[1:], strict=False)]
    assert max(gaps) < 1.0, gaps
    assert len(errors) == len(sqs.receive_times), "every failure reported (readiness)"
