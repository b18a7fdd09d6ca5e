"""Error types shared by every role.

The one place where "permanent or transient?" is decided: a :class:`PermanentError`
becomes a ``rejected`` result with a reason a person can act on; a
:class:`TransientError` leaves the SQS message where it is, to be retried.
"""

from __future__ import annotations

__all__ = [
    "A2IWorkerError",
    "ConfigError",
    "PermanentError",
    "TransientError",
]


class A2IWorkerError(Exception):
    """Base class of every error raised on purpose by a2i-worker."""


class ConfigError(A2IWorkerError):
    """Configuration is unusable; start-up stops with this message."""


class PermanentError(A2IWorkerError):
    """Retrying cannot help: the request is rejected with ``reason``.

    ``code`` is a short stable identifier (``invalid_message``, ``unknown_route`` …)
    for metrics and consumers; ``reason`` is the sentence a person reads.
    Neither may contain request input or human answers. ``quotes_service``: the reason
    quotes an AWS error message, which the worker does not control (a ValidationException
    may echo part of the input): it goes into the result for the operator, not the log.
    """

    def __init__(self, code: str, reason: str, *, quotes_service: bool = False) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.quotes_service = quotes_service


class TransientError(A2IWorkerError):
    """Retrying later may succeed (5xx, network, throttling): keep the message."""
