"""The README's shell examples run as written.

Every ```sh block of the README is either executed here, from the repository root with
bash, exactly as printed, or listed in :data:`NOT_RUN` with the reason. The local
development blocks are the README's "shell 1", "shell 2" and "a third shell": the test
runs them as three processes, with one substitution: the env file the README puts at
``/tmp/stack-a.env`` goes to the test's own temporary directory (so concurrent runs do
not share a stack). The stack binds 127.0.0.1 on free ports.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
SH_BLOCKS = [
    m["body"] for m in re.finditer(r"^```sh\n(?P<body>.*?)^```", README, re.MULTILINE | re.DOTALL)
]
NOT_RUN = {
    "make demo": "`make test` runs this test suite (it would run itself); `make demo` is a "
    "15 s run of the local stack the local-development blocks start",
    "aws sagemaker list-flow-definitions": "needs the stack on the fixed ports 5000/5001; "
    "tests/clients/test_aws_cli.py makes the same AWS CLI calls against a stack on free ports",
}
ENV_FILE = "/tmp/stack-a.env"


def _block(marker: str) -> str:
    (found,) = [b for b in SH_BLOCKS if marker in b]
    return found


def _clean_env() -> dict[str, str]:
    """The test's environment without AWS or worker settings (as a fresh shell has)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "A2I_WORKER_"))}
    env["COLUMNS"] = "250"  # rich wraps long lines at 80 columns off a terminal
    return env


def _bash(script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_sh_block_is_run_or_exempted_with_a_reason() -> None:
    run = [_block("rules check"), _block("--no-worker --env-file"), _block(f"set -a; . {ENV_FILE}")]
    exempt = [b for b in SH_BLOCKS if any(m in b for m in NOT_RUN)]
    assert sorted(run + exempt) == sorted(SH_BLOCKS)
    assert (REPO / ".venv" / "bin" / "a2i-worker").exists(), "run via `make test` (.venv)"


def test_rules_check_block() -> None:
    done = _bash(_block("rules check"))
    assert done.returncode == 0, done.stderr
    assert "config/rules/invoices.json: valid" in done.stdout
    assert "decision: REVIEW" in done.stdout
    assert "[HOLDS] Conditions[0] ConfidenceCheck: value 0.61 at 'confidence' < 0.7" in done.stdout


async def _start(command: str) -> Process:
    """One README line as its own shell's foreground program: bash runs a single simple
    command in its own process (no fork), so the signals sent to it reach the program."""
    return await anyio.open_process(
        ["bash", "-c", command], cwd=REPO, env=_clean_env(), stderr=subprocess.DEVNULL
    )


async def _wait_for_output(process: Process, text: str) -> None:
    assert process.stdout is not None
    seen = ""
    with anyio.fail_after(90):
        async for chunk in process.stdout:
            seen += chunk.decode(errors="replace")
            if text in seen:
                return
    raise AssertionError(f"ended before printing {text!r}:\n{seen}")


async def _stop(process: Process, sig: signal.Signals) -> int | None:
    if process.returncode is None:
        process.send_signal(sig)
        with anyio.fail_after(60):
            await process.wait()
    return process.returncode


@pytest.mark.timeout(240)
async def test_local_development_blocks(tmp_path: Path) -> None:
    env_file = str(tmp_path / "stack-a.env")
    shell_1, shell_2 = (
        line.split("#")[0].strip().replace(ENV_FILE, env_file)
        for line in _block("--no-worker --env-file").strip().splitlines()
    )
    third_shell = _block(f"set -a; . {ENV_FILE}").replace(ENV_FILE, env_file)
    stack = await _start(shell_1)
    worker: Process | None = None
    try:
        await _wait_for_output(stack, "Ctrl-C to stop")
        assert await anyio.Path(env_file).is_file()
        worker = await _start(shell_2)
        done = await anyio.to_thread.run_sync(lambda: _bash(third_shell, timeout=120))
        assert done.returncode == 0, done.stderr
        assert '"sent": 1' in done.stdout
        assert '"request_id": "r-1"' in done.stdout
    finally:
        if worker is not None:
            assert await _stop(worker, signal.SIGTERM) == 0, "the worker drains and exits 0"
        assert await _stop(stack, signal.SIGINT) == 0
