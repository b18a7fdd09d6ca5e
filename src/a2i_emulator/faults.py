"""Faults on demand: pure decisions about events and operations (seeded RNG, no I/O).

JSON form (control API ``/_emulator/faults``; PUT merges per key)::

    {"events": {"drop": p, "duplicate": p, "delay": p, "delay_seconds": [lo, hi]},
     "operations": {"<Op>": {"error_rate": p, "error_code": "<Code>", "unavailable_rate": p,
                             "latency_ms": [lo, hi]}},
     "outputs": {"missing": p}}

``error_rate`` answers ``error_code``: by default the service's internal error
(InternalServerException, 500); any error the operation's model declares, or a common AWS
error such as AccessDeniedException, can be named instead (the engine checks it), so a
refusal A2I would decide (a role without permission) can be injected. ``unavailable_rate``
(an extension) answers a bare 503 with no body, like a load balancer in front of the
service. ``outputs.missing``: the chance that a Completed loop's output.json is never
written although the loop completes and names it (a lifecycle rule or an operator deleted
it). Unknown keys are refused (``ValueError`` naming the known ones).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from a2i_emulator.strict import check_keys

__all__ = [
    "EventDecision",
    "EventFaults",
    "FaultConfig",
    "OperationDecision",
    "OperationFaults",
    "OutputFaults",
]


def _prob(obj: Mapping[str, Any], key: str, default: float) -> float:
    if key not in obj:
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{key} must be a probability in [0, 1]")
    return float(value)


def _range(obj: Mapping[str, Any], key: str, default: tuple[float, float]) -> tuple[float, float]:
    if key not in obj:
        return default
    value = obj[key]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
            for v in value
        )
        or value[0] > value[1]
    ):
        raise ValueError(f"{key} must be [lo, hi] with 0 <= lo <= hi")
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True, slots=True)
class EventDecision:
    drop: bool
    copies: int  # 1, or 2 when duplicated
    delay_seconds: float  # 0 = publish now


@dataclass(frozen=True, slots=True)
class OperationDecision:
    status: int | None  # None, 500 (InternalServerException) or 503 (bare)
    latency_seconds: float


@dataclass(frozen=True, slots=True)
class EventFaults:
    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: tuple[float, float] = (0.5, 2.0)

    def merged(self, obj: Any) -> EventFaults:
        if not isinstance(obj, Mapping):
            raise TypeError("events must be an object")
        check_keys(obj, ("drop", "duplicate", "delay", "delay_seconds"), "faults.events")
        return EventFaults(
            drop=_prob(obj, "drop", self.drop),
            duplicate=_prob(obj, "duplicate", self.duplicate),
            delay=_prob(obj, "delay", self.delay),
            delay_seconds=_range(obj, "delay_seconds", self.delay_seconds),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "drop": self.drop,
            "duplicate": self.duplicate,
            "delay": self.delay,
            "delay_seconds": list(self.delay_seconds),
        }

    def decide(self, rng: random.Random) -> EventDecision:
        """Drop wins over everything; a duplicated event's copies share one delay decision."""
        if self.drop and rng.random() < self.drop:
            return EventDecision(True, 0, 0.0)
        copies = 2 if self.duplicate and rng.random() < self.duplicate else 1
        delay = 0.0
        if self.delay and rng.random() < self.delay:
            delay = rng.uniform(*self.delay_seconds)
        return EventDecision(False, copies, delay)


def _code(obj: Mapping[str, Any], default: str | None) -> str | None:
    if "error_code" not in obj:
        return default
    value = obj["error_code"]
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("error_code must be an error code (a non-empty string) or null")
    return value


@dataclass(frozen=True, slots=True)
class OperationFaults:
    error_rate: float = 0.0
    unavailable_rate: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    #: What ``error_rate`` answers; None: the service's internal error.
    error_code: str | None = None

    def merged(self, obj: Any) -> OperationFaults:
        if not isinstance(obj, Mapping):
            raise TypeError("operation faults must be an object")
        check_keys(
            obj, ("error_rate", "error_code", "unavailable_rate", "latency_ms"), "operation faults"
        )
        return OperationFaults(
            error_rate=_prob(obj, "error_rate", self.error_rate),
            unavailable_rate=_prob(obj, "unavailable_rate", self.unavailable_rate),
            latency_ms=_range(obj, "latency_ms", self.latency_ms),
            error_code=_code(obj, self.error_code),
        )

    @property
    def inactive(self) -> bool:
        return not self.error_rate and not self.unavailable_rate and self.latency_ms[1] == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "error_code": self.error_code,
            "unavailable_rate": self.unavailable_rate,
            "latency_ms": list(self.latency_ms),
        }

    def decide(self, rng: random.Random) -> OperationDecision:
        latency = 0.0
        if self.latency_ms[1] > 0:
            latency = rng.uniform(*self.latency_ms) / 1000.0
        status: int | None = None
        if self.error_rate and rng.random() < self.error_rate:
            status = 500
        elif self.unavailable_rate and rng.random() < self.unavailable_rate:
            status = 503
        return OperationDecision(status, latency)


@dataclass(frozen=True, slots=True)
class OutputFaults:
    #: Chance that a Completed loop's output.json is not written (the loop still names it).
    missing: float = 0.0

    def merged(self, obj: Any) -> OutputFaults:
        if not isinstance(obj, Mapping):
            raise TypeError("outputs must be an object")
        check_keys(obj, ("missing",), "faults.outputs")
        return OutputFaults(missing=_prob(obj, "missing", self.missing))

    def to_json(self) -> dict[str, Any]:
        return {"missing": self.missing}

    def skip_write(self, rng: random.Random) -> bool:
        return bool(self.missing) and rng.random() < self.missing


_NO_FAULTS = OperationFaults()


@dataclass(frozen=True)
class FaultConfig:
    """All fault settings; immutable, replaced wholesale by :meth:`merged`."""

    events: EventFaults = EventFaults()
    operations: Mapping[str, OperationFaults] = field(default_factory=dict)
    outputs: OutputFaults = OutputFaults()

    def for_operation(self, operation: str) -> OperationFaults:
        return self.operations.get(operation, _NO_FAULTS)

    def merged(self, patch: Any, operations: tuple[str, ...]) -> FaultConfig:
        """A new config with ``patch`` applied (ValueError on bad input, nothing applied)."""
        if not isinstance(patch, Mapping):
            raise TypeError("faults must be an object")
        check_keys(patch, ("events", "operations", "outputs"), "faults")
        events = self.events.merged(patch["events"]) if "events" in patch else self.events
        outputs = self.outputs.merged(patch["outputs"]) if "outputs" in patch else self.outputs
        ops = dict(self.operations)
        raw_ops = patch.get("operations", {})
        if not isinstance(raw_ops, Mapping):
            raise TypeError("operations must be an object")
        for op, raw in raw_ops.items():
            if op not in operations:
                raise ValueError(f"unknown operation {op!r}")
            if raw is None:
                ops.pop(op, None)
            else:
                ops[op] = self.for_operation(op).merged(raw)
        return replace(self, events=events, operations=ops, outputs=outputs)

    def to_json(self, operations: tuple[str, ...]) -> dict[str, Any]:
        return {
            "events": self.events.to_json(),
            "operations": {op: self.for_operation(op).to_json() for op in operations},
            "outputs": self.outputs.to_json(),
        }
