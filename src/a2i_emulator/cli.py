"""``a2i-emulator serve``: run the A2I runtime emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

import structlog

from a2i_emulator.server import EmulatorConfig, EmulatorServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a2i-emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulator; prints its URL on stdout")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 = an ephemeral port")
    serve.add_argument("--region", default="us-east-1")
    serve.add_argument("--account-id", default="123456789012")
    serve.add_argument("--s3-endpoint-url", default=None)
    serve.add_argument("--events-endpoint-url", default=None)
    serve.add_argument("--event-bus-name", default="default")
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="stop when stdin closes (a parent process went away)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    server = EmulatorServer(
        EmulatorConfig(
            region=args.region,
            account_id=args.account_id,
            s3_endpoint_url=args.s3_endpoint_url,
            events_endpoint_url=args.events_endpoint_url,
            event_bus_name=args.event_bus_name,
            seed=args.seed,
        )
    )
    url = await server.start(args.host, args.port)
    print(url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if args.exit_on_stdin_eof:
        loop.add_reader(sys.stdin.fileno(), lambda: _on_stdin(stop))
    try:
        await stop.wait()
    finally:
        await server.stop()


def _on_stdin(stop: asyncio.Event) -> None:
    """stdin readable: data (ignored) or EOF (the parent is gone: stop)."""
    if not os.read(sys.stdin.fileno(), 4096):
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        stop.set()


def main() -> None:
    args = _parser().parse_args()
    # stdout carries only the URL (scripts read it); logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if args.command == "serve":
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
