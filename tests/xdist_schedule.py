"""How ``make test`` spreads the suite over its pytest-xdist workers (``--dist loadgroup``).

A work unit is a test file, as with ``--dist loadfile``: the tests of one module run on one
worker, in file order (``tests/clients/test_aws_cli.py``'s last test judges what the others
recorded; module-scoped fixtures are built once). The exception is :data:`SERIAL`: tests
that run ``a2i-worker run`` processes, or a heavily loaded in-process worker, and assert on
timing (exit within the grace, ready again within seconds). They form one unit, so they run
one after another on one worker and never compete with each other for the two cores, while
the other worker runs the rest. With ``--no-loadscope-reorder`` units go out in collection
order, so this long unit (its first test is in ``tests/bench``) starts first.

Why not pytest-xdist's own ``xdist_group`` marker: it renames ``Node._nodeid``, which
pytest 9 no longer reads, so the marker has no effect (pytest-xdist 3.8.0, pytest 9.2.0).
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["SERIAL", "SERIAL_UNIT", "make_scheduler", "scope_of"]

SERIAL_UNIT = "worker-processes"

#: Test files (every test in them) and single tests (``file::test``, all parameters).
SERIAL: tuple[str, ...] = (
    "tests/bench/test_bench_regression.py",
    "tests/integration/test_local_workspace.py::test_two_stacks_and_their_workers_side_by_side",
    "tests/integration/test_operations.py::test_sigterm_drains_reports_draining_and_exits_0",
    "tests/integration/test_operations.py::test_second_signal_exits_at_once_with_128_plus_signal",
    "tests/integration/test_replicas.py",
    "tests/reliability/test_a2i_faults.py",
    "tests/reliability/test_crash_recovery.py",
    "tests/reliability/test_dependency_outage.py",
    "tests/reliability/test_event_faults_chaos.py",
    "tests/reliability/test_receive_window_crash.py",
    "tests/reliability/test_security.py",
    "tests/reliability/test_shutdown.py",
)


def scope_of(nodeid: str) -> str:
    """The work unit of a test: :data:`SERIAL_UNIT` or its file."""
    path, _, rest = nodeid.partition("::")
    test = rest.split("[", 1)[0]
    if path in SERIAL or f"{path}::{test}" in SERIAL:
        return SERIAL_UNIT
    return path


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scope scheduler with :func:`scope_of` as the scope."""
    from xdist.scheduler import LoadScopeScheduling

    class FileOrSerialScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return FileOrSerialScheduling(config, log)
