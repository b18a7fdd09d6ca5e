"""Run ``a2i-worker run`` as a separate OS process (crash tests, benchmarks, replicas).

A :class:`WorkerProcess` is the real worker binary with an environment; nothing in it
is replaced. It can be killed with SIGKILL, stopped with SIGTERM, and measured from
``/proc`` (CPU seconds, peak RSS) so benchmarks judge the worker process alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp
import anyio

__all__ = ["ProcStats", "WorkerProcess", "free_port", "proc_stats"]


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ProcStats:
    def __init__(self, cpu_seconds: float, rss_bytes: int, peak_rss_bytes: int) -> None:
        self.cpu_seconds = cpu_seconds
        self.rss_bytes = rss_bytes
        self.peak_rss_bytes = peak_rss_bytes

    def __repr__(self) -> str:
        return (
            f"ProcStats(cpu={self.cpu_seconds:.2f}s, rss={self.rss_bytes / 2**20:.1f}MiB, "
            f"peak={self.peak_rss_bytes / 2**20:.1f}MiB)"
        )


def proc_stats(pid: int) -> ProcStats:
    """CPU (user+system) seconds and RSS of a live process, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return ProcStats(cpu, rss, peak)


class WorkerProcess:
    """``python -m a2i_worker.cli run`` with the given environment."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        log_path: Path | None = None,
        health_port: int | None = None,
        name: str = "worker",
    ) -> None:
        self.health_port = health_port or free_port()
        self.name = name
        self.env = {
            **os.environ,
            **env,
            "A2I_WORKER_HEALTH_HOST": "127.0.0.1",
            "A2I_WORKER_HEALTH_PORT": str(self.health_port),
            "A2I_WORKER_LOG_FORMAT": env.get("A2I_WORKER_LOG_FORMAT", "json"),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path
        self._log: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
            out = self._log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "a2i_worker.cli", "run"],
            env=self.env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    async def wait_ready(self, within: float = 60.0) -> None:
        """Poll /readyz until 200; raise if the process exits or time runs out."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode} before it was ready"
                        + (f"; log: {self.log_path}" if self.log_path else "")
                    )
                try:
                    async with session.get(self.health_url + "/readyz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name} not ready after {within}s")
                await anyio.sleep(0.1)

    async def metrics_text(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.health_url + "/metrics") as resp,
        ):
            return await resp.text()

    def stats(self) -> ProcStats:
        return proc_stats(self.pid)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    async def wait_exit(self, within: float) -> int:
        """Wait for the process to exit; returns its status (raises TimeoutError)."""
        assert self.proc is not None
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} still running after {within}s")
            await anyio.sleep(0.05)
        return int(self.proc.returncode)

    def close(self) -> None:
        self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None
