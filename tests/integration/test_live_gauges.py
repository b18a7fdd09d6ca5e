"""Issue 16: /metrics shows open loops within one sweep interval of their start, on the
DynamoDB ledger, without a single Scan in moto's call log (the worker runs with an
access key of its own, so moto counts its calls apart from every other test's)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from harness import running_worker
from prometheus_client.parser import text_string_to_metric_families

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.ledger.dynamodb_table import create_table
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.local.moto_wsgi import CALLS_PATH
from helpers import wait_until

OPEN = 4
SWEEP = 2.0


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        resp.raise_for_status()
        if resp.content_type == "application/json":
            return await resp.json()
        return await resp.text()


def _open_loops(page: str) -> float:
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == "a2i_worker_open_loops" and s.labels.get("route") == "main":
                return s.value
    return -1.0


async def test_open_loops_show_within_a_sweep_interval_with_no_scan(
    env: StackEndpoints, emulator: EmulatorControl, aws: AwsClients, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual"})  # the loops stay open
    table = f"{env.flow_definition_name}-live"
    await create_table(aws.dynamodb, table)
    key = f"live-{uuid.uuid4().hex[:12]}"
    async with running_worker(
        env,
        tmp_path,
        ledger_url=f"dynamodb://{table}",
        sweep_interval_seconds=SWEEP,
        environ_extra={"AWS_ACCESS_KEY_ID": key},
    ) as h:
        assert h.worker is not None
        base = f"http://127.0.0.1:{h.worker.health.bound_port}"
        assert _open_loops(await _get(base + "/metrics")) == 0
        await h.send(
            [
                {"request_id": f"live-{i}", "route": "main", "input": {"confidence": 0.1}}
                for i in range(OPEN)
            ]
        )

        async def all_started() -> bool:
            counters = await emulator.counters()
            return int(counters["loops_by_status"].get("InProgress", 0)) >= OPEN

        await wait_until(all_started, 15, message=f"{OPEN} loops open in A2I")
        started = anyio.current_time()

        async def shown() -> bool:
            return _open_loops(await _get(base + "/metrics")) == OPEN

        await wait_until(shown, SWEEP + 3, message=f"{OPEN} open loops on /metrics")
        assert anyio.current_time() - started <= SWEEP + 3
        calls: dict[str, dict[str, int]] = await _get(env.moto_url + CALLS_PATH)
    mine = calls.get(key, {})
    assert any(op.startswith("dynamodb.") for op in mine), mine  # the ledger was used
    assert not [op for op in mine if op.endswith(".Scan")], mine
