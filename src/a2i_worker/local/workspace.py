"""The files of one running local stack: its routes, its ledger, and an env file for workers.

``a2i-worker local`` writes them into a fresh directory, so that ``a2i-worker run`` in
another shell joins *this* stack with one line::

    A2I_WORKER_ENV_FILE=<dir>/local.env a2i-worker run

The env file holds every variable a worker needs: AWS credentials, region and endpoints
(moto; the emulator for A2I runtime and SageMaker), the queue URLs, the routes file (whose
flow definitions exist on the stack), the ledger and a health port chosen free when the
file was written. Two stacks on one machine therefore share no port, queue or ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from a2i_worker.local.endpoints import StackEndpoints

__all__ = ["LOCAL_RULES", "Workspace", "routes_toml", "write_workspace"]

LOCAL_RULES: Final[dict[str, Any]] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.80},
        },
        {"ConditionType": "MissingField", "ConditionParameters": {"Path": "predicted_total"}},
        {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 5}},
    ]
}
"""The ``invoices`` route's rules on the local stack (config/local-routes.toml has the same)."""


def routes_toml(flow_definition_arn: str, rules_file: str = "local-rules.json") -> str:
    """The local routes file: route ``invoices`` on the stack's flow definition."""
    return "\n".join(
        [
            "# Routes of the local stack (`a2i-worker local`): its flow definition exists there.",
            "[routes.invoices]",
            f'flow_definition_arn = "{flow_definition_arn}"',
            f'rules = "{rules_file}"',
            "",
            "[routes.invoices.agreement]",
            'model = "predicted_total"',
            'human = "total"',
            "tolerance = 0.01",
            "",
        ]
    )


@dataclass(frozen=True)
class Workspace:
    directory: Path
    routes_file: Path
    env_file: Path
    ledger_url: str
    health_port: int

    def env(self, endpoints: StackEndpoints) -> dict[str, str]:
        """Everything a worker process on this stack needs."""
        return {
            **endpoints.env(),
            "A2I_WORKER_ROUTES_FILE": str(self.routes_file),
            "A2I_WORKER_LEDGER_URL": self.ledger_url,
            "A2I_WORKER_HEALTH_HOST": "127.0.0.1",
            "A2I_WORKER_HEALTH_PORT": str(self.health_port),
            # faster reconciliation than production defaults, for local work
            "A2I_WORKER_RECEIVE_WAIT_SECONDS": "5",
            "A2I_WORKER_SWEEP_INTERVAL_SECONDS": "10",
            "A2I_WORKER_OVERDUE_AFTER_SECONDS": "60",
            "A2I_WORKER_SHUTDOWN_GRACE_SECONDS": "10",
        }


def write_workspace(
    directory: Path, endpoints: StackEndpoints, *, health_port: int, env_file: Path | None = None
) -> Workspace:
    """Write rules, routes and the env file into ``directory`` (``env_file``: elsewhere)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "local-rules.json").write_text(json.dumps(LOCAL_RULES, indent=2) + "\n")
    routes = directory / "routes.toml"
    routes.write_text(routes_toml(endpoints.flow_definition_arn), encoding="utf-8")
    ledger_url = f"sqlite:///{(directory / 'ledger.db').resolve()}"
    target = env_file or directory / "local.env"
    space = Workspace(directory, routes, target, ledger_url, health_port)
    lines = [
        "# Written by `a2i-worker local` for the stack it runs; valid while that stack runs.",
        f"# Join it with: A2I_WORKER_ENV_FILE={target} a2i-worker run",
        *(f"{k}={v}" for k, v in sorted(space.env(endpoints).items())),
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return space
