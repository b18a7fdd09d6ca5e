"""``a2i-emulator serve`` in its own process: prints its URL, serves, stops on SIGTERM."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request


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
        assert set(counters["operations"]) == {
            "StartHumanLoop",
            "DescribeHumanLoop",
            "DeleteHumanLoop",
            "StopHumanLoop",
            "ListHumanLoops",
        }
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
