"""``/livez``, ``/readyz`` and ``/metrics`` on one port (aiohttp).

- ``/livez``: the event loop answers. Nothing else: a liveness probe that checks
  dependencies would restart healthy pods during an AWS outage.
- ``/readyz``: 200 only when started, not draining, and every dependency
  (:mod:`a2i_worker.preflight`: each queue, each route's flow definition and output
  bucket, the ledger, A2I) passed its last check; otherwise 503 with the reasons,
  one per failing dependency (``"results_queue: does not exist (…)"``).
- ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from a2i_worker.classify import classify
from a2i_worker.metrics import Metrics
from a2i_worker.preflight import DependencyError

__all__ = ["DependencyCheck", "HealthServer", "Readiness"]

log = structlog.get_logger(__name__)

DependencyCheck = Callable[[], Awaitable[None]]


@dataclass
class Readiness:
    started: bool = False
    draining: bool = False
    failures: dict[str, str] = field(default_factory=dict)
    checked_at: float = 0.0

    @property
    def ready(self) -> bool:
        return self.started and not self.draining and not self.failures

    def reasons(self) -> list[str]:
        out = []
        if not self.started:
            out.append("starting")
        if self.draining:
            out.append("draining")
        out.extend(f"{name}: {err}" for name, err in sorted(self.failures.items()))
        return out


class HealthServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        checks: dict[str, DependencyCheck],
        readiness: Readiness,
        check_interval: float = 10.0,
        check_timeout: float = 5.0,
    ) -> None:
        self._host = host
        self._port = port
        self._metrics = metrics
        self._checks = checks
        self.readiness = readiness
        self._interval = check_interval
        self._timeout = check_timeout
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("health endpoint listening", host=self._host, port=self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run_checks(self) -> None:
        """Check dependencies periodically (until cancelled)."""
        while True:
            await self.check_once()
            await anyio.sleep(self._interval)

    async def check_once(self) -> None:
        """Every check at once, each bounded by the check timeout."""
        failures: dict[str, str] = {}

        async def one(name: str, check: DependencyCheck) -> None:
            try:
                with anyio.fail_after(self._timeout):
                    await check()
            except DependencyError as exc:
                failures[name] = exc.reason
            except TimeoutError:
                failures[name] = f"no answer within {self._timeout:g} s"
            except Exception as exc:
                failures[name] = classify(exc).code or type(exc).__name__

        async with anyio.create_task_group() as tg:
            for name, check in self._checks.items():
                tg.start_soon(one, name, check, name=f"check {name}")
        if failures != self.readiness.failures:
            if failures:
                log.warning("not ready", failing=sorted(failures))
            else:
                log.info("dependencies reachable again")
        self.readiness.failures = failures
        self.readiness.checked_at = time.time()

    async def _livez(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        body = json.dumps({"ready": self.readiness.ready, "reasons": self.readiness.reasons()})
        return web.Response(
            text=body + "\n",
            status=200 if self.readiness.ready else 503,
            content_type="application/json",
        )

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
