"""One backoff helper for every loop that retries by hand, and one policy per kind of call.

Our own and not stamina/tenacity: those wrap a whole call in a decorator or a
``for attempt in ...`` block and retry what it raises, while our loops retry some
answers without any pause (throttling is paced by the adaptive limiter, a quota answer
by the gate), retry only the failed entries of a batch, and must keep the limiter and
the gate bookkeeping around each attempt exactly as it is. What they share is the
arithmetic, and that is all this module holds.

**Full jitter** ("Exponential Backoff And Jitter", AWS Architecture Blog): retry ``n``
(0 for the first) waits ``uniform(0, min(cap, base * 2**n))``. Replicas that failed
together do not come back together, and the mean wait still doubles. The random
source and the sleep are injected, so a test decides both.

**Who retries what.** botocore's own retries are set in :mod:`a2i_worker.aws` so that
the two never stack: a call retried here goes through a client with botocore retries
off (``total_max_attempts=1``); every other call keeps botocore's ``standard`` mode (3
attempts) and no loop of ours.

============================  =================  ========================  ==========
call                          policy             attempts                  botocore
============================  =================  ========================  ==========
A2I start/describe/list/...   ``A2I_TRANSIENT``  4 (5xx, network)          off
  throttled / quota answer    none: limiter/gate until success/cancel      off
SQS ReceiveMessage            ``SQS_RECEIVE``    until success (cap: set)  off
SQS DeleteMessageBatch        ``SQS_DELETE``     until deleted or final    off
SQS ChangeMessageVisibility   ``SQS_VISIBILITY`` 3 (retryable errors)      off
SQS SendMessageBatch enqueue  ``SQS_SEND``       4 (failed entries too)    off
results, DLQ copies, S3,      none               the outbox scan / the     standard 3
DynamoDB, EventBridge, ...                       message's redelivery
============================  =================  ========================  ==========
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final

import anyio

__all__ = [
    "A2I_TRANSIENT",
    "SQS_DELETE",
    "SQS_RECEIVE",
    "SQS_SEND",
    "SQS_VISIBILITY",
    "Backoff",
    "Policy",
    "Sleep",
]

Sleep = Callable[[float], Awaitable[object]]

_RNG: Final = random.Random()


@dataclass(frozen=True)
class Policy:
    """How one kind of call is retried: full-jitter exponential waits, bounded or not."""

    name: str
    base: float
    """Upper bound of the first wait (seconds); each retry doubles it."""
    cap: float
    """No wait is longer."""
    attempts: int | None = None
    """Total attempts, the first included; ``None``: until success (or cancellation)."""

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError(f"backoff {self.name}: need 0 < base <= cap")
        if self.attempts is not None and self.attempts < 1:
            raise ValueError(f"backoff {self.name}: attempts must be >= 1")

    def bound(self, retry: int) -> float:
        """The longest wait before retry ``retry`` (0 for the first)."""
        return min(self.cap, self.base * 2.0 ** min(retry, 64))

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry ``retry``: uniform in ``[0, bound(retry)]``."""
        return rng.uniform(0.0, self.bound(retry))

    def capped(self, cap: float) -> Policy:
        """The same policy with a different cap (the first wait shrinks to fit)."""
        return replace(self, cap=cap, base=min(self.base, cap))

    def tries(self, attempts: int | None) -> Policy:
        """The same policy with a different number of attempts."""
        return replace(self, attempts=attempts)


#: A2I runtime calls answered with 5xx or a network error (throttling and quota answers
#: are not retried through here: the limiter and the gate pace those).
A2I_TRANSIENT: Final = Policy("a2i-transient", base=0.4, cap=5.0, attempts=4)
#: ReceiveMessage failures: forever, the cap is A2I_WORKER_RECEIVE_BACKOFF_MAX_SECONDS.
SQS_RECEIVE: Final = Policy("sqs-receive", base=0.5, cap=20.0)
#: DeleteMessageBatch, the call or some entries failing: until deleted or refused for good.
SQS_DELETE: Final = Policy("sqs-delete", base=0.1, cap=5.0)
#: ChangeMessageVisibilityBatch raising a retryable error (heartbeats, hand-backs).
SQS_VISIBILITY: Final = Policy("sqs-visibility", base=0.1, cap=1.0, attempts=3)
#: SendMessageBatch of ``a2i-worker enqueue``: the call or some entries failing.
SQS_SEND: Final = Policy("sqs-send", base=0.4, cap=5.0, attempts=4)


class Backoff:
    """The retries of one call under ``policy``: call :meth:`retry` after each failure.

    ``retry()`` counts the failure, then either waits the jittered delay and returns
    True (try again) or, when the attempts are used up, returns False at once.
    :meth:`reset` starts over after a success (a loop that runs forever).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        rng: random.Random | None = None,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self.policy = policy
        self.failures = 0
        self._rng = rng if rng is not None else _RNG
        self._sleep = sleep

    @property
    def exhausted(self) -> bool:
        """Every attempt the policy allows has failed."""
        return self.policy.attempts is not None and self.failures >= self.policy.attempts

    async def retry(self) -> bool:
        """One more failure: wait and return True, or return False if none is left."""
        self.failures += 1
        if self.exhausted:
            return False
        await self._sleep(self.policy.delay(self.failures - 1, self._rng))
        return True

    def reset(self) -> None:
        self.failures = 0
