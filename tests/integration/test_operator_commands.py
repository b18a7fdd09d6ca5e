"""The operator commands on the local stack: loops list, requests show, dlq inspect and
redrive, ledger create-table, --version, and their one-line failures.

Each command runs through typer's CliRunner in a worker thread (it calls ``anyio.run``
itself) against a worker running on moto and the emulator; nothing is stubbed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from harness import running_worker
from typer.testing import CliRunner, Result

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.cli import app
from a2i_worker.local.endpoints import StackEndpoints
from helpers import json_document, wait_until


async def _cli(args: list[str], env: dict[str, str | None]) -> Result:
    runner = CliRunner()
    return await anyio.to_thread.run_sync(
        lambda: runner.invoke(app, args, env=env, catch_exceptions=False)
    )


def _json(res: Result) -> Any:
    return json_document(res.stdout)


def _env(env: StackEndpoints, ledger: Path, routes: Path | None = None) -> dict[str, str | None]:
    out: dict[str, str | None] = {**env.env(), "A2I_WORKER_LEDGER_URL": f"sqlite:///{ledger}"}
    if routes is not None:
        out["A2I_WORKER_ROUTES_FILE"] = str(routes)
    return out


async def test_loops_list_and_requests_show_while_loops_are_open(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await emulator.put_reviewers({"mode": "manual"})
    ledger = tmp_path / "ledger.db"
    async with running_worker(env, tmp_path, ledger=ledger) as h:
        cli_env = _env(env, ledger, Path(str(h.settings.routes_file)))
        await h.send(
            [
                {"request_id": f"open-{i}", "route": "main", "input": {"confidence": 0.1}}
                for i in range(3)
            ]
            + [{"request_id": "easy", "route": "main", "input": {"confidence": 0.99}}]
        )

        async def listed() -> list[dict[str, Any]] | None:
            res = await _cli(["loops", "list", "--json"], cli_env)
            assert res.exit_code == 0, res.output
            rows = _json(res)
            return rows if len(rows) == 3 else None

        rows = await wait_until(listed, 30, interval=0.2, message="three open loops listed")
        assert {r["request_id"] for r in rows} == {"open-0", "open-1", "open-2"}
        assert {r["route"] for r in rows} == {"main"}
        assert {r["phase"] for r in rows} == {"open"}

        overdue = await _cli(["loops", "list", "--state", "overdue", "--json"], cli_env)
        assert _json(overdue) == []  # younger than the overdue threshold
        aged = await _cli(
            ["loops", "list", "--state", "overdue", "--older-than", "0", "--json"], cli_env
        )
        assert len(_json(aged)) == 3
        stuck = await _cli(["loops", "list", "--state", "stuck", "--json"], cli_env)
        assert _json(stuck) == []  # the sweeper is looking after them
        table = await _cli(["loops", "list", "--route", "main"], cli_env)
        assert "open-0" in table.stdout
        assert "3 open loop(s)" in table.stdout
        bad_route = await _cli(["loops", "list", "--route", "nope"], cli_env)
        assert bad_route.exit_code == 2

        shown = await _cli(["requests", "show", "open-0", "--json"], cli_env)
        assert shown.exit_code == 0, shown.output
        doc = _json(shown)
        events = [step["event"] for step in doc["history"]]
        assert events == ["received", "starting", "open (loop InProgress)"]
        assert doc["history"][1]["detail"].startswith("review (ConfidenceCheck")

        await h.results.wait_for(1, within=30)
        easy = await _cli(["requests", "show", "easy"], cli_env)
        assert "result not_activated" in easy.stdout
        missing = await _cli(["requests", "show", "nope"], cli_env)
        assert missing.exit_code == 1


async def test_dlq_inspect_and_bounded_redrive_with_a_dry_run(
    env: StackEndpoints, aws: AwsClients, tmp_path: Path
) -> None:
    bodies = [json.dumps({"request_id": f"dead-{i}", "input": {"secret": "PII"}}) for i in range(5)]
    for body in bodies:
        await aws.sqs.send_message(
            QueueUrl=env.requests_dlq_url,
            MessageBody=body,
            MessageAttributes={
                "a2i_worker_rejection_code": {"DataType": "String", "StringValue": "unknown_route"}
            },
        )
    cli_env = _env(env, tmp_path / "unused.db")

    inspect = await _cli(["dlq", "inspect", "--max", "3"], cli_env)
    assert inspect.exit_code == 0, inspect.output
    doc = _json(inspect)
    assert doc["approximate_depth"] == 5
    assert len(doc["messages"]) == 3
    assert {m["rejection_code"] for m in doc["messages"]} == {"unknown_route"}
    assert all(m["request_id"].startswith("dead-") for m in doc["messages"])
    assert "PII" not in inspect.stdout  # never a body

    async def depth(url: str) -> int:
        attrs = await aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attrs["Attributes"]["ApproximateNumberOfMessages"])

    dry = await _cli(["dlq", "redrive", "--max", "2", "--dry-run"], cli_env)
    assert _json(dry)["would_move"] == 2
    assert await depth(env.requests_dlq_url) == 5  # visible again at once, nothing moved
    assert await depth(env.requests_queue_url) == 0

    moved = await _cli(["dlq", "redrive", "--max", "4"], cli_env)
    report = _json(moved)
    assert (report["moved"], report["failed"], report["approximate_remaining"]) == (4, 0, 1)
    resp = await aws.sqs.receive_message(
        QueueUrl=env.requests_queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )
    got = resp.get("Messages", [])
    assert len(got) == 4
    assert {m["Body"] for m in got} <= set(bodies)
    assert all("a2i_worker_rejection_code" not in m.get("MessageAttributes", {}) for m in got)

    no_dlq = await _cli(["dlq", "inspect"], {**cli_env, "A2I_WORKER_REQUESTS_DLQ_URL": ""})
    assert no_dlq.exit_code == 2
    assert "A2I_WORKER_REQUESTS_DLQ_URL is not set" in no_dlq.output


async def test_ledger_create_table_then_the_worker_uses_it(
    env: StackEndpoints, aws: AwsClients
) -> None:
    table = f"{env.output_prefix}-made-by-cli"
    cli_env: dict[str, str | None] = {**env.env(), "A2I_WORKER_LEDGER_URL": f"dynamodb://{table}"}
    first = await _cli(["ledger", "create-table"], cli_env)
    assert first.exit_code == 0, first.output
    assert f"ledger table {table} is ready" in first.stdout
    again = await _cli(["ledger", "create-table"], cli_env)  # idempotent
    assert again.exit_code == 0, again.output
    desc = (await aws.dynamodb.describe_table(TableName=table))["Table"]
    assert {g["IndexName"] for g in desc["GlobalSecondaryIndexes"]} == {
        "by_loop",
        "due",
        "done",
        "open",
    }
    listed = await _cli(["loops", "list", "--json"], cli_env)
    assert listed.exit_code == 0, listed.output
    assert _json(listed) == []
    sqlite = await _cli(["ledger", "create-table"], {**env.env(), "A2I_WORKER_LEDGER_URL": None})
    assert sqlite.exit_code == 2


async def test_misuse_is_one_line_and_exit_2_never_an_empty_ledger(tmp_path: Path) -> None:
    unset = ("A2I_WORKER_LEDGER_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    clean: dict[str, str | None] = dict.fromkeys(unset)
    cases: list[tuple[list[str], dict[str, str | None], str]] = [
        (["loops", "status", "x"], clean, "A2I_WORKER_LEDGER_URL is not set"),
        (["loops", "list"], clean, "A2I_WORKER_LEDGER_URL is not set"),
        (
            ["requests", "show", "x"],
            {**clean, "A2I_WORKER_LEDGER_URL": f"sqlite:///{tmp_path / 'missing.db'}"},
            "does not exist",
        ),
        (
            ["loops", "list"],
            {**clean, "A2I_WORKER_LEDGER_URL": "dynamodb://some-table"},
            "AWS_REGION is not set",
        ),
        (["report", "--hours", "-5"], clean, "--hours must be > 0"),
        (
            ["enqueue", str(tmp_path / "missing.jsonl")],
            {**clean, "A2I_WORKER_REQUESTS_QUEUE_URL": "http://127.0.0.1:9/1/q"},
            "cannot read",
        ),
    ]
    for args, env, expected in cases:
        res = await _cli(args, env)
        assert res.exit_code == 2, (args, res.output)
        assert expected in res.output, (args, res.output)
        assert "Traceback" not in res.output
    assert not (Path.cwd() / "a2i-ledger.db").exists()
    version = await _cli(["--version"], {})
    assert version.exit_code == 0
    assert version.stdout.startswith("a2i-worker ")
