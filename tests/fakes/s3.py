# ruff: noqa: N803  (the keyword arguments are AWS's parameter names)
"""An in-memory S3 with the calls the roles make (``get_object``, ``head_object``) and the
ones tests and the A2I fake use to put objects there.

Answers have the shapes aiobotocore returns: ``get_object``'s ``Body`` is an async
context manager whose ``read()`` is awaited. Errors are botocore ``ClientError``\\ s:
``NoSuchKey`` / ``NoSuchBucket`` (404) from GET, a bare ``404`` / ``403`` from HEAD (a
HEAD answer has no body, so botocore names the error by its status), ``AccessDenied``
(403) from GET on an object :meth:`FakeS3.deny` made unreadable.
"""

from __future__ import annotations

import hashlib
from types import TracebackType
from typing import Any

from fakes.errors import client_error

__all__ = ["FakeS3"]


class _Body:
    """aiobotocore's StreamingBody as the roles use it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def read(self, amt: int | None = None) -> bytes:
        data, self._data = (self._data, b"") if amt is None else self._split(amt)
        return data

    def _split(self, amt: int) -> tuple[bytes, bytes]:
        return self._data[:amt], self._data[amt:]


class FakeS3:
    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self._denied: set[tuple[str, str]] = set()
        self.calls: list[str] = []

    # -- test side --------------------------------------------------------------------

    def deny(self, bucket: str, key: str) -> None:
        """Reading ``key`` is forbidden from now on (a bucket policy or KMS key)."""
        self._denied.add((bucket, key))

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.buckets.setdefault(bucket, {})[key] = data

    # -- the client's calls -----------------------------------------------------------

    async def create_bucket(self, *, Bucket: str, **_: Any) -> dict[str, Any]:
        self.buckets.setdefault(Bucket, {})
        return {"Location": f"/{Bucket}"}

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes | str, **_: Any) -> Any:
        self.calls.append("PutObject")
        if Bucket not in self.buckets:
            raise client_error(
                "NoSuchBucket", "The specified bucket does not exist", operation="PutObject"
            )
        data = Body.encode() if isinstance(Body, str) else bytes(Body)
        self.buckets[Bucket][Key] = data
        return {"ETag": _etag(data)}

    async def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls.append("HeadObject")
        data = self._find(Bucket, Key, "HeadObject", head=True)
        return {"ContentLength": len(data), "ETag": _etag(data)}

    async def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls.append("GetObject")
        data = self._find(Bucket, Key, "GetObject", head=False)
        return {"Body": _Body(data), "ContentLength": len(data), "ETag": _etag(data)}

    def _find(self, bucket: str, key: str, op: str, *, head: bool) -> bytes:
        if (bucket, key) in self._denied:
            raise client_error("403" if head else "AccessDenied", "Forbidden", operation=op)
        objects = self.buckets.get(bucket)
        if objects is None:
            raise client_error("404" if head else "NoSuchBucket", "Not Found", operation=op)
        if key not in objects:
            raise client_error(
                "404" if head else "NoSuchKey", "The specified key does not exist.", operation=op
            )
        return objects[key]


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
