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
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

import structlog
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import ThreadedWSGIServer

from a2i_worker.local.moto_patches import apply_moto_patches
from a2i_worker.local.moto_wsgi import (
    CALLS_PATH,
    ClosingHandler,
    CountCalls,
    KeepAliveHandler,
    SerializeDynamoDB,
)

__all__ = ["CALLS_PATH", "MotoServer", "main"]

log = structlog.get_logger(__name__)


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
        app = CountCalls(SerializeDynamoDB(DomainDispatcherApplication(create_backend_app)))
        handler = KeepAliveHandler if keep_alive else ClosingHandler
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
