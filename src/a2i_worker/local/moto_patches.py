"""Performance patches for moto's SQS backend, pinned to moto 5.2.5.

In moto 5.2.5, reading any single queue attribute through ``queue.attributes`` rebuilds
*all* of them, and ``ApproximateNumberOfMessages*`` each scan every message. Three hot
paths do that per message, which makes them O(n) per message at queue depth n:

- ``sqs-retention-check``: each received message's retention is checked through
  ``get_queue_attributes`` (three full rebuilds): a receive is O(n^2). Replaced by a
  direct read of ``queue.message_retention_period``, same arithmetic (a message past
  retention still stops the receive, as in moto).
- ``sqs-receive-lazy-scan``: before delivering anything, a receive evaluated
  ``visible``/``delayed`` (two clock reads) for every message in the queue. Replaced by
  moto's own function iterating lazily, so it stops after ``count`` messages.
- ``sqs-send-message``: every send reads ``ContentBasedDeduplication`` through
  ``queue.attributes``. Replaced by moto's own function with that one lookup read
  from the queue's fields (same value, same FIFO rules).
- ``sqs-delete-message``: a delete built a list of receipt handles per message, twice
  over the whole queue. Replaced by one pass that stops at the message (received
  messages sit near the head of the queue), same errors and bookkeeping.

Each patch names the exact moto version and the SHA-256 of the source of the method
it replaces. :func:`apply_moto_patches` refuses (``MotoPatchError``) to patch anything
else: when moto is upgraded, someone must re-read the replaced code and re-pin.
"""

from __future__ import annotations

import hashlib
import inspect
import string
import threading
from collections.abc import Callable, Iterable, Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import moto
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random as random
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import (
    MAXIMUM_MESSAGE_DELAY,
    Message,
    Queue,
    SQSBackend,
    _filter_message_attributes,
)

__all__ = [
    "PATCHES",
    "PINNED_MOTO_VERSION",
    "MotoPatch",
    "MotoPatchError",
    "apply_moto_patches",
    "moto_patches_applied",
    "original_function",
    "source_sha256",
    "verify_patch_target",
]

PINNED_MOTO_VERSION = "5.2.5"


class MotoPatchError(RuntimeError):
    """moto is not the version (or the code) a patch was written against."""


def _retention_check(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """O(1) replacement of ``SQSBackend.is_message_valid_based_on_retention_period``."""
    retention_period = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    retain_until = retention_period + message.sent_timestamp / 1000  # type: ignore[operator]
    return bool(retain_until > unix_time())


def _content_based_deduplication(queue: Queue) -> bool:
    """``queue.attributes.get("ContentBasedDeduplication") == "true"`` without the rebuild."""
    if not queue.fifo_queue:  # the attribute only exists on FIFO queues
        return False
    value: Any = queue.content_based_deduplication  # type: ignore[attr-defined]
    if isinstance(value, bool):
        value = str(value).lower()
    return bool(value == "true")


def _send_message(
    self: SQSBackend,
    queue_name: str,
    message_body: str,
    message_attributes: dict[str, Any] | None = None,
    delay_seconds: int | None = None,
    deduplication_id: str | None = None,
    group_id: str | None = None,
    system_attributes: dict[str, Any] | None = None,
    validate_group_id: bool = True,
) -> Message:
    """moto 5.2.5 ``SQSBackend.send_message``, reading ContentBasedDeduplication directly."""
    queue = self.get_queue(queue_name)

    self._validate_message(
        queue,
        message_body=message_body,
        delay_seconds=int(delay_seconds or 0),
        deduplication_id=deduplication_id,
        group_id=group_id,
        validate_group_id=validate_group_id,
    )

    delay: int = int(delay_seconds) if delay_seconds is not None else queue.delay_seconds  # type: ignore[attr-defined]

    message_id = str(random.uuid4())
    message = Message(message_id, message_body, system_attributes)

    if _content_based_deduplication(queue):
        sha256 = hashlib.sha256()
        sha256.update(message_body.encode("utf-8"))
        message.deduplication_id = sha256.hexdigest()

    if deduplication_id is not None:
        message.deduplication_id = deduplication_id
        message.sequence_number = "".join(random.choice(string.digits) for _ in range(20))

    if group_id is not None:
        message.group_id = group_id

    if message_attributes:
        message.message_attributes = message_attributes

    if delay > MAXIMUM_MESSAGE_DELAY:
        msg = (
            f"Value {delay} for parameter DelaySeconds is invalid. "
            "Reason: DelaySeconds must be >= 0 and <= 900."
        )
        raise InvalidParameterValue(msg)

    message.mark_sent(delay_seconds=delay)

    queue.add_message(message)

    return message


def _delete_message(self: Queue, receipt_handle: str) -> None:
    """moto 5.2.5 ``Queue.delete_message`` in one early-exit pass, no per-message lists.

    Under :data:`_SQS_LOCK`: the threaded server runs deletes concurrently, and a delete
    that found its message at index i must still find it there when it removes it.
    """
    with _SQS_LOCK:
        if receipt_handle in self.deleted_messages:
            return  # already deleted: moto answers success again
        messages = self._messages
        index = next(
            (
                i
                for i, m in enumerate(messages)
                if m.receipt_handle == receipt_handle or receipt_handle in m._old_receipt_handles
            ),
            -1,
        )
        if index < 0:
            raise ReceiptHandleIsInvalid()
        # Receipt handles are unique, so exactly this message had it (moto removes "all").
        message = messages.pop(index)
        self.pending_messages.discard(message)
        self.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]


