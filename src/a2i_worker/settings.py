"""Worker configuration from ``A2I_WORKER_*`` environment variables.

Sources, highest priority first: keyword arguments, environment variables, then the
dotenv file named by ``A2I_WORKER_ENV_FILE`` (optional; ``KEY=value`` lines; a named
file that does not exist is an error). Variable names are case-insensitive. The file's
``AWS_*`` lines are exported by :func:`a2i_worker.envfile.export_env_file_aws_variables`
(real variables win), so one file written by ``a2i-worker local`` configures botocore too.

The standard AWS variables (``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SQS`` …) are read by botocore itself and are
deliberately not duplicated here; they are listed in docs/messages.md.

Every field has a description and its bounds: :mod:`a2i_worker.settings_doc` turns them
into the configuration tables and into one line per validation problem.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = [
    "ENV_FILE_VARIABLE",
    "ENV_PREFIX",
    "EventLoop",
    "LogFormat",
    "Settings",
    "env_var",
]

ENV_PREFIX = "A2I_WORKER_"
ENV_FILE_VARIABLE = "A2I_WORKER_ENV_FILE"


_QUEUE_URL = re.compile(r"https?://[^\s/]+/\S+")
_LEDGER_URL = re.compile(r"sqlite:///\S+|dynamodb://[A-Za-z0-9_.\-]{3,255}(\?\S*)?")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class EventLoop(enum.StrEnum):
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


def _queue(description: str, allowed: str = "an SQS queue URL (https://…/account/name)") -> Any:
    return Field(default=None, description=description, json_schema_extra={"allowed": allowed})


def _seconds(default: float, description: str, *, gt: float = 0, le: float = 86_400) -> Any:
    return Field(default=default, gt=gt, le=le, description=description)


class Settings(BaseSettings):
    """Everything the worker reads from its environment. Construct with ``Settings()``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="ignore",
        validate_default=True,
        frozen=True,
    )

    # -- files -----------------------------------------------------------------------
    env_file: Path | None = Field(
        default=None,
        description="Optional dotenv file with more A2I_WORKER_* variables, and AWS_* ones "
        "exported for botocore (real environment variables win).",
        json_schema_extra={"allowed": "a path to an existing file"},
    )

    # -- queues ----------------------------------------------------------------------
    requests_queue_url: str | None = _queue("SQS queue of review requests (required for run).")
    events_queue_url: str | None = _queue(
        "SQS queue the EventBridge rule sends A2I status changes to (required for run)."
    )
    results_queue_url: str | None = _queue("SQS queue review results go to (required for run).")
    requests_dlq_url: str | None = _queue(
        "Dead-letter queue for rejected request messages (optional: else only the result)."
    )
    events_dlq_url: str | None = _queue("Dead-letter queue for unusable events (optional).")

    # -- routes and ledger -----------------------------------------------------------
    routes_file: Path | None = Field(
        default=None,
        description="Routes file (TOML). Unset: no routes; messages must name "
        "flow_definition_arn and every request is reviewed.",
        json_schema_extra={"allowed": "a path to a TOML file"},
    )
    ledger_url: str = Field(
        default="sqlite:///./a2i-ledger.db",
        description="Where the ledger lives: sqlite:///relative.db, sqlite:////abs/path.db "
        "(one replica) or dynamodb://table-name (many replicas).",
        json_schema_extra={"allowed": "sqlite:///<path> or dynamodb://<table-name>"},
    )

    # -- intake and backpressure -----------------------------------------------------
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most request messages held at once (the receive window's ceiling).",
    )
    receive_window_seconds: float = _seconds(
        5,
        "Request messages held: about what the current start rate starts in this many "
        "seconds, plus one receive batch (at most A2I_WORKER_MAX_IN_FLIGHT). Bounds what a "
        "crash leaves invisible for a visibility timeout.",
        le=3600,
    )
    receive_concurrency: int = Field(
        default=4, ge=1, le=64, description="Parallel ReceiveMessage loops on the requests queue."
    )
    receive_wait_seconds: int = Field(
        default=20, ge=0, le=20, description="SQS long-poll wait per receive."
    )
    visibility_timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=43_200,
        description="Visibility timeout given to received messages (extended by heartbeats).",
    )
    heartbeat_interval_seconds: float = _seconds(
        30, "How often visibility of in-flight messages is extended (< visibility timeout)."
    )
    receive_backoff_max_seconds: float = _seconds(
        20,
        "Longest pause after failed receives: each pause is random up to a bound that "
        "doubles from 0.5 s to this.",
        le=600,
    )

    # -- rate limiting ---------------------------------------------------------------
    start_rate_initial: float = Field(
        default=10.0, gt=0, le=10_000, description="StartHumanLoop calls/s to begin with."
    )
    start_rate_min: float = Field(
        default=0.5, gt=0, le=10_000, description="Floor of the adaptive start rate (calls/s)."
    )
    start_rate_max: float = Field(
        default=1000.0,
        gt=0,
        le=10_000,
        description="Ceiling of the adaptive start rate (calls/s); the limiter finds the quota.",
    )
    sweep_rate_max: float = Field(
        default=50.0,
        gt=0,
        le=10_000,
        description="Ceiling of Describe/List calls per second for reconciliation.",
    )
    sweep_rate_initial: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="Describe/List calls/s to begin with (at most the ceiling).",
    )
    quota_gate_margin: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Loops below the open-loop count of the last ServiceQuotaExceeded that "
        "the quota gate stays at (room for loops started by anything but this worker).",
    )
    quota_gate_probe_seconds: float = _seconds(
        15,
        "While the quota gate is closed with starts waiting, one start goes through as a "
        "probe after about this many seconds (is the quota raised, an event lost?).",
        le=3600,
    )
    quota_gate_probe_jitter: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="Relative spread of the probe delay, so replicas do not probe together.",
    )
    quota_gate_probe_step_max: int = Field(
        default=64,
        ge=0,
        le=100_000,
        description="A probe that finds room while no finish reached this replica (stuck "
        "below the quota: a raise, finishes told to idle replicas) also opens the gate by "
        "1, 2, 4 … up to this many loops, and the next probe comes twice as soon (0: only "
        "the probe's own loop).",
    )

    # -- reconciliation --------------------------------------------------------------
    sweep_interval_seconds: float = _seconds(60, "How often the sweeper looks for overdue loops.")
    sweep_list_threshold: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Open loops of one flow definition above which one paged ListHumanLoops "
        "replaces many DescribeHumanLoop calls.",
    )
    overdue_after_seconds: float = _seconds(
        900,
        "A loop with no status change for this long is checked with Describe/List.",
        le=30 * 86_400,
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        le=999,
        description="Loops per request: an Expired loop is resubmitted until this many.",
    )
    delete_finished_loops: bool = Field(
        default=False, description="Delete loops in A2I once their result is published."
    )
    start_wait_seconds: float = _seconds(
        60,
        "Longest one StartHumanLoop waits for the rate limiter and the quota gate; the "
        "request then stays STARTING and the sweeper retries it.",
        le=3600,
    )
    start_timeout_seconds: float = _seconds(
        21_600,
        "A request that could not get a loop for this long after it entered STARTING ends "
        "failed (failure_code start_timed_out).",
        le=30 * 86_400,
    )
    stopping_timeout_seconds: float = _seconds(
        1800,
        "A loop in Stopping for this long (since it entered Stopping) is resolved as stopped.",
        le=30 * 86_400,
    )
    output_tries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Reads of a missing or unreadable output.json before the request ends "
        "failed (output_missing, output_access_denied, output_unreadable).",
    )
    max_receives: int = Field(
        default=10,
        ge=2,
        le=1000,
        description="Receives after which a request that keeps failing is rejected "
        "(retries_exhausted, internal_error); the requests queue's redrive "
        "maxReceiveCount is used instead when it has one.",
    )

    # -- results ---------------------------------------------------------------------
    results_include_prediction: bool = Field(
        default=True, description="Copy the prediction into each result."
    )

    # -- process ---------------------------------------------------------------------
    shutdown_grace_seconds: float = _seconds(
        30, "On SIGTERM: time to finish or return in-flight work.", le=3600
    )
    health_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address of /livez /readyz /metrics. Containers set 0.0.0.0.",
        json_schema_extra={"allowed": "an IP address or host name"},
    )
    health_port: int = Field(
        default=8080, ge=0, le=65_535, description="Port of the health server (0: any free)."
    )
    log_format: LogFormat = Field(
        default=LogFormat.AUTO,
        description="auto: JSON unless stderr is a terminal; json; console.",
    )
    log_level: str = Field(
        default="INFO",
        description="Log level.",
        json_schema_extra={"allowed": ", ".join(_LOG_LEVELS)},
    )
    aws_max_pool_connections: int = Field(
        default=100, ge=1, le=10_000, description="HTTP connections per AWS client."
    )
    event_loop: EventLoop = Field(
        default=EventLoop.UVLOOP,
        description="Event loop of `a2i-worker run`: uvloop (libuv; about a tenth less CPU "
        "per request, see bench/README.md) or asyncio (the standard library's).",
    )

    # -- sources ---------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings]
        env_file = os.environ.get(ENV_FILE_VARIABLE)
        if env_file and Path(env_file).is_file():
            sources.append(DotEnvSettingsSource(settings_cls, env_file=env_file))
        return tuple(sources)

    # -- validation ------------------------------------------------------------------

    @field_validator("env_file")
    @classmethod
    def _env_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise PydanticCustomError("env_file_missing", "the file does not exist")
        return value

    @field_validator(
        "requests_queue_url",
        "events_queue_url",
        "results_queue_url",
        "requests_dlq_url",
        "events_dlq_url",
    )
    @classmethod
    def _queue_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not _QUEUE_URL.fullmatch(value):
            raise PydanticCustomError("queue_url", "is not an http(s) queue URL")
        return value

    @field_validator("routes_file", mode="before")
    @classmethod
    def _empty_path(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("ledger_url")
    @classmethod
    def _ledger_url(cls, value: str) -> str:
        if not _LEDGER_URL.fullmatch(value):
            raise PydanticCustomError("ledger_url", "is not a supported ledger URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            upper = value.strip().upper()
            if upper in _LOG_LEVELS:
                return upper
        raise PydanticCustomError("log_level", "is not a log level")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.heartbeat_interval_seconds >= self.visibility_timeout_seconds:
            raise PydanticCustomError(
                "heartbeat_interval",
                "A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS must be shorter than "
                "A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS, or messages reappear while in work",
            )
        if not self.start_rate_min <= self.start_rate_initial <= self.start_rate_max:
            raise PydanticCustomError(
                "start_rates",
                "A2I_WORKER_START_RATE_MIN <= A2I_WORKER_START_RATE_INITIAL <= "
                "A2I_WORKER_START_RATE_MAX must hold",
            )
        return self


# --------------------------------------------------------------------------- helpers


def env_var(field_name: str) -> str:
    """The environment variable of a settings field."""
    return ENV_PREFIX + field_name.upper()
