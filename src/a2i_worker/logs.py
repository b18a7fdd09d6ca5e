"""structlog configuration: JSON when not on a terminal, console on one.

Every line carries what was bound (``request_id``, ``loop_name``); payloads are never
bound or logged by any module: the log never holds request inputs or human answers.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Literal

import structlog

__all__ = ["StderrLogger", "configure_logging"]

LogFormat = Literal["auto", "json", "console"]


class StderrLogger:
    """Writes each line to the *current* ``sys.stderr`` and never raises.

    A worker must not die because its log stream went away (a closed pipe, a test
    runner that swapped and closed stderr): a line that cannot be written is dropped.
    """

    def msg(self, message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_args: object) -> StderrLogger:
    return StderrLogger()


def configure_logging(fmt: LogFormat | str = "auto", level: str = "INFO") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors: list[structlog.types.Processor]
    if use_json:
        processors = [
            *shared,
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(),
        ]
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger_factory,
        cache_logger_on_first_use=True,
    )
    # Quiet the libraries' own chatter (botocore logs request bodies at DEBUG).
    for name in ("botocore", "aiobotocore", "aiohttp.access", "werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.WARNING)
