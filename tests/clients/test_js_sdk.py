"""The AWS SDK for JavaScript v3 (``@aws-sdk/client-sagemaker-a2i-runtime`` and
``@aws-sdk/client-sagemaker``, pinned in package-lock.json) against the emulator.

The suite itself is ``sdk_v3.test.mjs`` (node's own test runner); this test starts an
emulator for it, runs it, and checks that it exercised every operation and every error
the botocore models declare.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from a2i_worker.local import LocalStack

from ._support import (
    HERE,
    ClientEmulator,
    error_statuses,
    missing_coverage,
    node_or_skip,
    start_client_emulator,
)


@pytest.fixture(scope="module")
def emulator_for_js(stack: LocalStack) -> Iterator[ClientEmulator]:
    yield from start_client_emulator(stack, "js-sdk")


def test_sdk_v3_suite_passes_and_covers_the_model(
    emulator_for_js: ClientEmulator, tmp_path: Path
) -> None:
    node = node_or_skip()
    coverage = tmp_path / "coverage.json"
    proc = subprocess.run(
        [node, "--test", "--test-reporter=spec", "sdk_v3.test.mjs"],
        cwd=HERE,
        env={
            **os.environ,
            "A2I_URL": emulator_for_js.url,
            "OUTPUT_S3_URI": emulator_for_js.output_s3_uri,
            "ERROR_STATUS": json.dumps(error_statuses()),
            "COVERAGE_FILE": str(coverage),
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"node --test failed:\n{proc.stdout}\n{proc.stderr}"
    seen = set(json.loads(coverage.read_text()))
    assert missing_coverage(seen) == [], "operations/errors the JS suite never exercised"
