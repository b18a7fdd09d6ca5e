# ruff: noqa: N803  (the keyword arguments are AWS's parameter names)
"""An in-memory SQS (standard queues) on an injected clock.

The calls the roles, the intake and the publisher make, with aiobotocore's keyword
arguments and response dicts: ``create_queue``, ``get_queue_attributes``,
``send_message[_batch]``, ``receive_message``, ``delete_message[_batch]``,
``change_message_visibility[_batch]``. Visibility timeouts, ``DelaySeconds`` and
``ApproximateReceiveCount`` follow the clock; a queue with a ``RedrivePolicy`` moves a
message to its DLQ on the receive after ``maxReceiveCount`` receives, as SQS does.

Test side: :attr:`FakeQueue.sent` keeps every message ever sent (deleted or not) and
:attr:`FakeQueue.redriven` the ones SQS itself moved to the DLQ.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fakes.errors import client_error

__all__ = ["FakeQueue", "FakeSqs", "StoredMessage"]


@dataclass
class StoredMessage:
    message_id: str
    body: str
    attributes: dict[str, Any]
    sent_at: float
    visible_at: float
    receive_count: int = 0
    receipt: str | None = None
    deleted: bool = False


@dataclass
class FakeQueue:
    url: str
    name: str
    visibility_timeout: int = 30
    dlq_url: str | None = None
    max_receive_count: int | None = None
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    sent: list[StoredMessage] = field(default_factory=list)
    redriven: list[StoredMessage] = field(default_factory=list)

    def live(self) -> list[StoredMessage]:
        """Messages not deleted yet (visible or not)."""
        return [m for m in self.messages.values() if not m.deleted]


class FakeSqs:
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._base = f"https://sqs.{region}.amazonaws.com/{account_id}/"
        self._arn = f"arn:aws:sqs:{region}:{account_id}:"
        self._rng = rng
        self._ids = itertools.count(1)
        self.queues: dict[str, FakeQueue] = {}
        self.calls: list[str] = []

    # -- test side --------------------------------------------------------------------

    def queue(self, url: str) -> FakeQueue:
        return self.queues[url]

    def add_queue(
        self,
        name: str,
        *,
        visibility_timeout: int = 30,
        dlq_url: str | None = None,
        max_receive_count: int | None = None,
    ) -> str:
        url = self._base + name
        self.queues[url] = FakeQueue(url, name, visibility_timeout, dlq_url, max_receive_count)
        return url

    # -- the client's calls -----------------------------------------------------------

    async def create_queue(
        self,
        *,
        QueueName: str,
        Attributes: dict[str, str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("CreateQueue")
        attrs = Attributes or {}
        dlq, count = None, None
        if "RedrivePolicy" in attrs:
            policy = json.loads(attrs["RedrivePolicy"])
            dlq = self._url_of_arn(policy["deadLetterTargetArn"])
            count = int(policy["maxReceiveCount"])
        url = self._base + QueueName
        if url not in self.queues:
            self.add_queue(
                QueueName,
                visibility_timeout=int(attrs.get("VisibilityTimeout", 30)),
                dlq_url=dlq,
                max_receive_count=count,
            )
        return {"QueueUrl": url}

    async def get_queue_attributes(
        self,
        *,
        QueueUrl: str,
        AttributeNames: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("GetQueueAttributes")
        q = self._q(QueueUrl, "GetQueueAttributes")
        now = self._clock().timestamp()
        live = q.live()
        attrs: dict[str, str] = {
            "QueueArn": self._arn + q.name,
            "VisibilityTimeout": str(q.visibility_timeout),
            "ApproximateNumberOfMessages": str(sum(m.visible_at <= now for m in live)),
            "ApproximateNumberOfMessagesNotVisible": str(sum(m.visible_at > now for m in live)),
        }
        if q.dlq_url is not None and q.max_receive_count is not None:
            target = self.queues[q.dlq_url]
            attrs["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": self._arn + target.name,
                    "maxReceiveCount": q.max_receive_count,
                }
            )
        wanted = AttributeNames or ["All"]
        if "All" not in wanted:
            attrs = {k: v for k, v in attrs.items() if k in wanted}
        return {"Attributes": attrs}

    async def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        DelaySeconds: int = 0,
        MessageAttributes: dict[str, Any] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("SendMessage")
        msg = self._put(
            self._q(QueueUrl, "SendMessage"), MessageBody, DelaySeconds, MessageAttributes
        )
        return {"MessageId": msg.message_id, "MD5OfMessageBody": _md5(MessageBody)}

    async def send_message_batch(
        self,
        *,
        QueueUrl: str,
        Entries: list[dict[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("SendMessageBatch")
        q = self._q(QueueUrl, "SendMessageBatch")
        ok = []
        for e in Entries:
            msg = self._put(
                q, e["MessageBody"], e.get("DelaySeconds", 0), e.get("MessageAttributes")
            )
            ok.append(
                {"Id": e["Id"], "MessageId": msg.message_id, "MD5OfMessageBody": _md5(msg.body)}
            )
        return {"Successful": ok, "Failed": []}

    async def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        VisibilityTimeout: int | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        """Visible messages (oldest first, or shuffled with an ``rng``); no long poll: the
        clock only moves when the test moves it."""
        self.calls.append("ReceiveMessage")
        q = self._q(QueueUrl, "ReceiveMessage")
        now = self._clock().timestamp()
        visible = [m for m in q.live() if m.visible_at <= now]
        if self._rng is not None:
            self._rng.shuffle(visible)
        out: list[dict[str, Any]] = []
        for m in visible:
            if len(out) >= MaxNumberOfMessages:
                break
            if q.max_receive_count is not None and m.receive_count >= q.max_receive_count:
                self._redrive(q, m)
                continue
            m.receive_count += 1
            m.receipt = f"rh-{m.message_id}-{m.receive_count}"
            timeout = q.visibility_timeout if VisibilityTimeout is None else VisibilityTimeout
            m.visible_at = now + timeout
            out.append(_wire(m))
        return {"Messages": out} if out else {}

    async def delete_message(
        self, *, QueueUrl: str, ReceiptHandle: str, **_: Any
    ) -> dict[str, Any]:
        self.calls.append("DeleteMessage")
        self._by_receipt(
            self._q(QueueUrl, "DeleteMessage"), ReceiptHandle, "DeleteMessage"
        ).deleted = True
        return {}

    async def delete_message_batch(
        self,
        *,
        QueueUrl: str,
        Entries: list[dict[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("DeleteMessageBatch")
        q = self._q(QueueUrl, "DeleteMessageBatch")
        ok, failed = [], []
        for e in Entries:
            m = self._find_receipt(q, e["ReceiptHandle"])
            if m is None:
                failed.append(_failed(e["Id"], "ReceiptHandleIsInvalid"))
            else:
                m.deleted = True
                ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}

    async def change_message_visibility(
        self,
        *,
        QueueUrl: str,
        ReceiptHandle: str,
        VisibilityTimeout: int,
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("ChangeMessageVisibility")
        q = self._q(QueueUrl, "ChangeMessageVisibility")
        m = self._by_receipt(q, ReceiptHandle, "ChangeMessageVisibility")
        m.visible_at = self._clock().timestamp() + VisibilityTimeout
        return {}

    async def change_message_visibility_batch(
        self,
        *,
        QueueUrl: str,
        Entries: list[dict[str, Any]],
        **_: Any,
    ) -> dict[str, Any]:
        self.calls.append("ChangeMessageVisibilityBatch")
        q = self._q(QueueUrl, "ChangeMessageVisibilityBatch")
        ok, failed = [], []
        now = self._clock().timestamp()
        for e in Entries:
            m = self._find_receipt(q, e["ReceiptHandle"])
            if m is None:
                failed.append(_failed(e["Id"], "ReceiptHandleIsInvalid"))
            else:
                m.visible_at = now + int(e["VisibilityTimeout"])
                ok.append({"Id": e["Id"]})
        return {"Successful": ok, "Failed": failed}

    # -- plumbing ---------------------------------------------------------------------

    def _q(self, url: str, op: str) -> FakeQueue:
        q = self.queues.get(url)
        if q is None:
            raise client_error(
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
                operation=op,
            )
        return q

    def _url_of_arn(self, arn: str) -> str:
        return self._base + arn.rsplit(":", 1)[-1]

    def _put(
        self,
        q: FakeQueue,
        body: str,
        delay: int,
        attrs: dict[str, Any] | None,
        message_id: str | None = None,
    ) -> StoredMessage:
        now = self._clock().timestamp()
        msg = StoredMessage(
            message_id=message_id or f"00000000-0000-4000-8000-{next(self._ids):012d}",
            body=body,
            attributes=dict(attrs or {}),
            sent_at=now,
            visible_at=now + int(delay),
        )
        q.messages[msg.message_id] = msg
        q.sent.append(msg)
        return msg

    def _redrive(self, q: FakeQueue, m: StoredMessage) -> None:
        m.deleted = True
        q.redriven.append(m)
        if q.dlq_url is not None:  # SQS keeps the message id when it moves a message
            self._put(self.queues[q.dlq_url], m.body, 0, m.attributes, m.message_id)

    @staticmethod
    def _find_receipt(q: FakeQueue, receipt: str) -> StoredMessage | None:
        for m in q.messages.values():
            if m.receipt == receipt:
                return m  # deleting a deleted message again succeeds, as in SQS
        return None

    def _by_receipt(self, q: FakeQueue, receipt: str, op: str) -> StoredMessage:
        m = self._find_receipt(q, receipt)
        if m is None:
            raise client_error(
                "ReceiptHandleIsInvalid",
                f'The input receipt handle "{receipt}" is not a valid receipt handle.',
                operation=op,
            )
        return m


def _md5(body: str) -> str:
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def _failed(entry_id: str, code: str) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": True, "Code": code, "Message": code}


def _wire(m: StoredMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "MessageId": m.message_id,
        "ReceiptHandle": m.receipt,
        "MD5OfBody": _md5(m.body),
        "Body": m.body,
        "Attributes": {
            "ApproximateReceiveCount": str(m.receive_count),
            "SentTimestamp": str(int(m.sent_at * 1000)),
        },
    }
    if m.attributes:
        out["MessageAttributes"] = m.attributes
    return out
