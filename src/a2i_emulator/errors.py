"""API errors of A2I runtime, as the service model names them.

:class:`ApiError` carries the modeled error code, its HTTP status and a message; the server
turns it into a REST-JSON error response (``x-amzn-ErrorType`` header + ``{"Message"}`` body)
that botocore maps to ``client.exceptions.<Code>``.
"""

from __future__ import annotations

__all__ = ["ERROR_STATUS", "ApiError"]

ERROR_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "ServiceQuotaExceededException": 402,
    "ThrottlingException": 429,
    "InternalServerException": 500,
}


class ApiError(Exception):
    """A modeled error answer (``code`` is one of :data:`ERROR_STATUS`)."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_STATUS:
            raise ValueError(f"unmodeled error code {code}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = ERROR_STATUS[code]
        self.message = message
