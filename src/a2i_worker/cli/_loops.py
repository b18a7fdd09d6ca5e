"""``loops status|stop|list`` and ``requests show``: what the ledger knows, for operators.

Nothing here prints a request's input, prediction or human answers (they may hold
personal data): records are :func:`redacted`, lists show ids, routes, states and ages.
"""

from __future__ import annotations

import enum
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from a2i_worker.cli._app import loops_app, requests_app
from a2i_worker.cli._common import emit_json, fail, open_ledger, quiet_settings, redacted
from a2i_worker.cli._common import run_command as _run

if TYPE_CHECKING:
    from a2i_worker.ledger.protocol import LedgerRecord

__all__ = ["history", "loops_list", "loops_status", "loops_stop", "requests_show"]


@loops_app.command("status")
def loops_status(request_id: str) -> None:
    """Show what the ledger knows about a request (never its input, prediction or answers)."""
    record = _run(_get, request_id)
    if record is None:
        raise fail([f"no request {request_id!r} in the ledger"], code=1)
    emit_json(redacted(asdict(record)))


@loops_app.command("stop")
def loops_stop(request_id: str) -> None:
    """Stop the human loop of a request (StopHumanLoop); the worker then publishes `stopped`."""
    typer.echo(_run(_stop_loop, request_id))


async def _get(request_id: str) -> LedgerRecord | None:
    async with open_ledger(quiet_settings()) as (ledger, _):
        return await ledger.get(request_id)


async def _stop_loop(request_id: str) -> str:
    async with open_ledger(quiet_settings(), ("sagemaker-a2i-runtime",)) as (ledger, aws):
        record = await ledger.get(request_id)
        if record is None or record.loop_name is None:
            raise fail([f"request {request_id!r} has no loop"], code=1)
        assert aws is not None
        await aws.a2i.stop_human_loop(HumanLoopName=record.loop_name)
        return f"stop requested for {record.loop_name}"


class LoopState(enum.StrEnum):
    OPEN = "open"
    OVERDUE = "overdue"
    STUCK = "stuck"


