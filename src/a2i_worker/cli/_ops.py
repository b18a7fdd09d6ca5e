"""``dlq inspect|redrive``, ``ledger create-table`` and ``report``.

The DLQ commands are bounded (``--max``) and never print a message body (it may hold a
request's input): only its id, times, receive count, size, the worker's rejection code
attribute and the ``request_id`` when the body is a JSON request. ``dlq redrive`` sends
each message back to the queue it came from (same body and attributes, minus the
worker's rejection code) and deletes it from the DLQ only after the send succeeded;
``--dry-run`` only counts, and makes every message it looked at visible again at once.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from a2i_worker.cli._app import app, dlq_app, ledger_app
from a2i_worker.cli._common import (
    emit_json,
    fail,
    open_aws,
    open_ledger,
    quiet_settings,
)
from a2i_worker.cli._common import run_command as _run
from a2i_worker.errors import ConfigError

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

__all__ = ["dlq_inspect", "dlq_redrive", "ledger_create_table", "report"]

#: The attribute the worker sets on a rejected request's DLQ copy.
_REJECTION_ATTRIBUTE = "a2i_worker_rejection_code"


class DlqName(enum.StrEnum):
    REQUESTS = "requests"
    EVENTS = "events"


def _queues(settings: Any, which: DlqName) -> tuple[str, str]:
    """(DLQ URL, the queue its messages came from) from the settings."""
    from a2i_worker.settings import env_var

    dlq = getattr(settings, f"{which.value}_dlq_url")
    source = getattr(settings, f"{which.value}_queue_url")
    for field, value in ((f"{which.value}_dlq_url", dlq), (f"{which.value}_queue_url", source)):
        if value is None:
            raise fail([f"{env_var(field)} is not set; allowed: an SQS queue URL"])
    return str(dlq), str(source)


def _summary(msg: dict[str, Any]) -> dict[str, Any]:
    attrs = msg.get("Attributes", {})
    sent = attrs.get("SentTimestamp")
    request_id = None
    try:
        body = json.loads(msg.get("Body", ""))
        if isinstance(body, dict) and isinstance(body.get("request_id"), str):
            request_id = body["request_id"]
    except ValueError:
        pass
    code = msg.get("MessageAttributes", {}).get(_REJECTION_ATTRIBUTE, {}).get("StringValue")
    return {
        "message_id": msg.get("MessageId"),
        "request_id": request_id,
        "rejection_code": code,
        "sent_at": datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat() if sent else None,
        "receive_count": int(attrs.get("ApproximateReceiveCount", 0)),
        "body_bytes": len(msg.get("Body", "").encode("utf-8")),
    }


async def _receive(sqs: SQSClient, url: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` messages, hidden for 60 s while this command works on them."""
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        resp = await sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(out)),
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        page = [dict(m) for m in resp.get("Messages", [])]
        if not page:
            break
        out.extend(page)
    return out


async def _release(sqs: SQSClient, url: str, msgs: list[dict[str, Any]]) -> None:
    """Make messages visible again at once (inspect and dry runs leave no trace)."""
    for i in range(0, len(msgs), 10):
        await sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for j, m in enumerate(msgs[i : i + 10])
            ],
        )


async def _depth(sqs: SQSClient, url: str) -> int:
    attrs = await sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))


_QUEUE_HELP = "Which DLQ: requests (A2I_WORKER_REQUESTS_DLQ_URL) or events."
_MAX_HELP = "At most this many messages (1-10000)."


@dlq_app.command("inspect")
def dlq_inspect(
    queue: Annotated[DlqName, typer.Option(help=_QUEUE_HELP)] = DlqName.REQUESTS,
    max_messages: Annotated[int, typer.Option("--max", help=_MAX_HELP, min=1, max=10_000)] = 10,
) -> None:
    """Show the DLQ's depth and its first messages as JSON (ids, codes, ages; never bodies)."""
    emit_json(_run(_inspect, queue, max_messages))


async def _inspect(queue: DlqName, limit: int) -> dict[str, Any]:
    dlq, _ = _queues(quiet_settings(), queue)
    async with open_aws(("sqs",)) as aws:
        depth = await _depth(aws.sqs, dlq)
        msgs = await _receive(aws.sqs, dlq, limit)
        await _release(aws.sqs, dlq, msgs)
    return {
        "queue": queue.value,
        "approximate_depth": depth,
        "messages": [_summary(m) for m in msgs],
    }


