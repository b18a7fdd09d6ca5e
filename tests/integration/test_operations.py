"""The operations surface: /livez, /readyz, /metrics, logs, SIGTERM and a second signal.

/metrics is checked after a real run against the emulator's own counters (the
worker's numbers must agree with the server's). Signals are sent to a real
``a2i-worker run`` process (:class:`WorkerProcess`), never simulated.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from harness import running_worker, write_routes
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from a2i_emulator.control import EmulatorControl
from a2i_worker.cli import app
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.processes import WorkerProcess
from helpers import json_document, wait_until


def _req(i: int, confidence: float, secret: str = "") -> dict[str, Any]:
    return {
        "request_id": f"ops-{i:04d}",
        "route": "main",
        "input": {"doc": f"s3://docs/{i}.pdf{secret}", "confidence": confidence, "label": "cat"},
    }


Page = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Page:
    """Every sample of a Prometheus text page, keyed by (name, sorted labels)."""
    out: Page = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(page: Page, name: str, **labels: str) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def test_metrics_after_a_real_run_agree_with_the_emulator(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": 0.2},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )
    # A tight quota and a slow rate, so throttles and quota rejections really happen.
    await emulator.put_quotas(
        {"max_in_progress": 4, "rates": {"StartHumanLoop": {"rate": 20.0, "burst": 2}}}
    )
    activated, not_activated = 16, 8
    bodies: list[Any] = [_req(i, 0.2) for i in range(activated)]
    bodies += [_req(100 + i, 0.95) for i in range(not_activated)]
    bodies.append("{not json")
    total = len(bodies)
    async with running_worker(env, tmp_path) as h:
        assert h.worker is not None
        base = f"http://127.0.0.1:{h.worker.health.bound_port}"
        assert await _get(base + "/livez") == (200, "ok\n")
        status, body = await _get(base + "/readyz")
        assert status == 200, body
        assert json.loads(body) == {"ready": True, "reasons": []}

        await h.send(bodies)
        await h.results.wait_for(total, within=60)
        outcomes = h.results.outcomes

        async def page_settled() -> Page | None:
            status, text = await _get(base + "/metrics")
            assert status == 200
            page = samples(text)
            if value(page, "a2i_worker_results_published_total") < total:
                return None
            return page

        settled = await wait_until(page_settled, 15, message="all results counted in /metrics")
        assert settled is not None
        page = settled
        counters = await emulator.counters()

    start = counters["operations"]["StartHumanLoop"]
    assert outcomes == {"completed": activated, "not_activated": not_activated, "rejected": 1}
    # requests by outcome
    for outcome, n in outcomes.items():
        route = "main" if outcome != "rejected" else "(unrouted)"  # not JSON: no route
        assert value(page, "a2i_worker_requests_total", outcome=outcome, route=route) == n
    # review duration: one observation per completed loop, under its route
    assert (
        value(page, "a2i_worker_review_duration_seconds_count", route="main", outcome="completed")
        == activated
    )
    # no `_created` twins; process metrics on the same registry
    assert not [name for name, _ in page if name.endswith("_created")]
    assert value(page, "process_resident_memory_bytes") > 0
    assert value(page, "a2i_worker_results_published_total") == total
    # loops started and start latency: one observation per accepted start
    assert value(page, "a2i_worker_loops_started_total") == counters["loops_total"] == activated
    assert value(page, "a2i_worker_start_latency_seconds_count") == start["accepted"]
    # every Throttling and ServiceQuotaExceeded the server sent was seen by the limiter
    assert start["throttled"] > 0
    assert start["quota_rejected"] > 0
    assert value(page, "a2i_worker_throttles_total", cls="start") == start["throttled"]
    assert value(page, "a2i_worker_quota_rejections_total") == start["quota_rejected"]
    # limiter rate and gate, open loops by status, queue lag
    assert value(page, "a2i_worker_limiter_rate", cls="start") > 0
    assert ("a2i_worker_quota_gate_open", ()) in page
    assert ("a2i_worker_quota_gate_level", ()) in page
    assert ("a2i_worker_open_loops", (("route", "main"),)) in page
    assert ("a2i_worker_ledger_records", (("phase", "starting"),)) in page
    assert ("a2i_worker_queue_lag_seconds", ()) in page
    assert ("a2i_worker_queue_messages", (("queue", "results"), ("state", "visible"))) in page
    # events by kind: every completed loop's status change arrived as an event
    event_total = sum(v for (n, _), v in page.items() if n == "a2i_worker_events_total")
    assert event_total >= activated
    rejections = sum(v for (n, _), v in page.items() if n == "a2i_worker_rejections_total")
    assert rejections == 1


async def test_readyz_reports_unreachable_dependencies(env: StackEndpoints, tmp_path: Path) -> None:
    """A ledger that fails its check makes /readyz 503 with the reason; /livez stays 200."""
    async with running_worker(env, tmp_path) as h:
        assert h.worker is not None
        worker = h.worker
        base = f"http://127.0.0.1:{worker.health.bound_port}"

        async def broken() -> None:
            raise ConnectionError("no route")

        worker.health._checks["ledger"] = broken
        await worker.health.check_once()
        status, body = await _get(base + "/readyz")
        assert status == 503
        assert json.loads(body) == {"ready": False, "reasons": ["ledger: ConnectionError"]}
        assert (await _get(base + "/livez"))[0] == 200


# ------------------------------------------------------------------ real processes


def _process_env(env: StackEndpoints, tmp_path: Path, **extra: str) -> dict[str, str]:
    routes = write_routes(tmp_path, env.flow_definition_arn)
    return {
        **env.env(),
        "A2I_WORKER_ROUTES_FILE": str(routes),
        "A2I_WORKER_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS": "30",
        "A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS": "5",
        "A2I_WORKER_SWEEP_INTERVAL_SECONDS": "2",
        "A2I_WORKER_LOG_FORMAT": "json",
        **extra,
    }


@pytest.fixture
def processes() -> Any:
    started: list[WorkerProcess] = []
    yield started
    for p in started:
        p.close()


async def test_sigterm_drains_reports_draining_and_exits_0(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path, processes: list[WorkerProcess]
) -> None:
    await emulator.put_reviewers({"mode": "manual"})
    # A long poll keeps the receivers busy for a while after SIGTERM: /readyz must say
    # "draining" all that time, and the process must still exit 0 within the grace.
    penv = _process_env(
        env,
        tmp_path,
        A2I_WORKER_RECEIVE_WAIT_SECONDS="2",
        A2I_WORKER_SHUTDOWN_GRACE_SECONDS="20",
    )
    log_path = tmp_path / "worker.log"
    proc = WorkerProcess(penv, log_path=log_path, name="drain")
    processes.append(proc)
    proc.start()
    await proc.wait_ready(60)
    secret = "#SECRET-PAYLOAD-MARKER"
    from a2i_worker.aws import AwsClients, AwsClientSettings, endpoints_from_environ

    environ = env.env()
    async with AwsClients(
        AwsClientSettings(endpoint_urls=endpoints_from_environ(environ)), environ=environ
    ) as aws:
        await aws.sqs.send_message(
            QueueUrl=env.requests_queue_url, MessageBody=json.dumps(_req(1, 0.1, secret))
        )

        async def loop_started() -> bool:
            return bool((await emulator.counters())["loops_total"] == 1)

        await wait_until(loop_started, 30, message="the loop was started")
        proc.terminate()

        async def draining() -> bool:
            status, body = await _get(proc.health_url + "/readyz")
            return status == 503 and "draining" in json.loads(body)["reasons"]

        await wait_until(draining, 10, interval=0.05, message="/readyz says draining")
        assert await proc.wait_exit(25) == 0
        # The request message was deleted (its loop is open), nothing left in flight.
        attrs = await aws.sqs.get_queue_attributes(
            QueueUrl=env.requests_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
        assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"

    # Logs: JSON lines; request_id and loop_name bound; never the request's input.
    text = log_path.read_text(encoding="utf-8")
    assert secret not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    started = [e for e in lines if e.get("event") == "human loop started"]
    assert len(started) == 1
    assert started[0]["request_id"] == "ops-0001"
    assert started[0]["loop_name"]
    assert any(e.get("event") == "worker stopped" for e in lines)
    # `a2i-worker run` runs on uvloop by default (A2I_WORKER_EVENT_LOOP)
    assert [e.get("event_loop") for e in lines if e.get("event") == "worker running"] == ["uvloop"]


async def test_second_signal_exits_at_once_with_128_plus_signal(
    env: StackEndpoints, tmp_path: Path, processes: list[WorkerProcess]
) -> None:
    """SIGTERM starts a drain; a SIGINT during it ends the process at once with 130."""
    # With a 15 s long poll and a 60 s grace, the drain alone would take >= 15 s.
    penv = _process_env(
        env,
        tmp_path,
        A2I_WORKER_RECEIVE_WAIT_SECONDS="15",
        A2I_WORKER_SHUTDOWN_GRACE_SECONDS="60",
    )
    proc = WorkerProcess(penv, log_path=tmp_path / "worker.log", name="twice")
    processes.append(proc)
    proc.start()
    await proc.wait_ready(60)
    proc.terminate()

    async def draining() -> bool:
        status, _ = await _get(proc.health_url + "/readyz")
        return status == 503

    await wait_until(draining, 10, interval=0.05, message="first signal: draining")
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGINT)
    # Well before the long poll could end: the second signal did not wait for it.
    assert await proc.wait_exit(8) == 128 + int(signal.SIGINT)
    log = (tmp_path / "worker.log").read_text()
    assert "SIGTERM: draining" in log
    assert "second signal: exiting at once" in log


async def _invoke(args: list[str], env: dict[str, str]) -> Result:
    runner = CliRunner()
    return await anyio.to_thread.run_sync(
        lambda: runner.invoke(app, args, env=env, catch_exceptions=False)
    )


async def test_loops_status_and_stop_against_a_running_worker(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual", "stop_delay": 0})
    ledger = tmp_path / "ledger.db"
    cli_env = {**env.env(), "A2I_WORKER_LEDGER_URL": f"sqlite:///{ledger}"}
    marker = "INPUT-MARKER-never-printed"
    async with running_worker(env, tmp_path, ledger=ledger) as h:
        await h.send(
            [{"request_id": "cli-1", "route": "main", "input": {"confidence": 0.1, "m": marker}}]
        )

        async def opened() -> bool:
            return bool((await emulator.counters())["loops_total"] == 1)

        await wait_until(opened, 30, message="loop started")

        async def status_open() -> dict[str, Any] | None:
            res = await _invoke(["loops", "status", "cli-1"], cli_env)
            data = json_document(res.output)
            return dict(data) if data["phase"] == "open" else None

        record = await wait_until(status_open, 15, interval=0.2, message="ledger says open")
        assert record is not None
        assert record["loop_name"].endswith("-1")
        missing = await _invoke(["loops", "status", "nope"], cli_env)
        assert missing.exit_code == 1

        stopped = await _invoke(["loops", "stop", "cli-1"], cli_env)
        assert stopped.exit_code == 0, stopped.output
        assert record["loop_name"] in stopped.output
        await h.results.wait_for(1, within=30)
        assert h.results.outcomes == {"stopped": 1}
        final = await _invoke(["loops", "status", "cli-1"], cli_env)
    assert marker not in final.output
    data = json_document(final.output)
    assert data["result"]["outcome"] == "stopped"
    assert "prediction" not in data["result"]
