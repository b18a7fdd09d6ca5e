"""What the commands share: settings, one-line failures, the ledger and AWS clients.

A one-shot command never creates anything by accident: :func:`open_ledger` refuses when
no ledger is configured (``A2I_WORKER_LEDGER_URL`` unset) and when a SQLite ledger file
does not exist, instead of creating an empty ``./a2i-ledger.db``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import typer
from pydantic import ValidationError

from a2i_worker.errors import ConfigError

if TYPE_CHECKING:
    from a2i_worker.aws import AwsClients, ServiceName
    from a2i_worker.ledger.protocol import Ledger

__all__ = [
    "config_errors",
    "emit_json",
    "fail",
    "load_settings",
    "open_aws",
    "open_ledger",
    "quiet_settings",
    "redacted",
    "region_problem",
    "run_command",
]

_T = TypeVar("_T")


def fail(lines: list[str], code: int = 2) -> typer.Exit:
    """Print each line as ``error: …`` on stderr; the ``typer.Exit`` to raise."""
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Any:
    from a2i_worker.envfile import export_env_file_aws_variables
    from a2i_worker.settings import Settings
    from a2i_worker.settings_doc import describe_settings_errors

    try:
        export_env_file_aws_variables()
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise fail(describe_settings_errors(exc)) from None
    except (ConfigError, OSError) as exc:
        raise fail([str(exc)]) from None


def quiet_settings() -> Any:
    """Settings for the one-shot commands: logs only warnings, on stderr (stdout is output)."""
    from a2i_worker.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, "WARNING")
    return settings


def region_problem() -> str | None:
    """The error line when no AWS region is configured anywhere botocore looks."""
    from botocore.session import Session as BotocoreSession

    from a2i_worker.aws import resolve_region

    if resolve_region(None, os.environ) or BotocoreSession().get_config_variable("region"):
        return None
    return (
        "AWS_REGION is not set; allowed: an AWS region name such as us-east-1 "
        "(or AWS_DEFAULT_REGION, or the region of AWS_PROFILE)"
    )


def config_errors(exc: BaseException) -> list[ConfigError]:
    """The ConfigErrors inside ``exc`` (task groups wrap them in exception groups)."""
    if isinstance(exc, ConfigError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [e for sub in exc.exceptions for e in config_errors(sub)]
    return []


def run_command(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """``anyio.run(fn, *args)``: a configuration error is one line and exit 2, an AWS or
    network error one line and exit 1 — never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    from a2i_worker.classify import classify

    try:
        return anyio.run(fn, *args)
    except (typer.Exit, typer.Abort):
        raise
    except (ClientError, BotoCoreError) as exc:
        c = classify(exc)
        raise fail([f"AWS answered {c.code or type(exc).__name__}: {c.message}"], 1) from None
    except BaseException as exc:
        errors = config_errors(exc)
        if not errors:
            raise
        raise fail([str(e) for e in errors]) from None


@asynccontextmanager
async def open_aws(services: tuple[ServiceName, ...]) -> AsyncIterator[AwsClients]:
    """AWS clients for ``services``; no region configured is a one-line error (exit 2)."""
    from a2i_worker.aws import AwsClients, AwsClientSettings

    problem = region_problem()
    if problem:
        raise fail([problem])
    async with AwsClients(AwsClientSettings(), services=services) as aws:
        yield aws


def _sqlite_path(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///").split("?")[0]) if url.startswith("sqlite") else None


@asynccontextmanager
async def open_ledger(
    settings: Any, services: tuple[ServiceName, ...] = ()
) -> AsyncIterator[tuple[Ledger, AwsClients | None]]:
    """The configured ledger, opened (never created), with the clients the caller needs."""
    from a2i_worker.ledger.factory import ledger_from_url

    url = str(settings.ledger_url)
    if "ledger_url" not in settings.model_fields_set:
        raise fail(
            [
                "A2I_WORKER_LEDGER_URL is not set; allowed: the worker's ledger, "
                "sqlite:///<path> or dynamodb://<table-name>"
            ]
        )
    path = _sqlite_path(url)
    if path is not None and not path.is_file():
        raise fail([f"A2I_WORKER_LEDGER_URL: ledger file {path} does not exist"])
    wanted = tuple(dict.fromkeys((*services, "dynamodb") if path is None else services))
    if not wanted:
        ledger = ledger_from_url(url)
        await ledger.open()
        try:
            yield ledger, None
        finally:
            await ledger.close()
        return
    async with open_aws(wanted) as aws:
        ledger = ledger_from_url(url, dynamodb_client=aws.dynamodb if path is None else None)
        await ledger.open()
        try:
            yield ledger, aws
        finally:
            await ledger.close()


def redacted(data: dict[str, Any]) -> dict[str, Any]:
    """A ledger record without the input, the prediction or the human answers."""
    data.pop("payload", None)  # may hold the input: never printed
    ctx = data.get("context") or {}
    ctx.pop("prediction", None)
    result = data.get("result")
    if isinstance(result, dict):
        result.pop("prediction", None)
        answers = result.pop("human_answers", None)
        if isinstance(answers, list):
            result["human_answers_count"] = len(answers)
    return data


def emit_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2, default=str))
