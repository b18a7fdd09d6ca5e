"""The SQS message types every role shares (a neutral module: nothing imports intake).

A handler gets an :class:`SqsMessage` and answers with a :class:`Verdict`; the intake
(:mod:`a2i_worker.intake`) acts on it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Handler", "SqsMessage", "Verdict", "backoff_visibility"]


@dataclass(eq=False)
class SqsMessage:
    """One received message while the worker holds it."""

    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_timestamp_ms: int | None
    received_monotonic: float = field(default_factory=time.monotonic)
    extended_until: float = 0.0  # monotonic time up to which visibility was extended
    done: bool = False
    #: Set by a handler that answers RETRY: seconds until the message is visible again
    #: (None: the consumer's default). Used to back off a message that keeps failing.
    retry_after: int | None = None


class Verdict:
    """What a handler decided about a message."""

    DELETE = "delete"  # the outcome is durable: delete the message
    RETRY = "retry"  # transient trouble: leave it, make it visible again soon
    KEEP = "keep"  # leave it as it is (visibility runs out by itself)


Handler = Callable[[SqsMessage], Awaitable[str]]


def backoff_visibility(receive_count: int, base: int, cap: int = 900) -> int:
    """Visibility for a message that failed ``receive_count`` times: doubling, capped."""
    return int(min(cap, base * 2 ** max(0, min(receive_count - 1, 16))))
