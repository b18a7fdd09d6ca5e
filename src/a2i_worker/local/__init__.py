"""The embedded local stack: moto server (keep-alive) + A2I emulator + provisioning."""

from __future__ import annotations

__all__: list[str] = []
