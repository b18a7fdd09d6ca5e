"""``enqueue`` and ``rules check`` through typer's CliRunner (``loops`` is tested with a
running worker in tests/integration/test_operations.py).

``enqueue`` talks to the local stack over HTTP (the ``env`` fixture); the commands run in
a worker thread because each calls ``anyio.run`` itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from typer.testing import CliRunner, Result

from a2i_worker.aws import AwsClients
from a2i_worker.cli import app
from a2i_worker.local.endpoints import StackEndpoints

RULES = Path(__file__).resolve().parents[2] / "config" / "rules" / "invoice-confidence.json"


async def invoke(args: list[str], env: dict[str, str], stdin: str | None = None) -> Result:
    runner = CliRunner()
    return await anyio.to_thread.run_sync(
        lambda: runner.invoke(app, args, env=env, input=stdin, catch_exceptions=False)
    )


async def queue_count(aws: AwsClients, url: str) -> int:
    attrs = await aws.sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def last_json(output: str) -> dict[str, Any]:
    line = [ln for ln in output.splitlines() if ln.startswith("{")][-1]
    return dict(json.loads(line))


async def test_enqueue_file_sends_every_line_in_batches(
    env: StackEndpoints, aws: AwsClients, tmp_path: Path
) -> None:
    lines = [json.dumps({"request_id": f"e-{i}", "route": "r", "input": {}}) for i in range(23)]
    src = tmp_path / "requests.jsonl"
    src.write_text("\n".join(lines[:12]) + "\n\n" + "\n".join(lines[12:]) + "\n")
    result = await invoke(["enqueue", str(src)], env.env())
    assert result.exit_code == 0, result.output
    report = last_json(result.output)
    assert report["sent"] == 23
    assert report["failed"] == 0
    assert report["blank_lines"] == 1
    assert await queue_count(aws, env.requests_queue_url) == 23


async def test_enqueue_stdin_and_a_too_large_line_exits_1(
    env: StackEndpoints, aws: AwsClients
) -> None:
    big = json.dumps({"request_id": "big", "input": {"x": "y" * 300_000}})
    stdin = '{"request_id": "s-1"}\n' + big + "\n"
    result = await invoke(["enqueue", "-"], env.env(), stdin=stdin)
    assert result.exit_code == 1
    report = last_json(result.output)
    assert (report["sent"], report["failed"], report["too_large"]) == (1, 1, 1)
    assert await queue_count(aws, env.requests_queue_url) == 1


async def test_enqueue_without_a_queue_is_a_config_error(tmp_path: Path) -> None:
    src = tmp_path / "r.jsonl"
    src.write_text("{}\n")
    result = await invoke(["enqueue", str(src)], {"A2I_WORKER_REQUESTS_QUEUE_URL": ""})
    assert result.exit_code == 2
    assert "A2I_WORKER_REQUESTS_QUEUE_URL" in result.output


async def test_rules_check_explains_each_sample(tmp_path: Path) -> None:
    unsure = tmp_path / "unsure.json"
    unsure.write_text(json.dumps({"fields": {"total": {"value": 10, "confidence": 0.5}}}))
    sure = tmp_path / "sure.json"
    sure.write_text(
        json.dumps(
            {
                "fields": {"total": {"value": 10, "confidence": 0.99}},
                "checks": {"sum_of_line_items": 10},
            }
        )
    )
    result = await invoke(
        ["rules", "check", str(RULES), "--sample", str(unsure), "--sample", str(sure)], {}
    )
    assert result.exit_code == 0, result.output
    assert f"{RULES}: valid" in result.output
    first, second = result.output.split(f"== {sure}")
    assert "decision: REVIEW" in first
    assert "[HOLDS] Conditions[0] ConfidenceCheck" in first
    assert "decision: REVIEW" not in second


async def test_rules_check_rejects_a_bad_file_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Conditions": []}')
    result = await invoke(["rules", "check", str(bad)], {})
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {bad}")
