"""The README's shell examples run as written.

Every ```sh block of the README is either executed here, from the repository root with
bash, exactly as printed, or listed in :data:`NOT_RUN` with the reason. The local
development block needs ``a2i-worker local`` running in another shell and the path it
printed: the test starts it (ports 0: the stack binds 127.0.0.1 on free ports), reads the
path from its output and puts it in place of the README's ``/tmp/a2i-worker-local-XXXX``,
which is the one substitution the README asks the reader to make.
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
    "15 s run of the same local stack the local-development block below starts",
}
PLACEHOLDER = "/tmp/a2i-worker-local-XXXX"
_ENV_FILE = re.compile(r"(\S*a2i-worker-local-[^/\s]+)/local\.env")


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
    run = [_block("rules check"), _block(PLACEHOLDER)]
    exempt = [b for b in SH_BLOCKS if any(m in b for m in NOT_RUN)]
    assert sorted(run + exempt) == sorted(SH_BLOCKS)
    assert (REPO / ".venv" / "bin" / "a2i-worker").exists(), "run via `make test` (.venv)"


def test_rules_check_block() -> None:
    done = _bash(_block("rules check"))
    assert done.returncode == 0, done.stderr
    assert "config/rules/invoices.json: valid" in done.stdout
    assert "decision: REVIEW" in done.stdout
    assert "[HOLDS] Conditions[0] ConfidenceCheck: value 0.61 at 'confidence' < 0.7" in done.stdout


async def _env_file_path(process: Process) -> str:
    assert process.stdout is not None
    seen = ""
    with anyio.fail_after(90):
        async for chunk in process.stdout:
            seen += chunk.decode(errors="replace")
            found = _ENV_FILE.search(seen)
            if found and "Ctrl-C to stop" in seen:
                return found[1]
    raise AssertionError(f"`a2i-worker local` ended before printing its env file:\n{seen}")


async def _stop(process: Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(60):
            await process.wait()


@pytest.mark.timeout(240)
async def test_local_development_block(tmp_path: Path) -> None:
    block = _block(PLACEHOLDER)
    env = _clean_env()
    env["TMPDIR"] = str(tmp_path)  # the workdir `local` makes lands here and is cleaned up
    process = await anyio.open_process(
        [str(REPO / ".venv" / "bin" / "a2i-worker"), "local"],
        cwd=REPO,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        workdir = await _env_file_path(process)
        assert workdir.startswith(str(tmp_path))
        done = await anyio.to_thread.run_sync(
            lambda: _bash(block.replace(PLACEHOLDER, workdir), timeout=120)
        )
        assert done.returncode == 0, done.stderr
        assert '"sent": 1' in done.stdout
        assert '"request_id": "r-1"' in done.stdout
    finally:
        await _stop(process)
    assert process.returncode == 0
