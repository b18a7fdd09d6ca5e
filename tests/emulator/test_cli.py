"""``a2i-emulator serve`` in its own process: prints its URL, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import botocore.session
import pytest

from a2i_emulator.cli import parse_flow_option
from a2i_emulator.model import ALL_OPERATIONS

from ._support import CREDS


def test_serve_prints_url_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "a2i_emulator.cli", "serve", "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/_emulator/counters", timeout=10) as resp:
            counters = json.load(resp)
        assert counters["loops_total"] == 0
        assert set(counters["operations"]) == set(ALL_OPERATIONS)
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_serve_creates_flows_given_on_the_command_line() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "a2i_emulator.cli",
            "serve",
            "--flow",
            "invoices=manual",
            "--flow",
            "receipts=auto:0",
            "--flow",
            "plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        sagemaker: Any = botocore.session.get_session().create_client(
            "sagemaker", endpoint_url=url, **CREDS
        )
        listed = sagemaker.list_flow_definitions(SortOrder="Ascending")
        flows = {f["FlowDefinitionName"]: f for f in listed["FlowDefinitionSummaries"]}
        assert set(flows) == {"invoices", "receipts", "plain"}
        assert {f["FlowDefinitionStatus"] for f in flows.values()} == {"Active"}
        desc = sagemaker.describe_flow_definition(FlowDefinitionName="invoices")
        assert desc["OutputConfig"]["S3OutputPath"] == "s3://a2i-emulator-output/invoices"
        with urllib.request.urlopen(f"{url}/_emulator/flow-definitions/invoices/reviewers") as r:
            assert json.load(r)["mode"] == "manual"
        with urllib.request.urlopen(f"{url}/_emulator/flow-definitions/receipts/reviewers") as r:
            assert json.load(r)["delay"] == {"distribution": "fixed", "seconds": 0.0}
        with urllib.request.urlopen(f"{url}/_emulator/flow-definitions/plain/reviewers") as r:
            assert json.load(r)["own"] is False
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("bad", ["Bad", "x=auto", "x=auto:-1", "x=sometimes", "x=auto:soon"])
def test_flow_option_refuses_what_it_cannot_mean(bad: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_flow_option(bad)
