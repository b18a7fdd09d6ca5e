"""The one error a bad rules document raises."""

from __future__ import annotations

from a2i_worker.errors import ConfigError

__all__ = ["RulesError", "json_pointer"]


def json_pointer(parts: tuple[str | int, ...]) -> str:
    """Render ``parts`` as an RFC 6901 JSON pointer (``""`` is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class RulesError(ConfigError):
    """A rules document is unusable.

    ``source`` names where it came from (a file path or ``"inline"``), ``pointer`` is the
    JSON pointer of the offending member (``""`` for the whole document) and ``reason``
    says what is wrong in words. ``str()`` is ``"<source>: <pointer>: <reason>"``.
    """

    def __init__(self, source: str, pointer: str, reason: str) -> None:
        super().__init__(f"{source}: {pointer}: {reason}")
        self.source = source
        self.pointer = pointer
        self.reason = reason
