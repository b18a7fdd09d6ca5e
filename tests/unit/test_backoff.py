"""backoff.Backoff and its policies: full jitter, bounded attempts, reset; all decided by
an injected random source and a fake sleep (nothing here waits)."""

from __future__ import annotations

import random

import pytest

from a2i_worker.backoff import (
    A2I_TRANSIENT,
    SQS_DELETE,
    SQS_RECEIVE,
    SQS_SEND,
    SQS_VISIBILITY,
    Backoff,
    Policy,
)


class FakeSleep:
    """Records the waits asked for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FixedRandom(random.Random):
    """``uniform(a, b)`` returns the point ``fraction`` of the way from a to b."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


async def test_the_upper_bound_doubles_from_base_up_to_cap() -> None:
    sleep = FakeSleep()
    backoff = Backoff(Policy("p", base=0.1, cap=1.0), rng=FixedRandom(1.0), sleep=sleep)
    for _ in range(7):
        assert await backoff.retry()
    assert sleep.waits == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


async def test_full_jitter_waits_anywhere_between_zero_and_the_bound() -> None:
    sleep = FakeSleep()
    backoff = Backoff(Policy("p", base=0.1, cap=1.0), rng=FixedRandom(0.25), sleep=sleep)
    for _ in range(5):
        await backoff.retry()
    assert sleep.waits == pytest.approx([0.025, 0.05, 0.1, 0.2, 0.25])
    zero = FakeSleep()
    await Backoff(Policy("p", base=0.1, cap=1.0), rng=FixedRandom(0.0), sleep=zero).retry()
    assert zero.waits == [0.0]


async def test_a_seeded_source_gives_the_same_waits_each_run_all_within_bounds() -> None:
    policy = Policy("p", base=0.2, cap=3.0)

    async def waits(seed: int) -> list[float]:
        sleep = FakeSleep()
        backoff = Backoff(policy, rng=random.Random(seed), sleep=sleep)
        for _ in range(12):
            await backoff.retry()
        return sleep.waits

    first = await waits(7)
    assert first == await waits(7)
    assert first != await waits(8)
    assert all(0.0 <= w <= policy.bound(n) for n, w in enumerate(first))


async def test_bounded_attempts_stop_without_a_wait_after_the_last() -> None:
    sleep = FakeSleep()
    backoff = Backoff(Policy("p", base=0.1, cap=1.0, attempts=3), rng=FixedRandom(1), sleep=sleep)
    assert [await backoff.retry() for _ in range(3)] == [True, True, False]
    assert backoff.exhausted
    assert sleep.waits == pytest.approx([0.1, 0.2]), "3 attempts: two waits, none after the last"


async def test_reset_starts_the_schedule_over() -> None:
    sleep = FakeSleep()
    backoff = Backoff(Policy("p", base=0.1, cap=5.0, attempts=3), rng=FixedRandom(1), sleep=sleep)
    await backoff.retry()
    await backoff.retry()
    backoff.reset()
    assert not backoff.exhausted
    assert await backoff.retry()
    assert sleep.waits == pytest.approx([0.1, 0.2, 0.1])


async def test_unbounded_policies_keep_retrying_at_the_cap() -> None:
    sleep = FakeSleep()
    backoff = Backoff(SQS_DELETE, rng=FixedRandom(1), sleep=sleep)
    assert all([await backoff.retry() for _ in range(200)])
    assert max(sleep.waits) == SQS_DELETE.cap
    assert not backoff.exhausted


def test_capped_shrinks_the_first_wait_to_fit_and_tries_changes_attempts() -> None:
    small = SQS_RECEIVE.capped(0.05)
    assert (small.base, small.cap, small.attempts) == (0.05, 0.05, None)
    assert SQS_RECEIVE.capped(60.0).base == SQS_RECEIVE.base
    assert A2I_TRANSIENT.tries(2).attempts == 2
    assert A2I_TRANSIENT.tries(2).bound(0) == A2I_TRANSIENT.bound(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 0.0, "cap": 1.0}, "base <= cap"),
        ({"base": 2.0, "cap": 1.0}, "base <= cap"),
        ({"base": 0.1, "cap": 1.0, "attempts": 0}, "attempts"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Policy("p", **kwargs)  # type: ignore[arg-type]


def test_the_named_policies_are_the_documented_ones() -> None:
    """The table in backoff.py's docstring and docs/limiter.md ("Retries") say these."""
    assert (A2I_TRANSIENT.attempts, A2I_TRANSIENT.cap) == (4, 5.0)
    assert (SQS_RECEIVE.attempts, SQS_RECEIVE.base) == (None, 0.5)
    assert SQS_DELETE.attempts is None
    assert SQS_VISIBILITY.attempts == 3
    assert SQS_SEND.attempts == 4
