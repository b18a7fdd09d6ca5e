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
off (``standard`` mode, ``total_max_attempts=1``); every other call keeps botocore's
``standard`` mode (3 attempts) and no loop of ours. One policy per kind of call:

- A2I runtime, 5xx and network errors: ``A2I_TRANSIENT``, 4 attempts, then
  TransientError. Throttled and quota answers: no pause here, the limiter and the gate
  pace them, until success or cancellation. botocore: off (the A2I client).
- SQS ReceiveMessage: ``SQS_RECEIVE``, until SQS answers (cap: the
  ``receive_backoff_max`` setting). botocore: off (``AwsClients.sqs_no_retries``).
- SQS DeleteMessageBatch, the call or some entries: ``SQS_DELETE``, until deleted or
  refused for good (receipt handle no longer valid). botocore: off.
- SQS ChangeMessageVisibilityBatch raising a retryable error: ``SQS_VISIBILITY``, 3
  attempts (heartbeats, hand-backs; a heartbeat is tried again at the next beat).
  botocore: off.
- SQS SendMessageBatch of ``a2i-worker enqueue``, the call or some entries:
  ``SQS_SEND``, 4 attempts, then counted as failed. botocore: off.
- DynamoDB BatchGetItem's UnprocessedKeys: ``DYNAMODB_UNPROCESSED``, until all are read.
  botocore: standard 3 (it sees a successful answer, so the two do not stack).
- Everything else (publishing results, DLQ copies, budget re-queues, S3, DynamoDB,
  EventBridge, SageMaker): no loop of ours, botocore standard 3; what still fails is
  taken up by the outbox scan (results) or the message's redelivery.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Final

import anyio

__all__ = [
    "A2I_TRANSIENT",
    "DYNAMODB_UNPROCESSED",
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
#: BatchGetItem's UnprocessedKeys (an answer, not an error: botocore never retries it).
DYNAMODB_UNPROCESSED: Final = Policy("dynamodb-unprocessed", base=0.05, cap=1.0)


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
