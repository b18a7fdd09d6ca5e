"""The interval settings reach the roles they are for (tests shorten them; see harness)."""

from __future__ import annotations

from pathlib import Path

from harness import make_settings, write_routes

from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.routes import Routes
from a2i_worker.worker import Worker


async def test_probe_delay_sweep_rate_and_receive_backoff_come_from_the_settings(
    env: StackEndpoints, aws: AwsClients, tmp_path: Path
) -> None:
    routes = write_routes(tmp_path, env.flow_definition_arn)
    settings = make_settings(
        env,
        routes,
        tmp_path / "ledger.db",
        quota_gate_probe_seconds=2.5,
        sweep_rate_initial=20.0,
        sweep_rate_max=40.0,
        receive_backoff_max_seconds=0.25,
    )
    worker = Worker(settings, Routes({}), aws)
    assert worker.gate.params.probe_after == 2.5
    assert worker.limiter.snapshot().sweep.rate == 20.0
    for consumer in (worker.requests, worker.events_consumer):
        assert consumer.receive_policy.cap == 0.25

    capped = Worker(
        make_settings(env, routes, tmp_path / "l2.db", sweep_rate_max=3.0), Routes({}), aws
    )
    assert capped.limiter.snapshot().sweep.rate == 3.0, "the initial rate never exceeds the ceiling"
