"""AWS error answers as botocore raises them: ``ClientError`` with a code and a status."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

__all__ = ["STATUS", "client_error"]

#: HTTP status of each error code the fakes answer (as the services' models declare them;
#: the A2I ones are checked against the emulator's model by the contract test).
STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ConflictException": 409,
    "ResourceNotFoundException": 404,
    "ServiceQuotaExceededException": 402,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "AccessDeniedException": 403,
    "NoSuchKey": 404,
    "NoSuchBucket": 404,
    "AccessDenied": 403,
    "404": 404,
    "403": 403,
    "AWS.SimpleQueueService.NonExistentQueue": 400,
    "ReceiptHandleIsInvalid": 400,
    "InvalidParameterValue": 400,
}


def client_error(
    code: str, message: str = "", *, operation: str = "Op", status: int | None = None
) -> ClientError:
    """The ``ClientError`` botocore raises for an error answer ``code``."""
    response: Any = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status or STATUS.get(code, 400)},
    }
    return ClientError(response, operation)
