"""moto in server mode behind a threaded, keep-alive HTTP/1.1 server.

moto's own ``ThreadedMotoServer`` runs werkzeug's development server, which answers
every request with ``Connection: close``: each aioboto3 call then pays a TCP
handshake and a new server thread. :class:`MotoServer` serves the same WSGI app
(``DomainDispatcherApplication(create_backend_app)``) with a request handler that
keeps connections open: the response body is buffered and sent with a
``Content-Length``, the unread rest of a request body is drained, and the
connection is reused until the client closes it or it stays idle for
``idle_timeout`` seconds.

Promises:
- binds 127.0.0.1 (or the given host) on an ephemeral port unless told otherwise;
- ``stop()`` stops accepting, closes every open client connection, waits (bounded)
  for the connection threads and releases the port;
- ``accepted_connections`` counts TCP connections accepted since start (tests use it
  to prove keep-alive);
- ``GET /_a2i_local/calls`` answers the AWS calls served so far, as JSON
  ``{access_key_id: {"<service>.<operation>": count}}`` (S3 operations are named by
  HTTP method): benchmarks judge "calls per request" by moto's count, not the client's.

``python -m a2i_worker.local.moto_server --port N`` runs the same server in its own
process, prints ``MOTO_URL=<url>`` on stdout once it accepts connections, and exits on
SIGTERM/SIGINT or, with ``--exit-on-stdin-eof``, when its parent goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

import structlog
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import ThreadedWSGIServer

from a2i_worker.local.moto_patches import apply_moto_patches

__all__ = ["CALLS_PATH", "MotoServer", "main"]

log = structlog.get_logger(__name__)

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


class _KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, answering HTTP/1.1 with persistent connections."""

    protocol_version = "HTTP/1.1"
    # Headers and body are separate small writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK add ~40 ms to every response on a reused connection.
    disable_nagle_algorithm = True
    server: _KeepAliveWSGIServer

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


class _ClosingHandler(MotoRequestHandler):
    """moto's own behaviour (``Connection: close`` on every response), for comparison."""

    server: _KeepAliveWSGIServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silence the per-request access line."""


class _SerializeDynamoDB:
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


class _CountCalls:
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


class _KeepAliveWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server that tracks its connections and threads."""

    daemon_threads = True

    def __init__(
        self, host: str, port: int, idle_timeout: float, *, keep_alive: bool = True
    ) -> None:
        self.idle_timeout = idle_timeout
        self.accepted_connections = 0
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}
        app = _CountCalls(_SerializeDynamoDB(DomainDispatcherApplication(create_backend_app)))
        handler = _KeepAliveHandler if keep_alive else _ClosingHandler
        try:
            super().__init__(host, port, app, handler=handler)
        except SystemExit as exc:  # werkzeug exits on bind errors; make it an error
            raise OSError(f"cannot bind moto server to {host}:{port}") from exc

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="moto-connection",
            daemon=True,
        )
        with self._lock:
            self.accepted_connections += 1
            self._open[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._open.pop(request, None)

    def close_connections(self, timeout: float) -> int:
        """Shut every client connection down and wait for its thread; return leftovers."""
        with self._lock:
            open_now = dict(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in open_now.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(1 for t in open_now.values() if t.is_alive())


class MotoServer:
    """moto's WSGI app on a keep-alive threaded HTTP/1.1 server, in a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        idle_timeout: float = 120.0,
        keep_alive: bool = True,
        patches: Iterable[str] | None = None,
    ):
        """``keep_alive=False`` answers ``Connection: close`` like moto's own server;
        ``patches`` names the moto patches to apply (default: all); for benchmarks."""
        self._host = host
        self._port = port
        self._idle_timeout = idle_timeout
        self._keep_alive = keep_alive
        self._patches = None if patches is None else tuple(patches)
        self._server: _KeepAliveWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:<port>``); only valid after :meth:`start`."""
        if self._server is None:
            raise RuntimeError("MotoServer is not running")
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("MotoServer is not running")
        return int(self._server.socket.getsockname()[1])

    @property
    def accepted_connections(self) -> int:
        """TCP connections accepted since start."""
        return 0 if self._server is None else self._server.accepted_connections

    def start(self) -> str:
        """Apply the pinned moto patches, bind, serve in a daemon thread; return the URL."""
        if self._server is not None:
            raise RuntimeError("MotoServer already started")
        apply_moto_patches(self._patches)
        self._server = _KeepAliveWSGIServer(
            self._host, self._port, self._idle_timeout, keep_alive=self._keep_alive
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="moto-server",
            daemon=True,
        )
        self._thread.start()
        log.info("moto_server_started", url=self.url)
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close client connections, join threads, release the port."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        leftover = server.close_connections(timeout)
        if thread is not None:
            thread.join(timeout)
        if leftover:
            log.warning("moto_connection_threads_still_busy", count=leftover)
        self._server = None
        self._thread = None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m a2i_worker.local.moto_server``."""
    parser = argparse.ArgumentParser(prog="python -m a2i_worker.local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (used by LocalStack so the child dies with its parent)",
    )
    parser.add_argument(
        "--connection-close",
        action="store_true",
        help="answer Connection: close like moto's own server (benchmarks)",
    )
    parser.add_argument(
        "--patches",
        default="all",
        help="comma-separated moto patches to apply, 'all' or 'none' (benchmarks)",
    )
    args = parser.parse_args(argv)
    # stdout carries the MOTO_URL line for the parent; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    patches: list[str] | None = None
    if args.patches != "all":
        patches = [] if args.patches == "none" else args.patches.split(",")
    server = MotoServer(args.host, args.port, keep_alive=not args.connection_close, patches=patches)
    url = server.start()
    if args.exit_on_stdin_eof:

        def watch_stdin() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            stopped.set()

        threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    print(f"MOTO_URL={url}", flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
