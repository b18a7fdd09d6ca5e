"""What the lifecycle end-to-end tests judge the worker by (docs/lifecycle.md).

:class:`Outside` reads what leaves the worker with the test's own clients, so it can still
read after the worker has drained: the results queue (distinct results by ``result_id``),
the requests queue's depth, the requests DLQ (every copy, with its attributes) and the
emulator's counters. Nothing here looks inside the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from harness import ResultsReader

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until

__all__ = ["FAST", "Outside", "auto_reviewers", "cancel", "loop_exists", "req"]

#: Short intervals: the sweeper, and with it every retry pause (min(30 s, interval)).
FAST: dict[str, Any] = {"sweep_interval_seconds": 0.3}


def req(rid: str, confidence: float = 0.1, **extra: Any) -> dict[str, Any]:
    return {"request_id": rid, "route": "main", "input": {"confidence": confidence}, **extra}


def cancel(rid: str) -> dict[str, Any]:
    return {"type": "cancel", "request_id": rid}


async def auto_reviewers(emulator: EmulatorControl, seconds: float = 0.1) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": seconds},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )


async def loop_exists(emulator: EmulatorControl, name: str) -> bool:
    counters = await emulator.counters(detail=True)
    return int(counters.get("starts_per_name", {}).get(name, 0)) >= 1


@dataclass
class Outside:
    """What the world sees of the worker: results queue, requests DLQ, emulator counters."""

    aws: AwsClients
    env: StackEndpoints
    emulator: EmulatorControl
    results: ResultsReader
    dlq: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, aws: AwsClients, env: StackEndpoints, emulator: EmulatorControl) -> Outside:
        return cls(aws, env, emulator, ResultsReader(aws, env.results_queue_url))

    async def send(self, body: dict[str, Any]) -> str:
        """Send one message; its SQS MessageId (a DLQ copy must name it)."""
        resp = await self.aws.sqs.send_message(
            QueueUrl=self.env.requests_queue_url, MessageBody=json.dumps(body)
        )
        return resp["MessageId"]

    async def result_of(self, rid: str, within: float = 15.0) -> dict[str, Any]:
        async def arrived() -> dict[str, Any] | None:
            while await self.results.poll():
                pass
            got = self.results.by_request.get(rid)
            return got[0] if got else None

        found: dict[str, Any] | None = await wait_until(arrived, within, message=f"result of {rid}")
        assert found is not None
        return found

    async def read_dlq(self) -> list[dict[str, Any]]:
        while True:
            resp = await self.aws.sqs.receive_message(
                QueueUrl=self.env.requests_dlq_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                MessageAttributeNames=["All"],
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return self.dlq
            self.dlq.extend(dict(m) for m in msgs)
            for m in msgs:
                await self.aws.sqs.delete_message(
                    QueueUrl=self.env.requests_dlq_url, ReceiptHandle=m["ReceiptHandle"]
                )

    async def depth(self) -> tuple[int, int]:
        attrs = await self.aws.sqs.get_queue_attributes(
            QueueUrl=self.env.requests_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    async def wait_depth(self, expected: tuple[int, int], what: str) -> None:
        async def reached() -> bool:
            return await self.depth() == expected

        await wait_until(reached, 15, interval=0.05, message=what)

    async def final(self) -> dict[str, list[dict[str, Any]]]:
        """After the worker drained: every distinct result per request (by result_id)."""
        while await self.results.poll():
            pass
        await self.read_dlq()
        return {str(k): v for k, v in self.results.by_request.items()}

    async def counters(self) -> dict[str, Any]:
        return await self.emulator.counters()

    async def op(self, operation: str) -> dict[str, int]:
        ops: dict[str, dict[str, int]] = (await self.counters())["operations"]
        return ops[operation]
