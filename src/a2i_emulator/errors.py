"""API errors, named as the service models name them.

:class:`ApiError` carries an error code and a message; the server looks the HTTP status up
in the model of the service that answers (:func:`a2i_emulator.model.error_status`) and
writes the protocol's error shape (:func:`a2i_emulator.wire.error_response`), which every
SDK maps to its exception class (``client.exceptions.<Code>`` in botocore).
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A modeled (or common) error answer; ``code`` is the error shape's name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
