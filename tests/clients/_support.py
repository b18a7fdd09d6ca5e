"""What the real-client suites share: the emulator they talk to and what they must cover.

The required coverage comes from the botocore models, not from a list typed here: every
operation served, answered once with success and once with each error its model declares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from a2i_emulator.model import (
    A2I_RUNTIME,
    ALL_OPERATIONS,
    COMMON_ERRORS,
    SAGEMAKER,
    error_status,
    operation_model,
    service_model,
)
from a2i_emulator.server import EmulatorConfig, EmulatorServer
from a2i_worker.local import LocalStack

__all__ = [
    "HERE",
    "ClientEmulator",
    "error_statuses",
    "missing_coverage",
    "node_or_skip",
    "required_coverage",
    "start_client_emulator",
]

HERE = Path(__file__).resolve().parent


def required_coverage() -> set[str]:
    """``"<Operation>:OK"`` and ``"<Operation>:<Code>"`` for every declared error."""
    out: set[str] = set()
    for op in ALL_OPERATIONS:
        out.add(f"{op}:OK")
        out.update(f"{op}:{shape.name}" for shape in operation_model(op).error_shapes)
    return out


def missing_coverage(seen: set[str]) -> list[str]:
    return sorted(required_coverage() - seen)


def error_statuses() -> dict[str, dict[str, int]]:
    """``{service: {code: HTTP status}}`` from the models (plus the common errors)."""
    out: dict[str, dict[str, int]] = {}
    for service in (A2I_RUNTIME, SAGEMAKER):
        model = service_model(service)
        codes = {
            s.name
            for op in ALL_OPERATIONS
            if op in model.operation_names
            for s in operation_model(op).error_shapes
        }
        out[service] = {c: error_status(service, c) for c in codes | set(COMMON_ERRORS)}
    return out


@dataclass(frozen=True)
class ClientEmulator:
    url: str
    output_s3_uri: str
    server: EmulatorServer


def start_client_emulator(stack: LocalStack, name: str) -> Iterator[ClientEmulator]:
    """An emulator of its own (writing output.json to the session's moto) for one suite;
    new flows stay Initializing for 1 s so the suites can see the status change."""
    bucket = f"{name}-output"
    s3: Any = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=stack.moto_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    server = EmulatorServer(
        EmulatorConfig(
            seed=11,
            s3_endpoint_url=stack.moto_url,
            flow_activation_seconds=1.0,
            flow_deletion_seconds=0.3,
        )
    )
    url = server.start_in_thread()
    try:
        yield ClientEmulator(url, f"s3://{bucket}/reviews", server)
    finally:
        server.stop_thread()


def node_or_skip() -> str:
    """The ``node`` binary, the suite's npm packages installed from the lock file."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the AWS SDK for JavaScript v3 suite needs Node >= 18")
    lock = json.loads((HERE / "package-lock.json").read_text())
    wanted = {
        name.removeprefix("node_modules/"): meta["version"]
        for name, meta in lock["packages"].items()
        if name.startswith("node_modules/@aws-sdk/client-sagemaker")
    }
    for package, version in wanted.items():
        manifest = HERE / "node_modules" / package / "package.json"
        if not manifest.is_file() or json.loads(manifest.read_text())["version"] != version:
            npm = shutil.which("npm")
            assert npm is not None, "node is installed but npm is not: install npm"
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=HERE,
                check=True,
                env={**os.environ, "npm_config_update_notifier": "false"},
                timeout=600,
            )
            break
    return node
