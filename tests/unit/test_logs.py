"""Logging never takes the worker down, and follows the current stderr."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from a2i_worker.logs import configure_logging


def test_a_closed_stderr_drops_lines_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json", "INFO")
    gone = io.StringIO()
    gone.close()
    monkeypatch.setattr(sys, "stderr", gone)
    structlog.get_logger("t").warning("still alive", request_id="r-1")  # must not raise


def test_lines_go_to_the_current_stderr_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("json", "INFO")
    logger = structlog.get_logger("t")
    logger.info("first")  # cached logger: later stderr swaps must still be honoured
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    logger.bind(request_id="r-2", loop_name="l-2").info("second")
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert line["event"] == "second"
    assert line["request_id"] == "r-2"
    assert line["loop_name"] == "l-2"
    assert line["level"] == "info"
