"""Settings: defaults, environment, dotenv file, and error lines that never show values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from a2i_worker.errors import ConfigError
from a2i_worker.queue_urls import queue_urls
from a2i_worker.settings import ENV_FILE_VARIABLE, LogFormat, Settings
from a2i_worker.settings_doc import (
    describe_settings_errors,
    settings_reference,
    unknown_environment_variables,
)

REPO = Path(__file__).resolve().parents[2]
Q = "http://127.0.0.1:5000/123456789012/"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("A2I_WORKER_"):
            monkeypatch.delenv(key)


def errors_of(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    return describe_settings_errors(info.value)


def test_defaults() -> None:
    s = Settings()
    assert s.ledger_url == "sqlite:///./a2i-ledger.db"
    assert (s.max_in_flight, s.receive_wait_seconds, s.visibility_timeout_seconds) == (
        1000,
        20,
        120,
    )
    assert (s.sweep_interval_seconds, s.shutdown_grace_seconds, s.health_port) == (60, 30, 8080)
    # Intervals tests shorten; production keeps these.
    assert (s.receive_backoff_max_seconds, s.sweep_rate_initial, s.quota_gate_probe_seconds) == (
        20,
        5.0,
        15,
    )
    assert s.delete_finished_loops is False
    assert s.log_format is LogFormat.AUTO
    assert s.log_level == "INFO"
    assert s.routes_file is None
    assert s.requests_queue_url is None


def test_environment_is_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A2I_WORKER_MAX_IN_FLIGHT", "50")
    monkeypatch.setenv("a2i_worker_log_level", "debug")
    monkeypatch.setenv("A2I_WORKER_LOG_FORMAT", "json")
    monkeypatch.setenv("A2I_WORKER_DELETE_FINISHED_LOOPS", "true")
    monkeypatch.setenv("A2I_WORKER_ROUTES_FILE", "config/routes.toml")
    monkeypatch.setenv("A2I_WORKER_LEDGER_URL", "dynamodb://a2i-ledger")
    s = Settings()
    assert s.max_in_flight == 50
    assert s.log_level == "DEBUG"
    assert s.log_format is LogFormat.JSON
    assert s.delete_finished_loops is True
    assert s.routes_file == Path("config/routes.toml")
    assert s.ledger_url == "dynamodb://a2i-ledger"


def test_keyword_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A2I_WORKER_MAX_IN_FLIGHT", "50")
    assert Settings(max_in_flight=7).max_in_flight == 7


def test_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "worker.env"
    env_file.write_text(
        "AWS_REGION=us-east-1\nA2I_WORKER_MAX_IN_FLIGHT=42\nA2I_WORKER_HEALTH_PORT=9000\n"
    )
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(env_file))
    monkeypatch.setenv("A2I_WORKER_HEALTH_PORT", "9100")  # the real environment wins
    s = Settings()
    assert s.max_in_flight == 42
    assert s.health_port == 9100
    assert s.env_file == env_file


def test_missing_env_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lines = errors_of(monkeypatch, {ENV_FILE_VARIABLE: str(tmp_path / "nope.env")})
    assert lines == [
        "A2I_WORKER_ENV_FILE the file does not exist; allowed: a path to an existing file"
    ]


def test_local_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(REPO / "config" / "local.env"))
    s = Settings()
    urls = queue_urls(s)
    assert urls.requests.endswith("/demo-requests")
    assert s.routes_file == Path("config/local-routes.toml")


SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("A2I_WORKER_MAX_IN_FLIGHT", SECRET, "is not an integer; allowed: an integer >= 1"),
        ("A2I_WORKER_MAX_IN_FLIGHT", "0", "is out of range; allowed: an integer >= 1"),
        ("A2I_WORKER_RECEIVE_WAIT_SECONDS", "21", "allowed: an integer >= 0 and <= 20"),
        ("A2I_WORKER_START_RATE_MAX", SECRET, "is not a number; allowed: a number > 0"),
        ("A2I_WORKER_DELETE_FINISHED_LOOPS", SECRET, "allowed: true or false"),
        ("A2I_WORKER_LOG_FORMAT", SECRET, "allowed: auto, json, console"),
        ("A2I_WORKER_LOG_LEVEL", SECRET, "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("A2I_WORKER_LEDGER_URL", f"postgres://u:{SECRET}@h/db", "allowed: sqlite:///<path>"),
        ("A2I_WORKER_LEDGER_URL", "dynamodb://x", "is not a supported ledger URL"),
        ("A2I_WORKER_REQUESTS_QUEUE_URL", SECRET, "is not an http(s) queue URL"),
        ("A2I_WORKER_HEALTH_PORT", "70000", "is out of range; allowed: an integer >= 0"),
    ],
)
def test_error_lines_name_the_variable_and_not_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    lines = errors_of(monkeypatch, {variable: value})
    assert len(lines) == 1
    assert lines[0].startswith(variable + " ")
    assert expected in lines[0]
    assert SECRET not in lines[0]


def test_every_problem_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = errors_of(
        monkeypatch,
        {
            "A2I_WORKER_MAX_IN_FLIGHT": "x",
            "A2I_WORKER_LOG_LEVEL": "x",
            "A2I_WORKER_HEALTH_PORT": "-1",
        },
    )
    assert sorted(line.split()[0] for line in lines) == [
        "A2I_WORKER_HEALTH_PORT",
        "A2I_WORKER_LOG_LEVEL",
        "A2I_WORKER_MAX_IN_FLIGHT",
    ]


def test_cross_field_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = errors_of(
        monkeypatch,
        {
            "A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS": "30",
            "A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS": "30",
        },
    )
    assert "A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS must be shorter than" in lines[0]
    monkeypatch.delenv("A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS")
    monkeypatch.delenv("A2I_WORKER_HEARTBEAT_INTERVAL_SECONDS")
    lines = errors_of(monkeypatch, {"A2I_WORKER_START_RATE_INITIAL": "5000"})
    assert "A2I_WORKER_START_RATE_INITIAL" in lines[0]


def test_queue_urls_required_for_run() -> None:
    with pytest.raises(ConfigError) as info:
        queue_urls(Settings(requests_queue_url=Q + "req"))
    assert "A2I_WORKER_EVENTS_QUEUE_URL" in str(info.value)
    assert "A2I_WORKER_RESULTS_QUEUE_URL" in str(info.value)
    assert "A2I_WORKER_REQUESTS_QUEUE_URL" not in str(info.value)
    urls = queue_urls(
        Settings(
            requests_queue_url=Q + "req", events_queue_url=Q + "ev", results_queue_url=Q + "res"
        )
    )
    assert (urls.requests, urls.events, urls.results, urls.requests_dlq) == (
        Q + "req",
        Q + "ev",
        Q + "res",
        None,
    )


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A2I_WORKER_REQUESTS_DLQ_URL", "")
    monkeypatch.setenv("A2I_WORKER_ROUTES_FILE", "")
    s = Settings()
    assert s.requests_dlq_url is None
    assert s.routes_file is None


def test_reference_covers_every_field_with_a_description() -> None:
    rows = settings_reference()
    assert len(rows) == len(Settings.model_fields)
    for row in rows:
        assert row.variable.startswith("A2I_WORKER_")
        assert row.description
        assert row.allowed
    by_name = {r.variable: r for r in rows}
    assert by_name["A2I_WORKER_MAX_IN_FLIGHT"].default == "1000"
    assert by_name["A2I_WORKER_DELETE_FINISHED_LOOPS"].default == "false"
    assert by_name["A2I_WORKER_LOG_FORMAT"].default == "auto"


def test_unknown_variables_are_reported() -> None:
    env = {"A2I_WORKER_MAX_INFLIGHT": "1", "A2I_WORKER_MAX_IN_FLIGHT": "1", "AWS_REGION": "x"}
    assert unknown_environment_variables(env) == ["A2I_WORKER_MAX_INFLIGHT"]
