"""Adaptive rate (per operation class) and quota gate: the public API.

The implementation lives in :mod:`a2i_worker.limiting` (pure arithmetic in ``rate``, the
asyncio bucket in ``bucket`` / ``adaptive``, the concurrency gate in ``gate``, the receive
window in ``window``);
docs/limiter.md explains the algorithm and its parameters.
"""

from __future__ import annotations

from a2i_worker.limiting import (
    CLASSES,
    AdaptiveLimiter,
    AdaptiveRate,
    ClassSnapshot,
    Clock,
    GateParams,
    GateSnapshot,
    LimiterSnapshot,
    MonotonicClock,
    QuotaGate,
    RateMeter,
    RateParams,
    ReceiveWindow,
    Slots,
    TunableLimiter,
)

__all__ = [
    "CLASSES",
    "AdaptiveLimiter",
    "AdaptiveRate",
    "ClassSnapshot",
    "Clock",
    "GateParams",
    "GateSnapshot",
    "LimiterSnapshot",
    "MonotonicClock",
    "QuotaGate",
    "RateMeter",
    "RateParams",
    "ReceiveWindow",
    "Slots",
    "TunableLimiter",
]