@dlq_app.command("redrive")
def dlq_redrive(
    queue: Annotated[DlqName, typer.Option(help=_QUEUE_HELP)] = DlqName.REQUESTS,
    max_messages: Annotated[int, typer.Option("--max", help=_MAX_HELP, min=1, max=10_000)] = 100,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; move nothing.")] = False,
) -> None:
    """Move up to --max DLQ messages back to the queue they came from (JSON count on stdout)."""
    report = _run(_redrive, queue, max_messages, dry_run)
    emit_json(report)
    raise typer.Exit(0 if report["failed"] == 0 else 1)


async def _redrive(queue: DlqName, limit: int, dry_run: bool) -> dict[str, Any]:
    dlq, source = _queues(quiet_settings(), queue)
    moved = failed = 0
    async with open_aws(("sqs",)) as aws:
        msgs = await _receive(aws.sqs, dlq, limit)
        if dry_run:
            await _release(aws.sqs, dlq, msgs)
        else:
            for i in range(0, len(msgs), 10):
                chunk = msgs[i : i + 10]
                entries: list[Any] = []
                for j, m in enumerate(chunk):
                    attrs = {
                        k: v
                        for k, v in m.get("MessageAttributes", {}).items()
                        if k != _REJECTION_ATTRIBUTE
                    }
                    entry: dict[str, Any] = {"Id": str(j), "MessageBody": m["Body"]}
                    if attrs:
                        entry["MessageAttributes"] = attrs
                    entries.append(entry)
                sent = await aws.sqs.send_message_batch(QueueUrl=source, Entries=entries)
                ok = [chunk[int(s["Id"])] for s in sent.get("Successful", [])]
                failed += len(sent.get("Failed", []))
                if ok:
                    await aws.sqs.delete_message_batch(
                        QueueUrl=dlq,
                        Entries=[
                            {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]}
                            for j, m in enumerate(ok)
                        ],
                    )
                moved += len(ok)
        remaining = await _depth(aws.sqs, dlq)
    return {
        "queue": queue.value,
        "dry_run": dry_run,
        "would_move" if dry_run else "moved": len(msgs) if dry_run else moved,
        "failed": failed,
        "approximate_remaining": remaining,
    }


@ledger_app.command("create-table")
def ledger_create_table(
    table: Annotated[
        str | None, typer.Option(help="Table name (default: A2I_WORKER_LEDGER_URL's).")
    ] = None,
) -> None:
    """Create the DynamoDB ledger table with the worker's schema (idempotent; TTL on)."""
    typer.echo(_run(_create_table, table))


async def _create_table(table: str | None) -> str:
    from a2i_worker.ledger.dynamodb_table import create_table

    settings = quiet_settings()
    if table is None:
        url = str(settings.ledger_url)
        if "ledger_url" not in settings.model_fields_set or not url.startswith("dynamodb://"):
            raise fail(
                [
                    "A2I_WORKER_LEDGER_URL is not a DynamoDB ledger; allowed: "
                    "dynamodb://<table-name> (or pass --table; SQLite files are created by run)"
                ]
            )
        table = url.removeprefix("dynamodb://").split("?")[0]
    async with open_aws(("dynamodb",)) as aws:
        await create_table(aws.dynamodb, table)
    return f"ledger table {table} is ready"


@app.command()
def report(
    hours: Annotated[float, typer.Option(help="Report the last N hours of results.")] = 24.0,
) -> None:
    """Outcomes, model-vs-reviewer agreement per route and condition, and budget usage."""
    from rich.console import Console

    if not 0 < hours <= 24 * 366:
        raise fail(["--hours must be > 0 and at most 8784 (a year)"])
    try:
        _run(_report, hours, Console(width=max(100, Console().width)))
    except ConfigError as exc:
        raise fail([str(exc)]) from None


async def _report(hours: float, console: Any) -> None:
    from datetime import timedelta

    from a2i_worker.budget import windows
    from a2i_worker.budget_store import budget_store_for
    from a2i_worker.report import iter_results, print_summary, summarize
    from a2i_worker.routes import load_routes

    settings = quiet_settings()
    until = datetime.now(UTC)
    since = until - timedelta(hours=hours)
    async with open_ledger(settings) as (ledger, _):
        results = [r async for r in iter_results(ledger, since, until)]
        print_summary(console, summarize(results), since, until)
        routes = load_routes(settings.routes_file) if settings.routes_file else {}
        store = budget_store_for(ledger)
        for name, route in routes.items():
            if route.budget is None:
                continue
            wins = windows(name, route.budget, until)
            used = await store.usage([w.key for w in wins])
            parts = [f"{w.kind} {used[w.key]:,}/{w.limit:,}" for w in wins]
            console.print(f"budget {name} ({route.budget.policy.value}): {', '.join(parts)}")
