"""The intake holds what the receive window allows, on real SQS (moto), judged by SQS.

Handlers park until released, as starts wait for the limiter: the number of messages the
consumer takes -- and SQS reports in flight -- follows the window's limit as the rate
moves, and never exceeds it.
"""

from __future__ import annotations

import json

import anyio

from a2i_worker.aws import AwsClients
from a2i_worker.enqueue import send_batches
from a2i_worker.intake import MessageBatcher, QueueConsumer, SqsMessage, Verdict
from a2i_worker.limiting import ReceiveWindow
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until


class Rate:
    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


async def _in_flight(aws: AwsClients, url: str) -> int:
    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


async def test_held_messages_follow_the_window(env: StackEndpoints, aws: AwsClients) -> None:
    url = env.requests_queue_url
    report = await send_batches(aws.sqs, url, [json.dumps({"i": i}) for i in range(150)])
    assert report["failed"] == 0
    rate = Rate(2.0)
    window = ReceiveWindow(rate, seconds=5.0, ceiling=1000)  # 2 x 5 + 10 = 20
    go = anyio.Event()
    most = 0
    batcher = MessageBatcher(aws.sqs)
    consumer: QueueConsumer

    async def handler(msg: SqsMessage) -> str:
        nonlocal most
        most = max(most, consumer.held)
        await go.wait()
        return Verdict.DELETE

    consumer = QueueConsumer(
        name="requests",
        sqs=aws.sqs,
        queue_url=url,
        handler=handler,
        batcher=batcher,
        capacity=1000,
        receivers=4,
        wait_seconds=1,
        visibility_timeout=60,
        heartbeat_interval=20,
        slots=window,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.run)
        async with anyio.create_task_group() as handlers:
            consumer.bind_handler_group(handlers)
            tg.start_soon(consumer.receive_until_stopped)
            await wait_until(lambda: consumer.held == 20, 10, message="20 held")
            assert await _in_flight(aws, url) == 20
            rate.value = 10.0  # 10 x 5 + 10 = 60
            window.notify()
            await wait_until(lambda: consumer.held == 60, 10, message="60 held")
            assert await _in_flight(aws, url) == 60
            assert most <= 60
            rate.value = 0.5  # the window shrinks below what is held: nothing new comes
            assert window.value == 0
            go.set()
            await wait_until(lambda: consumer.handled == 150, 30, message="all handled")
            consumer.stop_receiving()
            await consumer.wait_receivers_done()
        await batcher.flush()
        tg.cancel_scope.cancel()
    assert most <= 60
    assert await _in_flight(aws, url) == 0
