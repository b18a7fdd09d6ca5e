"""A request's InputContent: inline JSON, or a JSON object read from S3."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from a2i_worker.classify import ErrorKind, classify
from a2i_worker.errors import PermanentError, TransientError
from a2i_worker.messages import ReviewRequest

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

__all__ = ["INPUT_CONTENT_LIMIT", "load_input"]

#: A2I's InputContent limit (characters), from the botocore model.
INPUT_CONTENT_LIMIT = 3_145_728


async def load_input(s3: S3Client, req: ReviewRequest) -> str:
    """The serialized InputContent; PermanentError when it can never be used."""
    if req.input is not None:
        content = json.dumps(req.input, separators=(",", ":"), ensure_ascii=False)
    else:
        assert req.input_s3_uri is not None
        content = await _read_s3_input(s3, req.input_s3_uri)
    if len(content) > INPUT_CONTENT_LIMIT:
        raise PermanentError(
            "input_too_large",
            f"input is {len(content):,} characters serialized; A2I accepts at most "
            f"{INPUT_CONTENT_LIMIT:,}",
        )
    return content


async def _read_s3_input(s3: S3Client, uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        head = await s3.head_object(Bucket=bucket, Key=key)
        if int(head.get("ContentLength", 0)) > INPUT_CONTENT_LIMIT * 4:
            raise PermanentError(
                "input_too_large", f"object at input_s3_uri is {head['ContentLength']:,} bytes"
            )
        obj = await s3.get_object(Bucket=bucket, Key=key)
        async with obj["Body"] as stream:
            raw = await stream.read()
    except PermanentError:
        raise
    except Exception as exc:
        c = classify(exc)
        if c.kind is ErrorKind.NOT_FOUND:
            raise PermanentError(
                "input_not_found", f"no object at input_s3_uri (bucket {bucket!r}): {c.code}"
            ) from exc
        if c.kind is ErrorKind.ACCESS:
            raise PermanentError(
                "input_access_denied", f"the worker may not read input_s3_uri: {c.code}"
            ) from exc
        if c.kind is ErrorKind.BUG:
            raise
        raise TransientError(f"reading input_s3_uri failed: {c.code}") from exc
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PermanentError("input_not_json", "input_s3_uri is not UTF-8 JSON") from exc
    if not isinstance(value, dict):
        raise PermanentError("input_not_object", "the object at input_s3_uri must be a JSON object")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