def _visible_messages(queue: Queue) -> Iterator[Message]:
    """``queue.messages`` (visible, not delayed), evaluated lazily over a snapshot."""
    return (m for m in list(queue._messages) if m.visible and not m.delayed)


#: Serialises the patched receive scans and deletes across the server's threads: real
#: SQS hides a received message from every other receiver, and a delete removes exactly
#: its own message. moto 5.2.5 takes no lock, so two threads could both receive one
#: message, or a delete could remove the wrong one after another delete shifted the list.
_SQS_LOCK = threading.RLock()


def _pending_groups(queue: Queue) -> set[str]:
    """``queue.pending_message_groups`` over a snapshot (``list(set)`` holds the GIL)."""
    return {m.group_id for m in list(queue.pending_messages) if m.group_id is not None}


def _receive_message(
    self: SQSBackend,
    queue_name: str,
    count: int,
    wait_seconds_timeout: int,
    visibility_timeout: int,
    message_attribute_names: list[str] | None = None,
) -> list[Message]:
    """moto 5.2.5 ``SQSBackend.receive_message``; two changes: the visible messages
    are produced lazily, so a receive stops scanning once it has ``count`` messages
    instead of checking the clock twice for every message in the queue first; and the
    pending message groups are read from a snapshot of the pending set (moto iterates
    the live set, which another server thread may change meanwhile: "Set changed size
    during iteration", a 500 for the client)."""
    if message_attribute_names is None:
        message_attribute_names = []
    queue = self.get_queue(queue_name)
    result: list[Message] = []
    previous_result_count = len(result)

    polling_end = unix_time() + wait_seconds_timeout
    currently_pending_groups = _pending_groups(queue)

    while True:
        if result or (wait_seconds_timeout and unix_time() > polling_end):
            break

        with _SQS_LOCK:  # one receive at a time marks messages received
            messages_to_dlq: list[Message] = []

            for message in _visible_messages(queue):
                if not message.visible:
                    continue

                if message in queue.pending_messages:
                    queue.pending_messages.discard(message)
                    currently_pending_groups = _pending_groups(queue)

                if (
                    message.group_id
                    and queue.fifo_queue
                    and message.group_id in currently_pending_groups
                ):
                    continue

                if (
                    queue.dead_letter_queue is not None
                    and queue.redrive_policy
                    and message.approximate_receive_count >= queue.redrive_policy["maxReceiveCount"]
                ):
                    messages_to_dlq.append(message)
                    continue

                queue.pending_messages.add(message)
                message.mark_received(visibility_timeout=visibility_timeout)
                message_copy = deepcopy(message)
                _filter_message_attributes(message_copy, message_attribute_names)
                if not self.is_message_valid_based_on_retention_period(queue_name, message):
                    break
                result.append(message_copy)
                if len(result) >= count:
                    break

            for message in messages_to_dlq:
                queue._messages.remove(message)
                queue.dead_letter_queue.add_message(message)  # type: ignore[union-attr]

        if previous_result_count == len(result):
            if wait_seconds_timeout == 0:
                break

            queue.wait_for_messages(1)
            continue

        previous_result_count = len(result)

    return result


