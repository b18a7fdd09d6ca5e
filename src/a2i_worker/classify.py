"""Classify AWS client errors in one place.

Every role asks this module what an exception means, by error code and HTTP status
only: never by message text, which AWS does not promise to keep. An exception that is
neither an AWS nor a network error is a BUG: callers log its traceback and back off.
The answer decides between retrying (the SQS message stays), slowing down (limiter,
quota gate), asking Describe (name conflicts) and rejecting with a reason.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from a2i_worker.errors import TransientError

__all__ = ["Classified", "ErrorKind", "classify", "error_code"]


class ErrorKind(enum.StrEnum):
    THROTTLED = "throttled"  # slow down, retry (does not count against the request)
    QUOTA = "quota"  # too many loops in flight: close the gate, retry later
    CONFLICT = "conflict"  # name taken with other input: Describe, never a second loop
    ALREADY_EXISTS = "already_exists"  # name of a finished loop: Describe
    NOT_FOUND = "not_found"
    INVALID = "invalid"  # the request itself is wrong: reject with the reason
    ACCESS = "access"  # permissions/configuration: reject (the operator must act)
    TRANSIENT = "transient"  # 5xx, network, timeouts: retry later
    BUG = "bug"  # not an AWS or network error: a defect; log the traceback, back off


_THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
    }
)
_NOT_FOUND_CODES = frozenset(
    {"ResourceNotFoundException", "NoSuchKey", "NoSuchBucket", "404", "NotFound"}
)
_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "KMS.AccessDeniedException",
        "403",
    }
)


@dataclass(frozen=True)
class Classified:
    kind: ErrorKind
    code: str
    message: str

    @property
    def retryable(self) -> bool:
        return self.kind in (ErrorKind.THROTTLED, ErrorKind.QUOTA, ErrorKind.TRANSIENT)


def error_code(exc: BaseException) -> str:
    """The AWS error code of ``exc`` (``""`` if it is not a ClientError)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: ClientError) -> int:
    meta = exc.response.get("ResponseMetadata", {})
    try:
        return int(meta.get("HTTPStatusCode", 0))
    except (TypeError, ValueError):
        return 0


def classify(exc: BaseException) -> Classified:
    """Map any exception raised by an AWS call to what the caller should do."""
    if isinstance(exc, TransientError):
        # the worker's own verdict on an AWS or network error (e.g. the gateway's retries
        # used up): transient, never a bug
        return Classified(ErrorKind.TRANSIENT, "TransientError", str(exc))
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        status = _status(exc)
        if code in _THROTTLE_CODES or status == 429:
            return Classified(ErrorKind.THROTTLED, code, message)
        if code == "ServiceQuotaExceededException":
            return Classified(ErrorKind.QUOTA, code, message)
        if code == "ConflictException":
            return Classified(ErrorKind.CONFLICT, code, message)
        if code in _NOT_FOUND_CODES:
            return Classified(ErrorKind.NOT_FOUND, code, message)
        if code in _ACCESS_CODES:
            return Classified(ErrorKind.ACCESS, code, message)
        if code in ("ResourceInUseException", "ResourceInUse", "AlreadyExistsException"):
            return Classified(ErrorKind.ALREADY_EXISTS, code, message)
        if status >= 500 or code in (
            "InternalServerException",
            "InternalError",
            "ServiceUnavailable",
        ):
            return Classified(ErrorKind.TRANSIENT, code, message)
        if (
            400 <= status < 500
            or code.endswith("ValidationException")
            or code.startswith("Invalid")
        ):
            return Classified(ErrorKind.INVALID, code, message)
        return Classified(ErrorKind.TRANSIENT, code or "Unknown", message)
    if isinstance(
        exc,
        (
            EndpointConnectionError,
            ConnectTimeoutError,
            ReadTimeoutError,
            ConnectionClosedError,
            aiohttp.ClientError,
            asyncio.TimeoutError,
            ConnectionError,
            OSError,
        ),
    ):
        return Classified(ErrorKind.TRANSIENT, type(exc).__name__, str(exc))
    if isinstance(exc, BotoCoreError):
        return Classified(ErrorKind.TRANSIENT, type(exc).__name__, str(exc))
    return Classified(ErrorKind.BUG, type(exc).__name__, str(exc))
