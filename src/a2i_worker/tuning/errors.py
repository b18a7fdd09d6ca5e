"""The one error type of the tuning tools."""

from __future__ import annotations

from a2i_worker.errors import ConfigError

__all__ = ["SimulationError"]


class SimulationError(ConfigError):
    """A simulation cannot run as asked (bad sweep spec, bad JMESPath, unreadable file)."""
