"""Shadow mode and review budgets on the local stack: real worker, moto, the A2I emulator.

Budgets use ``per_day`` windows so that a test running across a clock hour cannot see a
window open; nothing is patched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import running_worker

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.budget import BudgetWindow, windows
from a2i_worker.budget_store import DynamoDbBudgetStore, SqliteBudgetStore
from a2i_worker.ledger.dynamodb import DynamoDbLedger
from a2i_worker.ledger.dynamodb_table import create_table
from a2i_worker.ledger.protocol import Ledger
from a2i_worker.ledger.sqlite import SqliteLedger
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.report import Summary, iter_results, summarize
from a2i_worker.routes import Budget, BudgetPolicy, load_routes
from helpers import wait_until

RULES: dict[str, Any] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.8},
        },
        {
            "ConditionType": "LabelCheck",
            "ConditionParameters": {"Path": "label", "LabelIn": ["fraud"]},
        },
    ]
}


def _routes(tmp_path: Path, arn: str, body: str) -> Path:
    (tmp_path / "tuning-rules.json").write_text(json.dumps(RULES), encoding="utf-8")
    path = tmp_path / "tuning-routes.toml"
    path.write_text(
        f'[routes.inv]\nflow_definition_arn = "{arn}"\nrules = "tuning-rules.json"\n{body}\n'
        '[routes.inv.agreement]\nmodel = "label"\nhuman = "label"\n',
        encoding="utf-8",
    )
    return path


def _req(rid: str, confidence: float, label: str = "cat") -> dict[str, Any]:
    return {
        "type": "review",
        "request_id": rid,
        "route": "inv",
        "input": {"text": f"item {rid}"},
        "prediction": {"confidence": confidence, "label": label},
    }


async def _fast_reviewers(emulator: EmulatorControl) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "fixed", "seconds": 0.2},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat"}},
        }
    )


async def _started(emulator: EmulatorControl) -> int:
    return int((await emulator.counters())["operations"]["StartHumanLoop"]["accepted"])


async def test_shadow_mode_records_decisions_and_starts_no_loop(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    routes = _routes(tmp_path, env.flow_definition_arn, 'mode = "shadow"')
    confidences = {f"s-{i}": c for i, c in enumerate([0.1, 0.5, 0.9, 0.95, 0.3, 0.99])}
    async with running_worker(env, tmp_path, routes_file=str(routes)) as h:
        await h.send(_req(rid, c) for rid, c in confidences.items())
        await h.results.wait_for(len(confidences), within=30)
    counters = await emulator.counters()
    assert counters["operations"].get("StartHumanLoop", {}).get("calls", 0) == 0
    assert counters["loops_total"] == 0
    ledger = SqliteLedger(tmp_path / "ledger.db")
    await ledger.open()
    try:
        for rid, conf in confidences.items():
            (res,) = h.results.by_request[rid]
            assert res["outcome"] == "not_activated"
            assert res["shadow"] is True
            assert res["loop_name"] is None
            would_review = conf < 0.8
            assert res["activation"]["activated"] is would_review
            reasons = res["activation"]["reasons"]
            assert [r["condition_type"] for r in reasons] == (
                ["ConfidenceCheck"] if would_review else []
            )
            record = await ledger.get(rid)
            assert record is not None
            assert record.decision is not None
            assert record.decision["activated"] is would_review
    finally:
        await ledger.close()


async def test_defer_budget_holds_across_a_restart_and_loses_nothing(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    await _fast_reviewers(emulator)
    routes = _routes(tmp_path, env.flow_definition_arn, "[routes.inv.budget]\nper_day = 3\n")
    ledger = tmp_path / "shared.db"
    async with running_worker(env, tmp_path, routes_file=str(routes), ledger=ledger) as h:
        await h.send(_req(f"d-{i}", 0.1) for i in range(5))
        await h.results.wait_for(3, within=30)
        # The two over budget are back in SQS, invisible until the day ends: not spinning.
        await wait_until(
            lambda: _depth_is(h, env.requests_queue_url, (0, 2)), 15, message="2 deferred"
        )
        assert h.worker is not None
        registry = h.worker.metrics.registry
        spent = {"route": "inv", "action": "defer"}
        assert registry.get_sample_value("a2i_worker_budget_spent_total", spent) == 2
        used = {"route": "inv", "window": "day"}
        assert registry.get_sample_value("a2i_worker_budget_used", used) == 3
        assert registry.get_sample_value("a2i_worker_budget_limit", used) == 3
        # Agreement (route compares 'label' with the reviewers' 'label', both "cat").
        agree = {"route": "inv", "result": "agree"}
        by_cond = {**agree, "condition": "Conditions[0] ConfidenceCheck"}
        await wait_until(
            lambda: registry.get_sample_value("a2i_worker_agreement_total", agree) == 3,
            10,
            message="agreement counted",
        )
        assert registry.get_sample_value("a2i_worker_agreement_by_condition_total", by_cond) == 3
    assert await _started(emulator) == 3
    # The report reads the same numbers back from the ledger.
    summary = await _summary(SqliteLedger(ledger))
    assert summary.outcomes["inv"]["completed"] == 3
    assert summary.agreement["inv"].agreement_rate == 1.0
    assert summary.by_condition[("inv", "Conditions[0] ConfidenceCheck")].agree == 3
    # A new worker process on the same ledger file: the day's budget is still spent.
    async with running_worker(env, tmp_path, routes_file=str(routes), ledger=ledger) as h2:
        await h2.send(_req(f"e-{i}", 0.2) for i in range(2))
        await h2.send([_req("e-ok", 0.95)])  # not activated: no budget needed
        await h2.results.wait_for(1, within=30)
        await wait_until(
            lambda: _depth_is(h2, env.requests_queue_url, (0, 4)), 15, message="4 deferred"
        )
    assert await _started(emulator) == 3
    assert len(h.results.by_request) == 3
    assert all(rs[0]["outcome"] == "completed" for rs in h.results.by_request.values())
    assert [r[0]["outcome"] for r in h2.results.by_request.values()] == ["not_activated"]
    (day,) = _day_window(routes)
    assert await SqliteBudgetStore(ledger).usage([day.key]) == {day.key: 3}


async def test_sample_budget_is_exact_across_two_replicas_on_dynamodb(
    env: StackEndpoints, emulator: EmulatorControl, aws: AwsClients, tmp_path: Path
) -> None:
    await _fast_reviewers(emulator)
    table = f"ledger-{env.flow_definition_name}"[:200]
    await create_table(aws.dynamodb, table)
    routes = _routes(
        tmp_path,
        env.flow_definition_arn,
        '[routes.inv.budget]\nper_day = 4\npolicy = "sample"\nalways = ["/Conditions/1"]\n',
    )
    common: dict[str, Any] = {"routes_file": str(routes), "ledger_url": f"dynamodb://{table}"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        running_worker(env, tmp_path / "a", **common) as a,
        running_worker(env, tmp_path / "b", **common),
    ):
        await a.send(_req(f"p-{i}", 0.1) for i in range(10))
        await a.results.wait_for(10, within=45)
        await a.send([_req("fraud-1", 0.1, "fraud"), _req("fraud-2", 0.95, "fraud")])
        await a.results.wait_for(12, within=45)
    by_req = {rid: rs[0] for rid, rs in a.results.by_request.items()}
    plain = [by_req[f"p-{i}"] for i in range(10)]
    assert sorted(r["outcome"] for r in plain) == ["completed"] * 4 + ["not_activated"] * 6
    for r in plain:
        if r["outcome"] == "not_activated":
            assert r["reason"].startswith("budget:")
            assert r["activation"]["activated"] is False
            assert r["activation"]["reasons"][0]["condition_type"] == "ConfidenceCheck"
    # Conditions[1] is listed in 'always': those still get loops beyond the cap.
    assert by_req["fraud-1"]["outcome"] == "completed"
    assert by_req["fraud-2"]["outcome"] == "completed"
    assert await _started(emulator) == 6
    (day,) = _day_window(routes)
    store = DynamoDbBudgetStore(table, aws.dynamodb)
    assert await store.usage([day.key]) == {day.key: 6}
    summary = await _summary(DynamoDbLedger(table, aws.dynamodb))
    assert summary.outcomes["inv"] == {"completed": 6, "not_activated": 6}
    # Reviewers answer "cat": the two 'fraud' predictions disagree with them.
    assert (summary.agreement["inv"].agree, summary.agreement["inv"].disagree) == (4, 2)
    fraud = summary.by_condition[("inv", "Conditions[1] LabelCheck")]
    assert (fraud.agree, fraud.disagree) == (0, 2)


async def _summary(ledger: Ledger) -> Summary:
    await ledger.open()
    try:
        since = datetime.now(UTC) - timedelta(hours=1)
        until = datetime.now(UTC) + timedelta(minutes=1)
        return summarize([r async for r in iter_results(ledger, since, until)])
    finally:
        await ledger.close()


async def _depth_is(h: Any, url: str, expected: tuple[int, int]) -> bool:
    return bool(await h.queue_depth(url) == expected)


def _day_window(routes: Path) -> list[BudgetWindow]:
    budget = load_routes(routes)["inv"].budget
    assert budget is not None
    return windows("inv", budget, datetime.now(UTC))


async def test_a_message_deferred_again_and_again_is_requeued_not_dead_lettered(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    """Each deferral is a receive; past a few, the worker sends a delayed fresh copy
    (receive count back to zero) and deletes the old one, so a redrive policy never
    moves a merely deferred request to the DLQ."""
    from a2i_worker.intake import SqsMessage, Verdict

    await _fast_reviewers(emulator)
    routes = _routes(tmp_path, env.flow_definition_arn, "[routes.inv.budget]\nper_day = 1\n")
    async with running_worker(env, tmp_path, routes_file=str(routes)) as h:
        await h.send([_req("spend-it", 0.1)])
        await h.results.wait_for(1, within=30)
        side = (await h.aws.sqs.create_queue(QueueName=f"{env.rule_name}-side"))["QueueUrl"]
        body = json.dumps(_req("deferred-often", 0.1))
        await h.aws.sqs.send_message(QueueUrl=side, MessageBody=body)
        got = (await h.aws.sqs.receive_message(QueueUrl=side, WaitTimeSeconds=1))["Messages"][0]
        msg = SqsMessage(
            queue_url=side,
            message_id=got["MessageId"],
            receipt_handle=got["ReceiptHandle"],
            body=body,
            receive_count=3,
            sent_timestamp_ms=None,
        )
        assert h.worker is not None
        verdict = await h.worker.processor.handle(msg)
        attrs = await h.aws.sqs.get_queue_attributes(
            QueueUrl=side, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )
    assert verdict == Verdict.DELETE
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"
    assert await _started(emulator) == 1


async def test_dynamodb_budget_take_is_idempotent_per_request(
    env: StackEndpoints, aws: AwsClients
) -> None:
    table = f"{env.flow_definition_name}-tokens"
    await create_table(aws.dynamodb, table)
    store = DynamoDbBudgetStore(table, aws.dynamodb)
    (hour,) = windows("inv", Budget(1, None, BudgetPolicy.DEFER), datetime.now(UTC))
    assert await store.take([hour], token="loop-a") is None
    assert await store.take([hour], token="loop-a") is None  # the redelivery
    assert await store.usage([hour.key]) == {hour.key: 1}
    assert await store.take([hour], token="loop-b") == hour
    assert await store.take([hour], force=True, token="loop-b") is None
    assert await store.take([hour], force=True, token="loop-b") is None
    assert await store.usage([hour.key]) == {hour.key: 2}
