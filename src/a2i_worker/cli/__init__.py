"""The ``a2i-worker`` command line (typer).

``run`` (the container's entrypoint), ``local`` (embedded stack, optionally with the
demo workload), ``enqueue`` (JSONL → requests queue), ``rules check`` / ``rules
simulate``, ``loops status|stop|list``, ``requests show``, ``dlq inspect|redrive``,
``ledger create-table``, ``report`` (agreement and budgets), ``--version``.

Every command fails with one ``error:`` line on stderr and exit status 2 on misuse
(a missing file, no region, no ledger configured, a bad range), never a traceback;
machine output (``--json``) goes to stdout, logs to stderr. The modules: ``_app`` (the
typer apps), ``_common`` (settings, the ledger, errors), ``_run`` (run, local, enqueue),
``_rules``, ``_loops`` (loops and requests), ``_ops`` (dlq, ledger, report).
"""

from __future__ import annotations

import importlib

from a2i_worker.cli._app import app
from a2i_worker.cli._run import SECOND_SIGNAL_GRACE, startup_problems

__all__ = ["SECOND_SIGNAL_GRACE", "app", "main", "startup_problems"]

# Each module registers its commands; this order is the order of the commands in --help.
for _module in ("_run", "_rules", "_loops", "_ops"):
    importlib.import_module(f"a2i_worker.cli.{_module}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
