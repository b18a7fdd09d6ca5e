"""``python -m a2i_worker.probe``: the container health check follows the configured port."""

from __future__ import annotations

import os
import socket
import sys

import anyio
import pytest

from a2i_worker.health import HealthServer, Readiness
from a2i_worker.metrics import Metrics
from a2i_worker.probe import probe_url


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("A2I_WORKER_")}
    env.update({f"A2I_WORKER_{k.upper()}": v for k, v in settings.items()})
    return env


async def _probe(endpoint: str, **settings: str) -> tuple[int, str]:
    done = await anyio.run_process(
        [sys.executable, "-m", "a2i_worker.probe", endpoint], env=_env(**settings), check=False
    )
    return done.returncode, done.stderr.decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_probe_reads_the_port_from_the_settings() -> None:
    readiness = Readiness()
    server = HealthServer(
        host="127.0.0.1",
        port=0,
        metrics=Metrics(),
        checks={},
        readiness=readiness,
    )
    await server.start()
    try:
        port = str(server.bound_port)
        # A container's wildcard listen address is probed on loopback.
        assert await _probe("livez", health_host="0.0.0.0", health_port=port) == (0, "")
        status, why = await _probe("readyz", health_port=port)
        assert status == 1
        assert "503" in why
        assert '"reasons": ["starting"]' in why, "the probe shows why it is not ready"
        readiness.started = True
        assert (await _probe("readyz", health_port=port))[0] == 0
    finally:
        await server.stop()


async def test_probe_fails_when_nothing_listens_on_the_configured_port() -> None:
    status, why = await _probe("livez", health_port=str(_free_port()))
    assert status == 1
    assert why.startswith("probe: http://127.0.0.1:")


async def test_probe_refuses_port_zero_and_bad_settings() -> None:
    assert (await _probe("livez", health_port="0"))[0] == 2
    status, why = await _probe("livez", health_port="eighty")
    assert status == 2
    assert "A2I_WORKER_HEALTH_PORT" in why
    assert "eighty" not in why, "settings errors never repeat the value"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080/livez"),
        ("::", "http://[::1]:8080/livez"),
        ("10.1.2.3", "http://10.1.2.3:8080/livez"),
        ("fd00::5", "http://[fd00::5]:8080/livez"),
    ],
)
def test_probe_url(host: str, url: str) -> None:
    assert probe_url(host, 8080) == url


def test_probe_url_rejects_unknown_endpoints() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        probe_url("127.0.0.1", 8080, "metrics")