@dataclass(frozen=True)
class MotoPatch:
    """One method replaced on one moto class, pinned to the source it replaces."""

    name: str
    owner: type
    attribute: str
    source_sha256: str
    replacement: Callable[..., Any]
    why: str


PATCHES: tuple[MotoPatch, ...] = (
    MotoPatch(
        name="sqs-retention-check",
        owner=SQSBackend,
        attribute="is_message_valid_based_on_retention_period",
        source_sha256="cca23b94a5f3af9d9c5af1c09ee5e615017bdf6bd032301cb321c06c7e595d4b",
        replacement=_retention_check,
        why="per-message get_queue_attributes scans the whole queue: receive is O(n^2)",
    ),
    MotoPatch(
        name="sqs-receive-lazy-scan",
        owner=SQSBackend,
        attribute="receive_message",
        source_sha256="065f3e5e7d2144089ce3b5d16d9306243ccd2f3ee11b44beb851292fadb7652f",
        replacement=_receive_message,
        why="queue.messages evaluates every message's visibility before the first delivery",
    ),
    MotoPatch(
        name="sqs-send-message",
        owner=SQSBackend,
        attribute="send_message",
        source_sha256="bf161af09a9e6b860e3dd5d8f58ccc802623caa86883fab9b2ffb333f8f70330",
        replacement=_send_message,
        why="queue.attributes per send scans the whole queue: filling n messages is O(n^2)",
    ),
    MotoPatch(
        name="sqs-delete-message",
        owner=Queue,
        attribute="delete_message",
        source_sha256="fa6fd5b9bd2cafb4aaacd79da7fc656e513e1513197c2939ff002f9ebfd4be46",
        replacement=_delete_message,
        why="two full passes with a list allocation per message, per deleted message",
    ),
)

_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}


def source_sha256(func: Callable[..., Any]) -> str:
    """SHA-256 (hex) of a function's source text, as ``inspect.getsource`` returns it."""
    return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()


def verify_patch_target(patch: MotoPatch, *, moto_version: str, source_hash: str) -> None:
    """Raise :class:`MotoPatchError` unless moto is the pinned version with the pinned code."""
    target = f"{patch.owner.__name__}.{patch.attribute}"
    if moto_version != PINNED_MOTO_VERSION:
        raise MotoPatchError(
            f"moto patch {patch.name!r} ({target}) is pinned to moto {PINNED_MOTO_VERSION}, "
            f"found moto {moto_version}: re-read the replaced method, then re-pin "
            "a2i_worker.local.moto_patches"
        )
    if source_hash != patch.source_sha256:
        raise MotoPatchError(
            f"moto patch {patch.name!r}: the source of {target} changed "
            f"(sha256 {source_hash}, pinned {patch.source_sha256}): re-read it, then re-pin"
        )


def apply_moto_patches(names: Iterable[str] | None = None) -> None:
    """Apply the patches in :data:`PATCHES` (all, or those ``names``) once per process.

    Idempotent and thread-safe. Naming a subset is for benchmarks comparing patches.
    """
    wanted = None if names is None else set(names)
    unknown = (wanted or set()) - {p.name for p in PATCHES}
    if unknown:
        raise ValueError(f"unknown moto patches: {sorted(unknown)}")
    with _lock:
        for patch in PATCHES:
            if (wanted is not None and patch.name not in wanted) or patch.name in _originals:
                continue
            current = getattr(patch.owner, patch.attribute)
            verify_patch_target(
                patch, moto_version=moto.__version__, source_hash=source_sha256(current)
            )
            _originals[patch.name] = current
            setattr(patch.owner, patch.attribute, patch.replacement)


def moto_patches_applied() -> bool:
    """True once :func:`apply_moto_patches` has replaced every method in :data:`PATCHES`."""
    with _lock:
        return all(p.name in _originals for p in PATCHES)


def original_function(name: str) -> Callable[..., Any]:
    """The moto function a patch replaced (or still the current one if not applied)."""
    patch = next(p for p in PATCHES if p.name == name)
    with _lock:
        found = _originals.get(name)
    return found if found is not None else getattr(patch.owner, patch.attribute)
