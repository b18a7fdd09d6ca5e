"""Adaptive rate limiting per operation class and the quota gate on loops in flight.

``a2i_worker.limiter`` re-exports this package's public API; import from there.
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
