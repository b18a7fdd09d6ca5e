"""The pinned moto SQS patches: guarded, semantics-preserving, and actually O(n) per receive."""

from __future__ import annotations

import json
import sys
import threading
import types
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import moto
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.utils import unix_time_millis
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, SQSBackend, sqs_backends

from a2i_worker.local import LocalStack
from a2i_worker.local.moto_patches import (
    PATCHES,
    PINNED_MOTO_VERSION,
    MotoPatchError,
    apply_moto_patches,
    moto_patches_applied,
    original_function,
    source_sha256,
    verify_patch_target,
)

REGION = "us-east-1"


class VisibilityCounter:
    """Counts evaluations of ``Message.visible``: one per message per queue scan."""

    checks: ClassVar[int] = 0
    real: ClassVar[Any] = Message.visible

    @staticmethod
    def visible(message: Message) -> bool:
        VisibilityCounter.checks += 1
        return bool(VisibilityCounter.real.fget(message))


@pytest.fixture
async def sqs(stack: LocalStack, aws_session: Any) -> AsyncIterator[Any]:
    """SQS of the session's moto (the project's MotoServer, patches applied, in-process)."""
    async with aws_session.client("sqs", endpoint_url=stack.moto_url) as client:
        yield client


def test_guard_accepts_the_pinned_moto() -> None:
    assert moto.__version__ == PINNED_MOTO_VERSION
    apply_moto_patches()
    apply_moto_patches()  # idempotent
    assert moto_patches_applied()
    for patch in PATCHES:
        assert getattr(patch.owner, patch.attribute) is patch.replacement
        original = original_function(patch.name)
        assert original is not patch.replacement
        verify_patch_target(
            patch, moto_version=moto.__version__, source_hash=source_sha256(original)
        )


def test_guard_rejects_another_moto_version() -> None:
    patch = PATCHES[0]
    with pytest.raises(MotoPatchError, match=r"pinned to moto 5\.2\.5, found moto 5\.3\.0"):
        verify_patch_target(patch, moto_version="5.3.0", source_hash=patch.source_sha256)


def test_guard_rejects_changed_source() -> None:
    patch = PATCHES[0]
    changed = source_sha256(test_guard_rejects_changed_source)
    with pytest.raises(MotoPatchError, match="source of SQSBackend"):
        verify_patch_target(patch, moto_version=PINNED_MOTO_VERSION, source_hash=changed)


def test_retention_check_agrees_with_moto_at_the_boundary() -> None:
    apply_moto_patches()
    backend = SQSBackend(REGION, DEFAULT_ACCOUNT_ID)
    backend.create_queue("retention-unit", MessageRetentionPeriod="60")
    original = original_function("sqs-retention-check")
    now_ms = int(unix_time_millis())
    for age_s in (0, 30, 59, 61, 120, 3600):
        message = backend.send_message("retention-unit", "x")
        message.sent_timestamp = now_ms - age_s * 1000  # type: ignore[assignment]
        patched = backend.is_message_valid_based_on_retention_period("retention-unit", message)
        assert patched == original(backend, "retention-unit", message)
        assert patched == (age_s < 60)


async def test_messages_past_retention_are_not_delivered(sqs: Any) -> None:
    """Over HTTP, through the patched server: an aged message is withheld, a fresh one not."""
    aged = (
        await sqs.create_queue(
            QueueName="retention-aged", Attributes={"MessageRetentionPeriod": "60"}
        )
    )["QueueUrl"]
    fresh = (
        await sqs.create_queue(
            QueueName="retention-fresh", Attributes={"MessageRetentionPeriod": "60"}
        )
    )["QueueUrl"]
    await sqs.send_message(QueueUrl=aged, MessageBody="old")
    await sqs.send_message(QueueUrl=fresh, MessageBody="new")
    backend = sqs_backends[DEFAULT_ACCOUNT_ID][REGION]
    for message in backend.queues["retention-aged"]._messages:
        message.sent_timestamp = message.sent_timestamp - 120_000  # type: ignore[operator,assignment] # sent two minutes ago: past the 60 s retention

    got_aged = await sqs.receive_message(QueueUrl=aged, MaxNumberOfMessages=10)
    got_fresh = await sqs.receive_message(QueueUrl=fresh, MaxNumberOfMessages=10)

    assert got_aged.get("Messages", []) == []
    assert [m["Body"] for m in got_fresh["Messages"]] == ["new"]


