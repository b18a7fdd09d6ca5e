"""LocalStack: moto (keep-alive server, thread or subprocess) + the A2I emulator on 127.0.0.1.

Promises:
- ``start()`` returns once both servers accept connections; ports are ephemeral unless
  given. The emulator writes output.json to moto's S3 and emits events to moto's
  EventBridge, so they reach SQS through real rules.
- ``stop()`` stops the emulator, then moto, and releases both ports; in subprocess
  mode the child is terminated (and dies by itself if this process goes away).
- ``provision(prefix)`` may be called any number of times (one environment each).
"""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import structlog

from a2i_emulator.server import EmulatorConfig, EmulatorServer
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.moto_server import MotoServer
from a2i_worker.local.provision import provision_environment

__all__ = ["EmulatorSubprocess", "LocalStack", "MotoSubprocess", "run_stack_forever"]

log = structlog.get_logger(__name__)


class _ChildServer:
    """A server run as ``python -m <module> ...``: started, then asked for its URL.

    The child prints its URL on a stdout line (``<prefix><url>``); its stdin is a pipe
    it watches, so it exits by itself when this process goes away.
    """

    _name = "child"

    def __init__(self, start_timeout: float) -> None:
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _url_from(self, line: bytes) -> str | None:
        raise NotImplementedError

    def start(self) -> str:
        proc = subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
            self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=dict(os.environ)
        )
        self._proc = proc
        assert proc.stdout is not None
        deadline = time.monotonic() + self._start_timeout
        buffered = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self._name} subprocess did not start (output: {buffered!r})")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if not ready:
                continue
            line = proc.stdout.readline()
            buffered += line
            url = self._url_from(line)
            if url:
                self.url = url
                break
        # Keep draining stdout so the child never blocks on a full pipe.
        threading.Thread(
            target=lambda: [None for _ in iter(proc.stdout.readline, b"")],  # type: ignore[union-attr]
            name=f"{self._name}-subprocess-stdout",
            daemon=True,
        ).start()
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class MotoSubprocess(_ChildServer):
    """``python -m a2i_worker.local.moto_server`` as a child process."""

    _name = "moto"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 30.0,
        extra_args: tuple[str, ...] = (),
    ):
        """``extra_args``: more command-line options (``--connection-close``, ``--patches``)."""
        super().__init__(start_timeout)
        self._host = host
        self._port = port
        self._extra_args = extra_args

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "a2i_worker.local.moto_server",
            "--host",
            self._host,
            "--port",
            str(self._port),
            "--exit-on-stdin-eof",
            *self._extra_args,
        ]

    def _url_from(self, line: bytes) -> str | None:
        if line.startswith(b"MOTO_URL="):
            return line.split(b"=", 1)[1].strip().decode()
        return None


class EmulatorSubprocess(_ChildServer):
    """``python -m a2i_emulator.cli serve`` as a child process (benchmarks: the emulator
    then never shares a GIL with the process driving the load)."""

    _name = "emulator"

    def __init__(self, config: EmulatorConfig, host: str, port: int, start_timeout: float = 30.0):
        super().__init__(start_timeout)
        self._config = config
        self._host = host
        self._port = port

    def _command(self) -> list[str]:
        c = self._config
        cmd = [
            sys.executable,
            "-m",
            "a2i_emulator.cli",
            "serve",
            "--host",
            self._host,
            "--port",
            str(self._port),
            "--region",
            c.region,
            "--account-id",
            c.account_id,
            "--exit-on-stdin-eof",
        ]
        if c.s3_endpoint_url:
            cmd += ["--s3-endpoint-url", c.s3_endpoint_url]
        if c.events_endpoint_url:
            cmd += ["--events-endpoint-url", c.events_endpoint_url]
        if c.seed is not None:
            cmd += ["--seed", str(c.seed)]
        return cmd

    def _url_from(self, line: bytes) -> str | None:
        text = line.strip().decode(errors="replace")
        return text if text.startswith("http://") else None


