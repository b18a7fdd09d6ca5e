"""Strict control-API bodies: a key nobody reads is an error, not silently ignored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["check_keys"]


def check_keys(obj: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    """``ValueError`` naming the unknown keys of ``obj`` and the known ones, if any."""
    allowed = tuple(known)
    unknown = sorted(str(k) for k in obj if k not in allowed)
    if unknown:
        raise ValueError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"in {where}; known keys: {', '.join(sorted(allowed))}"
        )
