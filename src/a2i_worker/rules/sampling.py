"""Deterministic sampling: the same request and condition always draw the same number."""

from __future__ import annotations

import hashlib

__all__ = ["draw"]

_SCALE = 100.0 / 2.0**53  # 53 bits: exact in a float, so the draw stays below 100


def draw(request_id: str, salt: str) -> float:
    """A number in ``[0, 100)`` fixed by ``(salt, request_id)``.

    BLAKE2b over UTF-8 bytes, so it is the same in every process, machine and Python
    version (no ``hash()`` randomisation). ``salt`` is the condition's path, which keeps
    two sampling conditions of one document independent of each other.
    """
    data = f"{salt}\x00{request_id}".encode("utf-8", "surrogatepass")
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 11
    return value * _SCALE
