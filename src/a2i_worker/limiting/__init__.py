"""Adaptive rate limiting per operation class and the quota gate on loops in flight.

The public API is this package's ``__all__``: import from ``a2i_worker.limiting``, not from
its modules. docs/limiter.md explains the algorithm and its parameters.
"""

from __future__ import annotations

from a2i_worker.limiting.adaptive import CLASSES, AdaptiveLimiter, ClassSnapshot, LimiterSnapshot
from a2i_worker.limiting.bucket import TunableLimiter
from a2i_worker.limiting.clock import Clock, MonotonicClock
from a2i_worker.limiting.gate import GateParams, GateSnapshot, QuotaGate
from a2i_worker.limiting.meter import RateMeter
from a2i_worker.limiting.rate import AdaptiveRate, RateParams
from a2i_worker.limiting.window import ReceiveWindow, Slots

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
