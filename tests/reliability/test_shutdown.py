"""SIGTERM under load: exit 0 within the grace period, nothing left invisible, ledger
consistent with A2I; a restarted worker finishes the rest with no second loop."""

from __future__ import annotations

import time
from pathlib import Path

from reliability_support import (
    QueueProbe,
    ResultsCollector,
    assert_exactly_once,
    make_requests,
    new_process,
    send_all,
    worker_env,
)

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.ledger.factory import ledger_from_url
from a2i_worker.ledger.protocol import Phase
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until

GRACE = 5.0


async def _ledger_matches_a2i(ledger_url: str, emulator: EmulatorControl) -> dict[Phase, int]:
    """Every loop A2I has is known to the ledger; every OPEN record's loop exists."""
    started = (await emulator.counters(detail=True))["starts_per_name"]
    ledger = ledger_from_url(ledger_url)
    await ledger.open()
    try:
        for name in started:
            rec = await ledger.get_by_loop(name)
            assert rec is not None, f"A2I has loop {name} the ledger does not know"
            assert rec.phase in (Phase.STARTING, Phase.OPEN, Phase.DONE, Phase.PUBLISHED)
        counts = await ledger.count_by_phase()
        assert counts.get(Phase.OPEN, 0) <= len(started), "an OPEN record without a loop"
        return counts
    finally:
        await ledger.close()


async def test_sigterm_under_load_drains_within_grace_and_restart_finishes(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.3, "high": 1.5},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )
    # Slow starts: many StartHumanLoop calls are in flight when SIGTERM lands.
    await emulator.put_faults({"operations": {"StartHumanLoop": {"latency_ms": [100, 500]}}})
    bodies, expected = make_requests(160, prefix="term", seed=5)
    await send_all(aws, env.requests_queue_url, bodies)
    # A start rate well below the backlog: SIGTERM finds messages waiting for the limiter.
    environ = worker_env(
        env,
        tmp_path,
        shutdown_grace_seconds=str(GRACE),
        start_rate_initial="30",
        start_rate_max="30",
    )
    probe = QueueProbe(aws)
    results = ResultsCollector(aws, env.results_queue_url)

    first = new_process(environ, tmp_path / "worker-1.log", "w1")
    first.start()
    await first.wait_ready(60)

    async def under_load() -> bool:
        await results.poll()
        loops = int((await emulator.counters())["loops_total"])
        return loops >= 30 and len(results.deliveries) >= 10

    await wait_until(under_load, 30, interval=0.05, message="worker under load")
    held_before = await probe.depth(env.requests_queue_url)
    t0 = time.monotonic()
    first.terminate()
    code = await first.wait_exit(GRACE + 5)
    took = time.monotonic() - t0
    first.close()
    assert code == 0
    assert took <= GRACE + 1.5, f"exited {took:.1f}s after SIGTERM (grace {GRACE}s)"
    assert held_before[1] > 0, "messages were in flight when SIGTERM came"
    # Nothing invisible: every held message was deleted or handed back (visibility 0).
    assert (await probe.depth(env.requests_queue_url))[1] == 0
    assert (await probe.depth(env.events_queue_url))[1] == 0
    phases = await _ledger_matches_a2i(environ["A2I_WORKER_LEDGER_URL"], emulator)
    unfinished = phases.get(Phase.STARTING, 0) + phases.get(Phase.OPEN, 0)
    assert unfinished > 0, f"work was left for the restart: {phases}"

    await emulator.put_faults({"operations": {"StartHumanLoop": {"latency_ms": [0, 0]}}})
    second = new_process(environ, tmp_path / "worker-2.log", "w2")
    second.start()
    await second.wait_ready(60)
    await results.wait_for(expected.request_ids, 60)
    second.terminate()
    assert await second.wait_exit(GRACE + 5) == 0
    second.close()
    await assert_exactly_once(expected, results, emulator, probe, env)