def _age(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else round((now - since).total_seconds(), 1)


def _row(r: LedgerRecord, now: datetime) -> dict[str, Any]:
    return {
        "request_id": r.request_id,
        "route": r.route,
        "phase": r.phase.value,
        "loop_status": r.loop_status,
        "loop_name": r.loop_name,
        "attempt": r.attempt,
        "loop_age_seconds": _age(r.loop_created_at, now),
        "stage_age_seconds": _age(r.phase_since or r.received_at, now),
        "next_check_at": r.next_check_at,
    }


@loops_app.command("list")
def loops_list(
    state: Annotated[
        LoopState,
        typer.Option(
            help="open: loops open in A2I, oldest first; overdue: open longer than "
            "--older-than; stuck: loops the sweeper should have looked at more than "
            "--older-than ago (no worker is making progress on them)."
        ),
    ] = LoopState.OPEN,
    route: Annotated[str | None, typer.Option(help="Only this route's loops.")] = None,
    older_than: Annotated[
        float | None,
        typer.Option(help="Seconds (default: A2I_WORKER_OVERDUE_AFTER_SECONDS).", min=0),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.", min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """List open, overdue or stuck loops, by route (ids, states and ages; no content)."""
    rows = _run(_list, state, route, older_than, limit)
    if as_json:
        emit_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("request_id", "route", "phase", "loop status", "loop age s", "attempt")
    for r in rows:
        age = r["loop_age_seconds"]
        table.add_row(
            r["request_id"],
            str(r["route"] or "-"),
            r["phase"],
            str(r["loop_status"] or "-"),
            "-" if age is None else f"{age:,.0f}",
            str(r["attempt"]),
        )
    console = Console(width=max(100, Console().width))
    console.print(table)
    console.print(
        f"{len(rows)} {state.value} loop(s)" + (f" (first {limit})" * (len(rows) >= limit))
    )


async def _list(
    state: LoopState, route: str | None, older_than: float | None, limit: int
) -> list[dict[str, Any]]:
    from a2i_worker.routes import Routes, load_routes

    settings = quiet_settings()
    routes = load_routes(settings.routes_file) if settings.routes_file else Routes({})
    if route is not None and route not in routes:
        raise fail([f"--route must name a route of the routes file: {', '.join(routes) or '-'}"])
    now = datetime.now(UTC)
    threshold = timedelta(
        seconds=settings.overdue_after_seconds if older_than is None else older_than
    )
    async with open_ledger(settings) as (ledger, _):
        if state is LoopState.STUCK:
            found = [
                r
                for r in await ledger.due_for_check(now - threshold, limit)
                if route is None or r.route == route
            ]
        else:
            flows = {
                r.flow_definition_arn for n, r in routes.items() if route is None or n == route
            }
            found = [
                rec for f in sorted(flows) for rec in await ledger.open_records_for_flow(f, limit)
            ]
            if state is LoopState.OVERDUE:
                found = [
                    r
                    for r in found
                    if r.loop_created_at is not None and now - r.loop_created_at >= threshold
                ]
            found.sort(key=lambda r: r.loop_created_at or now)
    return [_row(r, now) for r in found[:limit]]


def history(r: LedgerRecord) -> list[dict[str, Any]]:
    """The request's transitions as the ledger logged them (schema v3 on), oldest first."""
    if not r.history:
        return rebuilt_history(r)
    steps = []
    for step in r.history:
        event = step.phase + (f" (loop {step.loop_status})" if step.loop_status else "")
        detail = ", ".join(
            x for x in (f"attempt {step.attempt}" if step.attempt > 1 else "", step.note) if x
        )
        steps.append({"at": step.at, "event": event, "detail": detail})
    return steps


def rebuilt_history(r: LedgerRecord) -> list[dict[str, Any]]:
    """A record written before the ledger kept a history: its steps, from the times the
    record keeps."""
    ctx = r.context or {}
    decision = r.decision or {}
    result = r.result or {}
    events: list[tuple[Any, str, str]] = [
        (r.received_at, "received", f"route {r.route or '-'}"),
    ]
    if ctx.get("decided_at"):
        reasons = [str(x.get("condition_type")) for x in decision.get("fired", []) or []]
        verdict = "review" if decision.get("activated") else "no review"
        detail = verdict + (f" ({', '.join(reasons)})" if reasons else "")
        events.append((datetime.fromisoformat(str(ctx["decided_at"])), "decided", detail))
    if r.loop_name:
        events.append((r.loop_created_at, "loop started", f"{r.loop_name} (attempt {r.attempt})"))
    if r.cancel_requested_at:
        events.append((r.cancel_requested_at, "cancel requested", ""))
    if r.loop_finished_at or r.loop_status in ("Completed", "Failed", "Stopped"):
        why = " ".join(x for x in (r.failure_code, r.failure_reason) if x)
        events.append((r.loop_finished_at, f"loop {r.loop_status}", why))
    if result:
        why = str(result.get("rejection_code") or result.get("reason") or "")
        produced = result.get("produced_at")
        at = datetime.fromisoformat(str(produced)) if produced else None
        events.append((at, f"result {result.get('outcome')}", why))
    if r.dlq_copied_at:
        events.append((r.dlq_copied_at, "copied to the requests DLQ", ""))
    if r.phase.value == "published":
        events.append((r.updated_at, "published", f"result_id {r.result_id}"))
    return [{"at": at, "event": what, "detail": detail} for at, what, detail in events]


@requests_app.command("show")
def requests_show(
    request_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """The history of one request: each transition with its time and reason (no content)."""
    record = _run(_get, request_id)
    if record is None:
        raise fail([f"no request {request_id!r} in the ledger"], code=1)
    steps = history(record)
    if as_json:
        emit_json({"request_id": request_id, "phase": record.phase.value, "history": steps})
        return
    typer.echo(f"{request_id}: {record.phase.value}")
    for step in steps:
        at = step["at"].isoformat(timespec="seconds") if step["at"] else "?"
        typer.echo(f"  {at}  {step['event']:<28} {step['detail']}".rstrip())
