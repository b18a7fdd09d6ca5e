"""Pagination tokens: opaque, HMAC-signed, bound to the query they were issued for.

A token carries a cursor (an integer position) and the id of the query (the operation's
filters and sort order); :meth:`TokenCodec.decode` refuses a token that was not issued by
this codec or that belongs to another query, as the services do (ValidationException).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

__all__ = ["TokenCodec", "TokenError"]


class TokenError(Exception):
    """NextToken is not one this emulator issued for this query (ValidationException)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @staticmethod
    def query_id(*parts: Any) -> str:
        """A short stable id of a query's parameters (JSON-serialisable parts)."""
        raw = json.dumps(list(parts)).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()[:24]

    def encode(self, query_id: str, cursor: int) -> str:
        payload = json.dumps({"q": query_id, "c": cursor}, separators=(",", ":")).encode()
        token = {"p": payload.decode(), "m": self._mac(payload)}
        return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()

    def _open(self, token: str) -> dict[str, Any] | None:
        try:
            outer = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            payload = outer["p"].encode()
            if not hmac.compare_digest(outer["m"], self._mac(payload)):
                return None
            inner = json.loads(payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return inner if isinstance(inner, dict) else None

    def decode(self, token: str, query_id: str) -> int:
        """The cursor of ``token`` (``TokenError`` unless issued here for ``query_id``)."""
        inner = self._open(token)
        if inner is None:
            raise TokenError("The NextToken is not valid.")
        if inner.get("q") != query_id:
            raise TokenError("The NextToken does not belong to this query.")
        cursor = inner.get("c")
        if isinstance(cursor, bool) or not isinstance(cursor, int):
            raise TokenError("The NextToken is not valid.")
        return cursor
