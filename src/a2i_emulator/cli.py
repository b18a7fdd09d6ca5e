"""``a2i-emulator serve``: run the A2I runtime emulator until interrupted.

``--flow NAME[=manual|auto:SECONDS]`` (repeatable) creates an Active flow definition at
start-up, writing to ``<--output-s3-uri>/<NAME>``, whose reviewers are manual (loops wait
for ``/_emulator/human-loops/{name}/finish``) or finish after SECONDS (fixed); a bare NAME
follows the default reviewers. Its ARN is logged (stderr); stdout carries only the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass

import structlog

from a2i_emulator.reviewers import ReviewerSpec
from a2i_emulator.server import EmulatorConfig, EmulatorServer

__all__ = ["FlowOption", "main", "parse_flow_option"]

log = structlog.get_logger(__name__)
_FLOW_NAME = re.compile(r"[a-z0-9](-*[a-z0-9]){0,62}\Z")


@dataclass(frozen=True)
class FlowOption:
    name: str
    reviewers: ReviewerSpec | None


def parse_flow_option(text: str) -> FlowOption:
    """``NAME``, ``NAME=manual`` or ``NAME=auto:SECONDS`` (argparse type; ValueError if bad)."""
    name, _, mode = text.partition("=")
    if not _FLOW_NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"flow name {name!r} must match [a-z0-9](-*[a-z0-9]){{0,62}}"
        )
    if not mode:
        return FlowOption(name, None)
    if mode == "manual":
        return FlowOption(name, ReviewerSpec(mode="manual"))
    kind, _, seconds = mode.partition(":")
    try:
        delay = float(seconds)
    except ValueError:
        delay = -1.0
    if kind != "auto" or not delay >= 0:
        raise argparse.ArgumentTypeError(
            f"--flow {text!r}: use NAME, NAME=manual or NAME=auto:SECONDS (SECONDS >= 0)"
        )
    return FlowOption(name, ReviewerSpec.from_json({"mode": "auto", "delay": {"seconds": delay}}))


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
        "--flow",
        action="append",
        default=[],
        type=parse_flow_option,
        metavar="NAME[=manual|auto:SECONDS]",
        help="create an Active flow definition at start-up (repeatable)",
    )
    serve.add_argument(
        "--output-s3-uri",
        default="s3://a2i-emulator-output",
        help="where --flow flows write output.json (<uri>/<flow name>/...)",
    )
    serve.add_argument(
        "--flow-activation-seconds",
        type=float,
        default=0.1,
        help="CreateFlowDefinition: how long a new flow stays Initializing",
    )
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
            flow_activation_seconds=args.flow_activation_seconds,
        )
    )
    url = await server.start(args.host, args.port)
    base = args.output_s3_uri.rstrip("/")
    for flow in args.flow:
        created = server.emulator.add_flow(flow.name, f"{base}/{flow.name}", flow.reviewers)
        log.info("flow_definition_created", name=flow.name, arn=created.arn)
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
