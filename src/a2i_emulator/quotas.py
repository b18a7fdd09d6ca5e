"""Quotas: a token bucket per operation and a cap on open loops (pure, injectable clock).

Promises:
- :class:`TokenBucket` admits at most ``burst + rate * t`` calls in any window of ``t`` seconds.
- :meth:`TokenBucket.configure` is a step change that takes effect for the very next call:
  tokens earned so far are settled at the old rate, then clamped to the new burst.
- :class:`Quotas` answers "throttled?" per operation and "over the open-loop cap?", holds the
  caps on flow definitions and task UIs (ResourceLimitExceeded), and can be reconfigured at
  any time; ``None`` means unlimited. A patch with a key it does not know is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from a2i_emulator.strict import check_keys

__all__ = ["Clock", "Quotas", "RateSpec", "TokenBucket"]

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RateSpec:
    """A sustained ``rate`` (calls per second, > 0) and a ``burst`` (bucket size, >= 1)."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError("rate must be > 0")
        if self.burst < 1:
            raise ValueError("burst must be >= 1")

    @classmethod
    def from_json(cls, obj: Any) -> RateSpec | None:
        """``None`` -> unlimited; ``{"rate": float, "burst": int}`` -> a spec (ValueError else)."""
        if obj is None:
            return None
        if not isinstance(obj, Mapping):
            raise TypeError("rate spec must be an object or null")
        check_keys(obj, ("rate", "burst"), "a rate spec")
        rate = obj.get("rate")
        burst = obj.get("burst", max(1, int(rate)) if isinstance(rate, int | float) else 1)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise TypeError("rate must be a number")
        if isinstance(burst, bool) or not isinstance(burst, int):
            raise TypeError("burst must be an integer")
        return cls(rate=float(rate), burst=burst)

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "burst": self.burst}


class TokenBucket:
    """Classic token bucket; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "spec")

    def __init__(self, spec: RateSpec, clock: Clock = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._tokens = float(spec.burst)
        self._last = clock()

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(float(self.spec.burst), self._tokens + elapsed * self.spec.rate)
        self._last = now

    def try_acquire(self) -> bool:
        """Take one token if available; ``False`` means the call is throttled."""
        self._refill(self._clock())
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def configure(self, spec: RateSpec) -> None:
        """Step change: settle at the old rate, then apply ``spec`` from now on."""
        self._refill(self._clock())
        self.spec = spec
        self._tokens = min(self._tokens, float(spec.burst))

    @property
    def tokens(self) -> float:
        self._refill(self._clock())
        return self._tokens


_CAPS = ("max_in_progress", "max_flow_definitions", "max_human_task_uis")


class Quotas:
    """Per-operation rate limits and the open-loop cap, both changeable while running."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.max_in_progress: int | None = None
        self.max_flow_definitions: int | None = None
        self.max_human_task_uis: int | None = None

    def allow(self, operation: str) -> bool:
        """``True`` if a call of ``operation`` is admitted now (consumes a token)."""
        bucket = self._buckets.get(operation)
        return True if bucket is None else bucket.try_acquire()

    def over_cap(self, open_loops: int) -> bool:
        """``True`` if starting one more loop would exceed the open-loop cap."""
        cap = self.max_in_progress
        return cap is not None and open_loops >= cap

    def set_rate(self, operation: str, spec: RateSpec | None) -> None:
        if spec is None:
            self._buckets.pop(operation, None)
            return
        bucket = self._buckets.get(operation)
        if bucket is None:
            self._buckets[operation] = TokenBucket(spec, self._clock)
        else:
            bucket.configure(spec)

    def tokens(self, operation: str) -> float | None:
        """Tokens in ``operation``'s bucket now (``None``: unlimited); for benchmarks, which
        correct goodput for what the bucket held at the start and end of a window."""
        bucket = self._buckets.get(operation)
        return None if bucket is None else bucket.tokens

    def rate(self, operation: str) -> RateSpec | None:
        bucket = self._buckets.get(operation)
        return None if bucket is None else bucket.spec

    def update(self, patch: Mapping[str, Any], operations: tuple[str, ...]) -> None:
        """Merge a control-API patch ``{"max_in_progress"?, "max_flow_definitions"?,
        "max_human_task_uis"?, "rates"?: {op: spec|null}}``.

        Validates the whole patch before applying any of it (ValueError on bad input).
        """
        check_keys(patch, ("rates", *_CAPS), "quotas")
        caps: dict[str, int | None] = {}
        for key in _CAPS:
            if key in patch:
                cap = patch[key]
                if cap is not None and (
                    isinstance(cap, bool) or not isinstance(cap, int) or cap < 0
                ):
                    raise ValueError(f"{key} must be a non-negative integer or null")
                caps[key] = cap
        rates: dict[str, RateSpec | None] = {}
        raw_rates = patch.get("rates", {})
        if not isinstance(raw_rates, Mapping):
            raise TypeError("rates must be an object")
        for op, raw in raw_rates.items():
            if op not in operations:
                raise ValueError(f"unknown operation {op!r}")
            rates[op] = RateSpec.from_json(raw)
        for key, cap in caps.items():
            setattr(self, key, cap)
        for op, spec in rates.items():
            self.set_rate(op, spec)

    def to_json(self, operations: tuple[str, ...]) -> dict[str, Any]:
        rates: dict[str, Any] = {}
        for op in operations:
            spec = self.rate(op)
            rates[op] = None if spec is None else spec.to_json()
        return {**{key: getattr(self, key) for key in _CAPS}, "rates": rates}
