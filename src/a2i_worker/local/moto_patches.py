"""Performance patches for moto's SQS backend, pinned to moto 5.2.5.

moto 5.2.5 checks each received message's retention by calling
``get_queue_attributes(queue, ["MessageRetentionPeriod"])``, which rebuilds *all* queue
attributes three times over, and ``ApproximateNumberOfMessages*`` each scan every
message: a receive costs O(n) per message, O(n^2) per call at depth n. The patch
reads ``queue.message_retention_period`` directly, with the same arithmetic, so the
semantics (a message past retention stops the receive, as in moto) are unchanged.

Each patch names the exact moto version and the SHA-256 of the source of the method
it replaces. :func:`apply_moto_patches` refuses (``MotoPatchError``) to patch anything
else: when moto is upgraded, someone must re-read the replaced code and re-pin.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import moto
from moto.core.utils import unix_time
from moto.sqs.models import Message, SQSBackend

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


def apply_moto_patches() -> None:
    """Apply every patch in :data:`PATCHES` once per process (idempotent, thread-safe)."""
    with _lock:
        for patch in PATCHES:
            if patch.name in _originals:
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
