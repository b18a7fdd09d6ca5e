"""The start and sweep limits of one worker, built from its settings.

One :class:`~a2i_worker.limiting.AdaptiveLimiter` (a rate per call class), one
:class:`~a2i_worker.limiting.QuotaGate` (the open-loop quota) and the
:class:`~a2i_worker.limiting.ReceiveWindow` that sizes the intake by the start rate
(docs/limiter.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from a2i_worker.limiting import AdaptiveLimiter, GateParams, QuotaGate, RateParams, ReceiveWindow
from a2i_worker.settings import Settings

__all__ = ["Limits", "limits_from_settings"]


@dataclass(frozen=True)
class Limits:
    limiter: AdaptiveLimiter
    gate: QuotaGate
    window: ReceiveWindow


def limits_from_settings(s: Settings) -> Limits:
    limiter = AdaptiveLimiter(
        start=RateParams(
            initial=s.start_rate_initial, min_rate=s.start_rate_min, max_rate=s.start_rate_max
        ),
        sweep=RateParams(
            initial=min(s.sweep_rate_max, s.sweep_rate_initial), max_rate=s.sweep_rate_max
        ),
    )
    gate = QuotaGate(
        GateParams(
            margin=s.quota_gate_margin,
            probe_after=s.quota_gate_probe_seconds,
            probe_jitter=s.quota_gate_probe_jitter,
            probe_step_max=s.quota_gate_probe_step_max,
        )
    )
    window = ReceiveWindow(
        lambda: limiter.rate("start"), seconds=s.receive_window_seconds, ceiling=s.max_in_flight
    )
    limiter.watch("start", window.notify)
    return Limits(limiter=limiter, gate=gate, window=window)