class LocalStack:
    """moto server (threaded keep-alive, or a subprocess) + the A2I emulator, on 127.0.0.1."""

    def __init__(
        self,
        *,
        moto_port: int = 0,
        a2i_port: int = 0,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        moto_in_subprocess: bool = False,
        emulator_in_subprocess: bool = False,
        emulator_seed: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.moto_in_subprocess = moto_in_subprocess
        self.emulator_in_subprocess = emulator_in_subprocess
        self._emulator_child: EmulatorSubprocess | None = None
        self._host = host
        self._moto_port = moto_port
        self._a2i_port = a2i_port
        self._seed = emulator_seed
        self._moto: MotoServer | MotoSubprocess | None = None
        self._emulator: EmulatorServer | None = None
        self.moto_url = ""
        self.a2i_url = ""

    @property
    def emulator(self) -> EmulatorServer:
        """The running A2I runtime emulator (in-process mode only)."""
        if self._emulator is None:
            raise RuntimeError(
                "no in-process emulator: LocalStack is not started, or runs the emulator "
                "in a subprocess (reach it through a2i_url)"
            )
        return self._emulator

    @property
    def moto_server(self) -> MotoServer | MotoSubprocess:
        if self._moto is None:
            raise RuntimeError("LocalStack is not started")
        return self._moto

    def start(self) -> None:
        if self._moto is not None:
            raise RuntimeError("LocalStack already started")
        moto: MotoServer | MotoSubprocess
        if self.moto_in_subprocess:
            moto = MotoSubprocess(self._host, self._moto_port)
        else:
            moto = MotoServer(self._host, self._moto_port)
        self.moto_url = moto.start()
        self._moto = moto
        try:
            config = EmulatorConfig(
                region=self.region,
                account_id=self.account_id,
                s3_endpoint_url=self.moto_url,
                events_endpoint_url=self.moto_url,
                seed=self._seed,
            )
            if self.emulator_in_subprocess:
                child = EmulatorSubprocess(config, self._host, self._a2i_port)
                self._emulator_child = child
                self.a2i_url = child.start()
            else:
                emulator = EmulatorServer(config)
                self.a2i_url = emulator.start_in_thread(self._host, self._a2i_port)
                self._emulator = emulator
        except BaseException:
            self.stop()
            raise
        log.info("local_stack_started", moto_url=self.moto_url, a2i_url=self.a2i_url)

    def stop(self) -> None:
        emulator, self._emulator = self._emulator, None
        child, self._emulator_child = self._emulator_child, None
        moto, self._moto = self._moto, None
        if emulator is not None:
            emulator.stop_thread()
        if child is not None:
            child.stop()
        if moto is not None:
            moto.stop()
        if emulator is not None or child is not None or moto is not None:
            log.info("local_stack_stopped")

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def provision(
        self,
        prefix: str = "a2i",
        *,
        max_receive_count: int = 5,
        visibility_timeout: int = 30,
        ground_truth_rule: bool = False,
        dynamodb_ledger: bool = False,
    ) -> StackEndpoints:
        """Create one isolated environment (see :func:`provision_environment`)."""
        if self._moto is None or (self._emulator is None and self._emulator_child is None):
            raise RuntimeError("LocalStack is not started")
        return await provision_environment(
            moto_url=self.moto_url,
            a2i_url=self.a2i_url,
            region=self.region,
            account_id=self.account_id,
            prefix=prefix,
            max_receive_count=max_receive_count,
            visibility_timeout=visibility_timeout,
            ground_truth_rule=ground_truth_rule,
            dynamodb_ledger=dynamodb_ledger,
        )


def _print_env(stack: LocalStack, endpoints: StackEndpoints) -> None:
    for key, value in endpoints.env().items():
        print(f"{key}={value}", flush=True)


def run_stack_forever(
    *,
    moto_port: int = 0,
    a2i_port: int = 0,
    prefix: str = "demo",
    moto_in_subprocess: bool = False,
    emulator_seed: int | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[LocalStack, StackEndpoints], None] = _print_env,
) -> None:
    """Start the stack, provision ``prefix``, call ``on_ready``, serve until stopped.

    Stops on ``stop.set()`` or Ctrl-C (KeyboardInterrupt), then shuts both servers down.
    Ports are ephemeral unless given; ``moto_port=5000, a2i_port=5001`` (prefix "demo")
    matches ``config/local.env``.
    """
    stop = stop or threading.Event()
    with LocalStack(
        moto_port=moto_port,
        a2i_port=a2i_port,
        moto_in_subprocess=moto_in_subprocess,
        emulator_seed=emulator_seed,
    ) as stack:
        endpoints = asyncio.run(stack.provision(prefix))
        on_ready(stack, endpoints)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            log.info("local_stack_interrupted")
