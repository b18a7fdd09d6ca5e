"""The WSGI side of the local moto server: keep-alive request handling and middleware.

- :class:`KeepAliveHandler` answers HTTP/1.1 with persistent connections: the response body
  is buffered and sent with a ``Content-Length``, and the unread rest of a request body is
  drained so the next request on the connection starts where it should.
- :class:`ClosingHandler` is moto's own behaviour (``Connection: close``), for benchmarks.
- :class:`SerializeDynamoDB` makes DynamoDB's conditional writes atomic across threads.
- :class:`CountCalls` counts every AWS call by access key, service and operation and
  answers them on ``GET /_a2i_local/calls`` (:data:`CALLS_PATH`).

The server that uses them is :mod:`a2i_worker.local.moto_server`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any, Protocol

import structlog
from moto.moto_server.werkzeug_app import MotoRequestHandler

__all__ = ["CALLS_PATH", "ClosingHandler", "CountCalls", "KeepAliveHandler", "SerializeDynamoDB"]

log = structlog.get_logger(__name__)


class _Server(Protocol):
    """What the handlers need from the server that runs them."""

    idle_timeout: float
    app: Any


_NO_BODY_STATUS = frozenset({204, 304})
_HOP_BY_HOP = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class _BoundedInput:
    """``wsgi.input`` that never reads past the request's Content-Length."""

    def __init__(self, raw: Any, length: int) -> None:
        self._raw = raw
        self._left = length

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._raw.read(n)
        self._left -= len(data)
        if not data:
            self._left = 0
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if size is None or size < 0 else min(size, self._left)
        data: bytes = self._raw.readline(n)
        self._left -= len(data)
        if not data:
            self._left = 0
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterable[bytes]:
        return iter(self.readline, b"")

    def drain(self) -> None:
        while self._left > 0 and self.read(65536):
            pass


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, answering HTTP/1.1 with persistent connections."""

    protocol_version = "HTTP/1.1"
    # Headers and body are separate small writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK add ~40 ms to every response on a reused connection.
    disable_nagle_algorithm = True
    server: _Server  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence the per-request access line (thousands per second under load)."""

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        bounded: _BoundedInput | None = None
        if not environ.get("wsgi.input_terminated"):
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            bounded = _BoundedInput(self.rfile, max(length, 0))
            environ["wsgi.input"] = bounded

        status_headers: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            status_headers[:] = [status, headers]
            return lambda data: body.append(data)

        body: list[bytes] = []
        try:
            app_iter = self.server.app(environ, start_response)
            try:
                body.extend(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("moto_request_failed", method=self.command, path=self.path)
            status_headers[:] = ["500 Internal Server Error", []]
            body = []
            self.close_connection = True

        # Leave the stream at the start of the next request.
        if bounded is not None:
            bounded.drain()
        else:
            while environ["wsgi.input"].read(65536):
                pass

        status, headers = status_headers
        code_str, _, reason = str(status).partition(" ")
        code = int(code_str)
        payload = b"".join(body)
        self.send_response(code, reason)
        app_length: str | None = None
        for key, value in headers:
            if key.lower() == "content-length":
                app_length = value
            if key.lower() in _HOP_BY_HOP:
                continue
            self.send_header(key, value)
        if self.command == "HEAD":
            if app_length is not None:
                self.send_header("Content-Length", app_length)
            else:
                self.send_header("Content-Length", str(len(payload)))
        elif code not in _NO_BODY_STATUS and code >= 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code not in _NO_BODY_STATUS and payload:
            self.wfile.write(payload)
        self.wfile.flush()


class ClosingHandler(MotoRequestHandler):
    """moto's own behaviour (``Connection: close`` on every response), for comparison."""

    server: _Server  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence the per-request access line."""


class SerializeDynamoDB:
    """WSGI middleware: one DynamoDB request at a time.

    moto evaluates a ConditionExpression and then writes, with no lock in between, so two
    threads of a threaded server can both pass the same condition. Real DynamoDB makes a
    conditional write atomic, and the ledger's concurrency promises rest on that; this
    restores it locally. Other services (SQS long polls above all) stay concurrent.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if not target.startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            # Materialise the body inside the lock: the write happens while iterating.
            return list(self._app(environ, start_response))


_CREDENTIAL = re.compile(r"Credential=([^/]*)/[^/]*/[^/]*/([^/]*)/")
CALLS_PATH = "/_a2i_local/calls"


class CountCalls:
    """WSGI middleware: counts every AWS call by access key id, service and operation.

    JSON protocols name the operation in ``X-Amz-Target`` (``AmazonSQS.SendMessage``,
    ``DynamoDB_20120810.PutItem``); the rest (S3 above all) are counted by HTTP method.
    The service comes from the SigV4 credential scope. ``GET /_a2i_local/calls`` answers
    the counts.
    """

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._calls: dict[str, dict[str, int]] = {}

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {key: dict(ops) for key, ops in self._calls.items()}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == CALLS_PATH:
            body = json.dumps(self.snapshot()).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        match = _CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION", "")))
        key, service = match.groups() if match else ("anonymous", "unknown")
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        op = target.rpartition(".")[2] if target else str(environ.get("REQUEST_METHOD", "?"))
        name = f"{service}.{op}"
        with self._lock:
            ops = self._calls.setdefault(key, {})
            ops[name] = ops.get(name, 0) + 1
        return self._app(environ, start_response)
