"""The AWS CLI as the suite drives it: its own entry point, in-process, one driver per call.

Every call is recorded in :data:`SEEN` as ``"<Operation>:OK"`` or ``"<Operation>:<Code>"``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import urllib.request
from dataclasses import dataclass
from typing import Any

from awscli.clidriver import create_clidriver

from ._support import ClientEmulator

__all__ = [
    "ACCOUNT",
    "ISO_MS",
    "REGION",
    "SEEN",
    "Answer",
    "aws",
    "control",
    "fails",
    "flow_args",
    "ok",
    "start",
    "start_args",
]

ACCOUNT, REGION = "123456789012", "us-east-1"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_ERROR = re.compile(r"An error occurred \((\w+)\) when calling the (\w+) operation")
SEEN: set[str] = set()


@dataclass
class Answer:
    rc: int
    out: Any
    err: str


def _operation(args: tuple[str, ...]) -> str:
    words = args[1].split("-")
    return "".join(w.capitalize() for w in words)


def aws(emu: ClientEmulator, *args: str) -> Answer:
    """``aws <args> --endpoint-url <emulator>``; records ``Operation:OK|Code``."""
    out, err = io.StringIO(), io.StringIO()
    argv = [*args, "--endpoint-url", emu.url, "--region", REGION, "--output", "json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = create_clidriver().main(argv)
    text = out.getvalue()
    answer = Answer(rc, json.loads(text) if text.strip() else None, err.getvalue())
    match = _ERROR.search(answer.err)
    if rc == 0:
        SEEN.add(f"{_operation(args)}:OK")
    elif match:
        SEEN.add(f"{match.group(2)}:{match.group(1)}")
    return answer


def ok(emu: ClientEmulator, *args: str) -> Any:
    answer = aws(emu, *args)
    assert answer.rc == 0, answer.err
    return answer.out


def fails(emu: ClientEmulator, code: str, *args: str) -> str:
    answer = aws(emu, *args)
    match = _ERROR.search(answer.err)
    assert answer.rc != 0, f"expected {code}, got success: {answer.out}"
    assert match, f"expected {code}, got rc={answer.rc}: {answer.err}"
    assert match.group(1) == code, answer.err
    return answer.err


def control(emu: ClientEmulator, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{emu.url}/_emulator{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def flow_args(name: str, ui_arn: str, output: str) -> tuple[str, ...]:
    config = {
        "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/cli",
        "HumanTaskUiArn": ui_arn,
        "TaskTitle": "Check an invoice",
        "TaskDescription": "Is the total right?",
        "TaskCount": 1,
    }
    return (
        "sagemaker",
        "create-flow-definition",
        "--flow-definition-name",
        name,
        "--role-arn",
        f"arn:aws:iam::{ACCOUNT}:role/a2i-cli",
        "--output-config",
        json.dumps({"S3OutputPath": output}),
        "--human-loop-config",
        json.dumps(config),
    )


def start(emu: ClientEmulator, name: str, flow_arn: str, n: int = 0) -> Answer:
    return aws(
        emu,
        "sagemaker-a2i-runtime",
        "start-human-loop",
        "--human-loop-name",
        name,
        "--flow-definition-arn",
        flow_arn,
        "--human-loop-input",
        json.dumps({"InputContent": json.dumps({"invoice": n})}),
    )


def start_args(name: str, flow: str, n: int = 0) -> tuple[str, ...]:
    return (
        "sagemaker-a2i-runtime",
        "start-human-loop",
        "--human-loop-name",
        name,
        "--flow-definition-arn",
        flow,
        "--human-loop-input",
        json.dumps({"InputContent": json.dumps({"invoice": n})}),
    )
