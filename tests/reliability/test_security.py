"""No request input, prediction, metadata, human answer or reviewer identity in logs,
metrics or rejection reasons; no credentials in the repository.

A real worker process runs with JSON logs at DEBUG level. Marker strings are planted in
every place a payload can hide (input, prediction, metadata, the reviewers' answers, bad
field values); reviewer identities (workerId, Cognito ``sub``) are read back from the
output.json files A2I wrote. None of them may appear in the log file or in /metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from reliability_support import (
    ResultsCollector,
    make_requests,
    new_process,
    send_all,
    worker_env,
)

from a2i_emulator.control import EmulatorControl
from a2i_worker.aws import AwsClients
from a2i_worker.local.endpoints import StackEndpoints
from a2i_worker.naming import loop_name

REPO = Path(__file__).resolve().parents[2]
INPUT = "MRKINPUT7731"
PREDICTION = "MRKPRED7732"
METADATA = "MRKMETA7733"
ANSWER = "MRKANSWER7734"
BAD_VALUE = "MRKBADVALUE7735"


def _requests() -> tuple[list[str], set[str], set[str]]:
    bodies, expected = make_requests(24, prefix="sec", seed=9)
    planted: list[str] = []
    for text in bodies:
        doc = json.loads(text)
        doc["input"]["secret"] = f"{INPUT}-{doc['request_id']}"
        doc["prediction"]["label"] = f"{PREDICTION}"
        doc["metadata"] = {"trace": METADATA, "nested": {"k": [METADATA]}}
        planted.append(json.dumps(doc))
    bad = [
        # Valid request_id, bad values that hold markers: the reasons must not echo them.
        {"request_id": "sec-bad-1", "route": "main", "input": {"a": 1}, "predicton": BAD_VALUE},
        {"request_id": "sec-bad-2", "route": "main", "input": {"a": 1}, "metadata": [BAD_VALUE]},
        {"request_id": "sec-bad-3", "route": BAD_VALUE + " /x", "input": {"a": BAD_VALUE}},
        {"request_id": "sec-bad-4", "route": "main", "input": BAD_VALUE},
        {"request_id": BAD_VALUE + "\n", "route": "main", "input": {"a": 1}},
    ]
    planted.extend(json.dumps(b) for b in bad)
    return planted, set(expected.request_ids), set(expected.activated)


async def _identities(aws: AwsClients, env: StackEndpoints) -> set[str]:
    """workerId and Cognito sub of every answer in every output.json A2I wrote."""
    found: set[str] = set()
    paginator = aws.s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=env.output_bucket):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("output.json"):
                continue
            got = await aws.s3.get_object(Bucket=env.output_bucket, Key=obj["Key"])
            async with got["Body"] as stream:
                doc: dict[str, Any] = json.loads(await stream.read())
            for answer in doc.get("humanAnswers", []):
                found.add(answer["workerId"])
                found.add(answer["workerMetadata"]["identityData"]["sub"])
    return found


async def test_no_payload_or_identity_in_logs_metrics_or_reasons(
    env: StackEndpoints,
    emulator: EmulatorControl,
    aws: AwsClients,
    tmp_path: Path,
) -> None:
    await emulator.put_reviewers(
        {
            "mode": "auto",
            "delay": {"distribution": "uniform", "low": 0.1, "high": 0.5},
            "outcomes": {"Completed": 1.0},
            "answers": {"template": {"label": "cat", "note": ANSWER}, "workers": 2},
        }
    )
    bodies, ids, activated = _requests()
    environ = worker_env(env, tmp_path, log_level="DEBUG")
    log_path = tmp_path / "worker.log"
    results = ResultsCollector(aws, env.results_queue_url)
    worker = new_process(environ, log_path, "security")
    worker.start()
    try:
        await worker.wait_ready(60)
        await send_all(aws, env.requests_queue_url, bodies)
        await results.wait_for(ids | {"sec-bad-1", "sec-bad-2", "sec-bad-3", "sec-bad-4"}, 60)
        metrics = await worker.metrics_text()
        worker.terminate()
        assert await worker.wait_exit(15) == 0
    finally:
        worker.close()

    identities = await _identities(aws, env)
    assert len(identities) >= 2 * len(activated), "two reviewers per completed loop"
    log = log_path.read_text(encoding="utf-8")
    markers = {INPUT, PREDICTION, METADATA, ANSWER, BAD_VALUE} | identities
    for marker in sorted(markers):
        assert marker not in log, f"{marker!r} leaked into the log"
        assert marker not in metrics, f"{marker!r} leaked into /metrics"
    # The answers really reached the results (so the markers were really there to leak).
    completed = [d for d in results.deliveries if d["outcome"] == "completed"]
    assert completed
    assert ANSWER in json.dumps(completed[0]["human_answers"])
    rejected = [d for d in results.deliveries if d["outcome"] == "rejected"]
    assert len(rejected) >= 5
    for r in rejected:
        assert BAD_VALUE not in (r["reason"] or ""), r
    # And the log is useful: request ids and loop names on its lines.
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    assert len(lines) > 50
    logged_ids = {x.get("request_id") for x in lines}
    logged_loops = {x.get("loop_name") for x in lines}
    assert ids <= logged_ids
    assert {loop_name(env.flow_definition_arn, r, 1) for r in activated} <= logged_loops


AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b")
SECRET_ASSIGNMENT = re.compile(
    r"(?i)(aws_secret_access_key|secret_?access_?key|aws_session_token)"
    r"[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{16,})"
)
#: AWS's documented example credentials are not secrets.
DOCUMENTED_EXAMPLES = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


def test_no_credentials_in_tracked_files() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    assert len(files) > 50
    findings: list[str] = []
    for name in filter(None, files):
        path = REPO / name.decode()
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        for m in AWS_KEY_ID.finditer(text):
            if m.group(0) not in DOCUMENTED_EXAMPLES:
                findings.append(f"{name.decode()}: access key id {m.group(0)[:8]}…")
        for m in SECRET_ASSIGNMENT.finditer(text):
            value = m.group(2)
            if value.lower() != "testing" and value not in DOCUMENTED_EXAMPLES:
                findings.append(f"{name.decode()}: {m.group(1)} = {value[:4]}…")
    assert not findings, findings