def test_receive_at_backlog_scans_the_queue_once_not_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Count queue scans (visibility checks) of a 10-message receive at a 2,000 backlog."""
    apply_moto_patches()
    depth = 2000
    backend = SQSBackend(REGION, DEFAULT_ACCOUNT_ID)
    backend.create_queue("backlog")
    for i in range(depth):
        backend.send_message("backlog", f"m{i}")
    monkeypatch.setattr(Message, "visible", property(VisibilityCounter.visible))

    attribute_reads = 0
    real_get_queue_attributes = backend.get_queue_attributes

    def counting_get_queue_attributes(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal attribute_reads
        attribute_reads += 1
        return real_get_queue_attributes(*args, **kwargs)

    backend.get_queue_attributes = counting_get_queue_attributes  # type: ignore[method-assign]

    VisibilityCounter.checks = 0
    patched = backend.receive_message("backlog", 10, 0, 30)
    patched_scans, patched_reads = VisibilityCounter.checks, attribute_reads

    # The same backend instance with moto's own retention check (instance attribute only).
    backend.is_message_valid_based_on_retention_period = types.MethodType(  # type: ignore[method-assign]
        original_function("sqs-retention-check"), backend
    )
    VisibilityCounter.checks, attribute_reads = 0, 0
    unpatched = backend.receive_message("backlog", 10, 0, 30)
    unpatched_scans, unpatched_reads = VisibilityCounter.checks, attribute_reads

    assert len(patched) == len(unpatched) == 10
    assert {m.body for m in patched}.isdisjoint({m.body for m in unpatched})
    assert patched_reads == 0
    assert unpatched_reads == 10  # one full attribute rebuild per delivered message
    assert patched_scans <= 100  # stops at the tenth deliverable message
    assert unpatched_scans >= 20 * depth  # O(n) per message: O(n^2) per receive


def test_send_reads_no_queue_attributes_and_keeps_fifo_deduplication(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    apply_moto_patches()
    backend = SQSBackend(REGION, DEFAULT_ACCOUNT_ID)
    backend.create_queue("plain")
    backend.create_queue("dedup.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    for i in range(500):
        backend.send_message("plain", f"m{i}")
    monkeypatch.setattr(Message, "visible", property(VisibilityCounter.visible))
    VisibilityCounter.checks = 0
    for i in range(100):
        backend.send_message("plain", f"n{i}")
    assert VisibilityCounter.checks == 0  # no ApproximateNumberOfMessages scan per send

    backend.send_message("dedup.fifo", "same", group_id="g")
    backend.send_message("dedup.fifo", "same", group_id="g")
    backend.send_message("dedup.fifo", "other", group_id="g")
    assert [m.body for m in backend.queues["dedup.fifo"]._messages] == ["same", "other"]


def test_delete_keeps_moto_semantics() -> None:
    apply_moto_patches()
    backend = SQSBackend(REGION, DEFAULT_ACCOUNT_ID)
    backend.create_queue("deletes")
    for i in range(5):
        backend.send_message("deletes", f"m{i}")
    first = backend.receive_message("deletes", 2, 0, 0)  # visibility 0: receivable again
    again = backend.receive_message("deletes", 1, 0, 30)
    assert again[0].id == first[0].id
    stale_handle = first[0].receipt_handle
    assert stale_handle is not None
    assert first[1].receipt_handle is not None

    backend.delete_message("deletes", stale_handle)  # an old handle still deletes (moto)
    backend.delete_message("deletes", stale_handle)  # deleting twice is not an error
    backend.delete_message("deletes", first[1].receipt_handle)
    with pytest.raises(ReceiptHandleIsInvalid):
        backend.delete_message("deletes", "not-a-handle")
    queue = backend.queues["deletes"]
    assert [m.body for m in queue._messages] == ["m2", "m3", "m4"]
    assert all(m.id != first[0].id for m in queue.pending_messages)


def test_lazy_receive_keeps_redrive_delay_and_in_flight_semantics() -> None:
    apply_moto_patches()
    backend = sqs_backends[DEFAULT_ACCOUNT_ID][REGION]  # moto finds DLQs in the global backend
    name = f"lazy-{uuid.uuid4().hex[:8]}"
    dlq = backend.create_queue(f"{name}-dlq")
    redrive = json.dumps({"deadLetterTargetArn": dlq.queue_arn, "maxReceiveCount": 1})
    backend.create_queue(name, RedrivePolicy=redrive)
    backend.send_message(name, "delayed", delay_seconds=60)
    backend.send_message(name, "first")
    backend.send_message(name, "second")

    got = backend.receive_message(name, 1, 0, 30)
    assert [m.body for m in got] == ["first"]  # the delayed message is skipped
    got = backend.receive_message(name, 10, 0, 0)
    assert [m.body for m in got] == ["second"]  # "first" is in flight
    got = backend.receive_message(name, 10, 0, 0)
    assert got == []  # "second" was received once: maxReceiveCount reached -> DLQ
    assert [m.body for m in backend.queues[f"{name}-dlq"]._messages] == ["second"]
    assert [m.body for m in backend.queues[name]._messages] == ["delayed", "first"]


def test_unknown_patch_names_are_refused() -> None:
    with pytest.raises(ValueError, match="sqs-no-such-patch"):
        apply_moto_patches(["sqs-no-such-patch"])


def test_concurrent_receives_and_deletes_lose_and_duplicate_nothing() -> None:
    """The threaded server runs receives and deletes at once: every message must be
    received exactly once and each delete must remove exactly its own message."""
    apply_moto_patches()
    backend = SQSBackend(REGION, DEFAULT_ACCOUNT_ID)
    backend.create_queue("threads")
    n = 2000
    for i in range(n):
        backend.send_message("threads", f"m{i}")
    received: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def consume() -> None:
        try:
            while True:
                got = backend.receive_message("threads", 10, 0, 300)
                if not got:
                    return
                with lock:
                    received.extend(m.body for m in got)
                for m in got:
                    assert m.receipt_handle is not None
                    backend.delete_message("threads", m.receipt_handle)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=consume) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert len(received) == n
    assert len(set(received)) == n  # no message delivered twice
    assert backend.queues["threads"]._messages == []  # every delete removed its own message
