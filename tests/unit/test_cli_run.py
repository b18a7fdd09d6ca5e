"""``a2i-worker run`` refuses a bad configuration: exit status 2, one line per problem.

Each case runs the real entry point in a subprocess with a clean environment (no
inherited A2I_WORKER_* or AWS_* variables) and checks stderr line by line: every
line names the variable, and no line leaks the configured value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

QUEUE = "http://127.0.0.1:9/123456789012/q"
FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/x"


def run_cli(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "a2i_worker.cli", "run"],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def good_env() -> dict[str, str]:
    return {
        "A2I_WORKER_REQUESTS_QUEUE_URL": QUEUE,
        "A2I_WORKER_EVENTS_QUEUE_URL": QUEUE,
        "A2I_WORKER_RESULTS_QUEUE_URL": QUEUE,
        "AWS_REGION": "us-east-1",
    }


def test_nothing_configured_names_every_missing_variable(tmp_path: Path) -> None:
    proc = run_cli({}, tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert lines == [
        "error: A2I_WORKER_REQUESTS_QUEUE_URL is required for run; "
        "allowed: an SQS queue URL (https://…/account/name)",
        "error: A2I_WORKER_EVENTS_QUEUE_URL is required for run; "
        "allowed: an SQS queue URL (https://…/account/name)",
        "error: A2I_WORKER_RESULTS_QUEUE_URL is required for run; "
        "allowed: an SQS queue URL (https://…/account/name)",
        "error: AWS_REGION is not set; allowed: an AWS region name such as us-east-1 "
        "(or AWS_DEFAULT_REGION, or the region of AWS_PROFILE)",
    ]
    assert "Traceback" not in proc.stderr


def test_bad_numbers_one_line_each_without_the_value(tmp_path: Path) -> None:
    env = {
        **good_env(),
        "A2I_WORKER_MAX_IN_FLIGHT": "lots-123",
        "A2I_WORKER_RECEIVE_CONCURRENCY": "0",
        "A2I_WORKER_SHUTDOWN_GRACE_SECONDS": "-5",
        "A2I_WORKER_REQUESTS_QUEUE_URL": "not-a-url",
    }
    proc = run_cli(env, tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert sorted(lines) == sorted(
        [
            "error: A2I_WORKER_REQUESTS_QUEUE_URL is not an http(s) queue URL; "
            "allowed: an SQS queue URL (https://…/account/name)",
            "error: A2I_WORKER_MAX_IN_FLIGHT is not an integer; "
            "allowed: an integer >= 1 and <= 100000",
            "error: A2I_WORKER_RECEIVE_CONCURRENCY is out of range; "
            "allowed: an integer >= 1 and <= 64",
            "error: A2I_WORKER_SHUTDOWN_GRACE_SECONDS is out of range; "
            "allowed: a number > 0 and <= 3600",
        ]
    )
    assert "lots-123" not in proc.stderr
    assert "not-a-url" not in proc.stderr


def test_bad_routes_file_is_one_line_with_the_variable_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text("this is [not toml\n", encoding="utf-8")
    proc = run_cli({**good_env(), "A2I_WORKER_ROUTES_FILE": "routes.toml"}, tmp_path)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert line.startswith("error: A2I_WORKER_ROUTES_FILE: routes.toml: not valid TOML")


def test_missing_routes_file(tmp_path: Path) -> None:
    proc = run_cli({**good_env(), "A2I_WORKER_ROUTES_FILE": "nowhere.toml"}, tmp_path)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert "A2I_WORKER_ROUTES_FILE" in line
    assert "nowhere.toml: cannot read the routes file" in line


def test_bad_rules_file_path_names_route_field_and_file(tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text(
        f'[routes.invoices]\nflow_definition_arn = "{FLOW}"\nrules = "rules/missing.json"\n',
        encoding="utf-8",
    )
    env = {**good_env(), "A2I_WORKER_ROUTES_FILE": "routes.toml"}
    del env["A2I_WORKER_RESULTS_QUEUE_URL"]
    proc = run_cli(env, tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: A2I_WORKER_RESULTS_QUEUE_URL is required for run")
    assert lines[1].startswith("error: A2I_WORKER_ROUTES_FILE: routes.toml: route 'invoices'")
    assert "missing.json" in lines[1]
    assert "cannot read the rules file" in lines[1]


def test_bad_rule_grammar_is_reported_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "rules.json").write_text(
        '{"Conditions": [{"ConditionType": "NoSuchCheck", "ConditionParameters": {}}]}',
        encoding="utf-8",
    )
    (tmp_path / "routes.toml").write_text(
        f'[routes.r]\nflow_definition_arn = "{FLOW}"\nrules = "rules.json"\n', encoding="utf-8"
    )
    proc = run_cli({**good_env(), "A2I_WORKER_ROUTES_FILE": "routes.toml"}, tmp_path)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert "A2I_WORKER_ROUTES_FILE" in line
    assert "NoSuchCheck" in line


def test_errors_found_while_starting_still_exit_2(tmp_path: Path) -> None:
    """A ledger path that cannot exist is only found when the ledger opens."""
    env = {**good_env(), "A2I_WORKER_LEDGER_URL": "sqlite:////nonexistent-dir/x/ledger.db"}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    proc = run_cli(env, tmp_path)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert line.startswith("error: ledger ")
    assert "does not exist" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [("A2I_WORKER_LOG_LEVEL", "LOUD"), ("A2I_WORKER_LEDGER_URL", "postgres://db")],
)
def test_enumerated_settings_say_what_is_allowed(tmp_path: Path, variable: str, value: str) -> None:
    proc = run_cli({**good_env(), variable: value}, tmp_path)
    assert proc.returncode == 2
    [line] = error_lines(proc)
    assert line.startswith(f"error: {variable} ")
    assert "allowed: " in line
    assert value not in line
