"""The container health check: ``python -m a2i_worker.probe [livez|readyz]``.

The Dockerfile's ``HEALTHCHECK`` and the ECS task's ``healthCheck`` run this instead of a
URL with a fixed port: it reads ``A2I_WORKER_HEALTH_HOST`` and ``A2I_WORKER_HEALTH_PORT``
exactly as the worker does (:class:`~a2i_worker.settings.Settings`, so also from the
file named by ``A2I_WORKER_ENV_FILE``), so the check follows the configured port.

A wildcard listen address (``0.0.0.0``, ``::``) is probed on loopback. Exit status 0 when
the endpoint answers 200 within the timeout, 1 otherwise (with one line on stderr that
says why), 2 for a configuration the probe cannot use (e.g. port 0, "any free port").
Only the standard library and the settings model are imported, so a probe costs one
short-lived Python process and no AWS call.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

__all__ = ["ENDPOINTS", "main", "probe", "probe_url"]

ENDPOINTS = ("livez", "readyz")
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def probe_url(host: str, port: int, endpoint: str = "livez") -> str:
    """The URL that reaches a health server listening on ``host:port`` from inside."""
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
    if port <= 0:
        raise ValueError("A2I_WORKER_HEALTH_PORT is 0 (any free port): nothing to probe")
    target = _WILDCARDS.get(host, host)
    if ":" in target:
        target = f"[{target}]"
    return f"http://{target}:{port}/{endpoint}"


def probe(url: str, timeout: float = 4.0) -> tuple[bool, str]:
    """GET ``url``: (True, "") on 200, else (False, why)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http URL built above)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        # /readyz's body names the reasons ("draining", "ledger: …"); nothing private.
        body = exc.read(500).decode("utf-8", "replace").strip()
        return False, f"{url} answered {exc.code}" + (f": {body}" if body else "")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} did not answer: {reason}"
    return (status == 200), ("" if status == 200 else f"{url} answered {status}")


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the endpoint named in ``argv`` (default ``livez``); the exit status."""
    from pydantic import ValidationError

    from a2i_worker.settings import Settings
    from a2i_worker.settings_doc import describe_settings_errors

    args = list(sys.argv[1:] if argv is None else argv)
    endpoint = args[0] if args else "livez"
    try:
        settings = Settings()
        url = probe_url(settings.health_host, settings.health_port, endpoint)
    except ValidationError as exc:
        for line in describe_settings_errors(exc):
            sys.stderr.write(f"probe: {line}\n")
        return 2
    except ValueError as exc:
        sys.stderr.write(f"probe: {exc}\n")
        return 2
    ok, why = probe(url)
    if not ok:
        sys.stderr.write(f"probe: {why}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
