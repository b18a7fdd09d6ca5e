"""The AWS CLI (awscli 1.x from PyPI, a dev dependency) against the emulator.

The CLI prints what the service sent: with its default ``cli_timestamp_format`` it does not
reformat timestamps, so its JSON output shows the wire format itself (ISO 8601 strings for
A2I runtime, epoch numbers for SageMaker, as each model says). Calls run the CLI's own
entry point (``awscli.clidriver``) in-process, a new driver per command, to keep ~50 calls
fast; one test runs the installed ``aws`` executable as a separate process.

Every call is recorded; the last test checks that every operation and every error the
models declare was exercised (tests of this module run in file order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from a2i_worker.local import LocalStack

from ._cli import ISO_MS, REGION, SEEN, aws, control, fails, flow_args, ok, start, start_args
from ._support import ClientEmulator, missing_coverage, start_client_emulator


@pytest.fixture(scope="module")
def emu(stack: LocalStack) -> Iterator[ClientEmulator]:
    yield from start_client_emulator(stack, "aws-cli")


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # every Throttling/5xx reaches the test
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_PAGER", "")


@pytest.fixture(scope="module")
def flow(emu: ClientEmulator) -> str:
    """Task UI ``cli-ui`` and flow ``cli-flow`` (manual reviewers, stop at once), Active."""
    ui = ok(
        emu,
        "sagemaker",
        "create-human-task-ui",
        "--human-task-ui-name",
        "cli-ui",
        "--ui-template",
        json.dumps({"Content": "<crowd-form></crowd-form>"}),
    )
    arn: str = ok(emu, *flow_args("cli-flow", ui["HumanTaskUiArn"], emu.output_s3_uri))[
        "FlowDefinitionArn"
    ]
    desc = ok(emu, "sagemaker", "describe-flow-definition", "--flow-definition-name", "cli-flow")
    assert desc["FlowDefinitionStatus"] == "Initializing"
    assert isinstance(desc["CreationTime"], float)  # SageMaker (JSON 1.1): epoch seconds
    assert desc["HumanLoopConfig"]["HumanTaskUiArn"] == ui["HumanTaskUiArn"]
    control(emu, "PUT", "/flow-definitions/cli-flow/reviewers", {"mode": "manual", "stop_delay": 0})
    deadline = time.monotonic() + 5
    describe = ("sagemaker", "describe-flow-definition", "--flow-definition-name", "cli-flow")
    while ok(emu, *describe)["FlowDefinitionStatus"] != "Active":  # botocore has no waiter
        assert time.monotonic() < deadline, "cli-flow never became Active"
        time.sleep(0.05)
    return arn


def test_start_describe_list_wire_format(emu: ClientEmulator, flow: str) -> None:
    for i in range(5):
        assert start(emu, f"cli-{i}", flow, i).rc == 0
    again = start(emu, "cli-0", flow, 0)
    assert again.rc == 0
    assert again.out["HumanLoopArn"].endswith(":human-loop/cli-0")
    loop = ok(emu, "sagemaker-a2i-runtime", "describe-human-loop", "--human-loop-name", "cli-0")
    # the CLI prints the wire value: the model's Timestamp shape says iso8601
    assert ISO_MS.match(loop["CreationTime"]), loop["CreationTime"]
    assert loop["HumanLoopStatus"] == "InProgress"
    assert set(loop) == {
        "CreationTime",
        "HumanLoopStatus",
        "HumanLoopName",
        "HumanLoopArn",
        "FlowDefinitionArn",
    }
    listed = ok(
        emu,
        "sagemaker-a2i-runtime",
        "list-human-loops",
        "--flow-definition-arn",
        flow,
        "--sort-order",
        "Ascending",
        "--page-size",
        "2",
    )
    names = [s["HumanLoopName"] for s in listed["HumanLoopSummaries"]]
    assert names == [f"cli-{i}" for i in range(5)]
    assert all(ISO_MS.match(s["CreationTime"]) for s in listed["HumanLoopSummaries"])
    first = ok(
        emu,
        "sagemaker-a2i-runtime",
        "list-human-loops",
        "--flow-definition-arn",
        flow,
        "--max-items",
        "3",
    )
    assert [s["HumanLoopName"] for s in first["HumanLoopSummaries"]] == [
        "cli-4",
        "cli-3",
        "cli-2",
    ]
    rest = ok(
        emu,
        "sagemaker-a2i-runtime",
        "list-human-loops",
        "--flow-definition-arn",
        flow,
        "--starting-token",
        first["NextToken"],
    )
    assert [s["HumanLoopName"] for s in rest["HumanLoopSummaries"]] == ["cli-1", "cli-0"]
    after = ok(
        emu,
        "sagemaker-a2i-runtime",
        "list-human-loops",
        "--flow-definition-arn",
        flow,
        "--creation-time-after",
        loop["CreationTime"],
        "--sort-order",
        "Ascending",
    )
    assert after["HumanLoopSummaries"][0]["HumanLoopName"] == "cli-0"


def test_stop_delete_and_output(emu: ClientEmulator, flow: str) -> None:
    assert start(emu, "cli-stop", flow).rc == 0
    ok(emu, "sagemaker-a2i-runtime", "stop-human-loop", "--human-loop-name", "cli-stop")
    stopped = ok(
        emu, "sagemaker-a2i-runtime", "describe-human-loop", "--human-loop-name", "cli-stop"
    )
    assert stopped["HumanLoopStatus"] == "Stopped"
    ok(emu, "sagemaker-a2i-runtime", "delete-human-loop", "--human-loop-name", "cli-stop")
    assert start(emu, "cli-done", flow).rc == 0
    control(emu, "POST", "/human-loops/cli-done/finish", {"outcome": "Completed"})
    done = ok(emu, "sagemaker-a2i-runtime", "describe-human-loop", "--human-loop-name", "cli-done")
    assert done["HumanLoopOutput"]["OutputS3Uri"].endswith("/cli-done/output.json")
    assert "FailureReason" not in done


def test_a2i_runtime_errors(emu: ClientEmulator, flow: str) -> None:
    rt = "sagemaker-a2i-runtime"
    bad = "Not_A_Valid_Name"
    assert start(emu, "cli-active", flow).rc == 0
    fails(emu, "ValidationException", *start_args(bad, flow))
    fails(emu, "ConflictException", *start_args("cli-active", flow, 9))
    fails(emu, "ValidationException", rt, "describe-human-loop", "--human-loop-name", bad)
    fails(emu, "ValidationException", rt, "stop-human-loop", "--human-loop-name", bad)
    fails(emu, "ValidationException", rt, "delete-human-loop", "--human-loop-name", "cli-active")
    fails(
        emu,
        "ValidationException",
        rt,
        "list-human-loops",
        "--flow-definition-arn",
        flow,
        "--starting-token",
        "garbage",
    )
    for op in ("describe-human-loop", "stop-human-loop", "delete-human-loop"):
        fails(emu, "ResourceNotFoundException", rt, op, "--human-loop-name", "nope")
    fails(
        emu,
        "ResourceNotFoundException",
        rt,
        "list-human-loops",
        "--flow-definition-arn",
        flow + "-missing",
    )
    counters = control(emu, "GET", "/counters")
    open_now = counters["loops_by_status"]["InProgress"] + counters["loops_by_status"]["Stopping"]
    control(emu, "PUT", "/quotas", {"max_in_progress": open_now})
    fails(emu, "ServiceQuotaExceededException", *start_args("cli-over", flow))
    control(emu, "PUT", "/quotas", {"max_in_progress": None})
    calls = {
        "StartHumanLoop": start_args("cli-fault", flow),
        "DescribeHumanLoop": (rt, "describe-human-loop", "--human-loop-name", "cli-active"),
        "StopHumanLoop": (rt, "stop-human-loop", "--human-loop-name", "cli-active"),
        "DeleteHumanLoop": (rt, "delete-human-loop", "--human-loop-name", "cli-active"),
        "ListHumanLoops": (rt, "list-human-loops", "--flow-definition-arn", flow),
    }
    for op, args in calls.items():
        control(emu, "PUT", "/faults", {"operations": {op: {"error_rate": 1}}})
        fails(emu, "InternalServerException", *args)
        control(emu, "PUT", "/faults", {"operations": {op: None}})
        control(emu, "PUT", "/quotas", {"rates": {op: {"rate": 0.001, "burst": 1}}})
        aws(emu, *args)  # takes the bucket's only token, whatever it answers
        fails(emu, "ThrottlingException", *args)
        control(emu, "PUT", "/quotas", {"rates": {op: None}})


def test_sagemaker_flows_and_errors(emu: ClientEmulator, flow: str) -> None:
    sm = "sagemaker"
    ui_arn = ok(emu, sm, "describe-human-task-ui", "--human-task-ui-name", "cli-ui")[
        "HumanTaskUiArn"
    ]
    template = json.dumps({"Content": "<p/>"})
    fails(
        emu,
        "ResourceInUse",
        sm,
        "create-human-task-ui",
        "--human-task-ui-name",
        "cli-ui",
        "--ui-template",
        template,
    )
    fails(emu, "ResourceNotFound", sm, "describe-human-task-ui", "--human-task-ui-name", "nope")
    fails(emu, "ResourceNotFound", sm, "delete-human-task-ui", "--human-task-ui-name", "nope")
    fails(emu, "ResourceNotFound", sm, "describe-flow-definition", "--flow-definition-name", "x")
    fails(emu, "ResourceNotFound", sm, "delete-flow-definition", "--flow-definition-name", "x")
    fails(emu, "ResourceInUse", *flow_args("cli-flow", ui_arn, emu.output_s3_uri))
    fails(emu, "ResourceInUse", sm, "delete-flow-definition", "--flow-definition-name", "cli-flow")
    counters = control(emu, "GET", "/counters")
    control(
        emu,
        "PUT",
        "/quotas",
        {
            "max_flow_definitions": counters["flow_definitions"],
            "max_human_task_uis": counters["human_task_uis"],
        },
    )
    fails(emu, "ResourceLimitExceeded", *flow_args("cli-over", ui_arn, emu.output_s3_uri))
    fails(
        emu,
        "ResourceLimitExceeded",
        sm,
        "create-human-task-ui",
        "--human-task-ui-name",
        "cli-ui-2",
        "--ui-template",
        template,
    )
    control(emu, "PUT", "/quotas", {"max_flow_definitions": None, "max_human_task_uis": None})
    ok(
        emu,
        sm,
        "create-human-task-ui",
        "--human-task-ui-name",
        "cli-ui-2",
        "--ui-template",
        template,
    )
    for name in ("cli-b", "cli-c"):
        ok(emu, *flow_args(name, ui_arn, emu.output_s3_uri))
    flows = ok(emu, sm, "list-flow-definitions", "--sort-order", "Ascending", "--page-size", "1")
    names = [f["FlowDefinitionName"] for f in flows["FlowDefinitionSummaries"]]
    assert names == ["cli-flow", "cli-b", "cli-c"]
    uis = ok(emu, sm, "list-human-task-uis", "--sort-order", "Descending")
    assert [u["HumanTaskUiName"] for u in uis["HumanTaskUiSummaries"]] == ["cli-ui-2", "cli-ui"]
    ok(emu, sm, "delete-human-task-ui", "--human-task-ui-name", "cli-ui-2")
    ok(emu, sm, "delete-flow-definition", "--flow-definition-name", "cli-c")
    gone = ok(emu, sm, "describe-flow-definition", "--flow-definition-name", "cli-c")
    assert gone["FlowDefinitionStatus"] == "Deleting"


def test_the_installed_aws_executable(emu: ClientEmulator, flow: str) -> None:
    """The ``aws`` script of this venv, as its own process (what a user's shell runs)."""
    exe = Path(sys.executable).with_name("aws")
    assert exe.is_file(), "awscli is a dev dependency: run `make .venv/.installed-stamp`"
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": ""}
    proc = subprocess.run(
        [
            str(exe),
            "sagemaker-a2i-runtime",
            "list-human-loops",
            "--flow-definition-arn",
            flow,
            "--endpoint-url",
            emu.url,
            "--region",
            REGION,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    summaries = json.loads(proc.stdout)["HumanLoopSummaries"]
    assert summaries
    assert all(ISO_MS.match(s["CreationTime"]) for s in summaries)


def test_cli_suite_covers_every_operation_and_error() -> None:
    assert missing_coverage(SEEN) == []
