"""The embedded local stack: moto server (keep-alive) + A2I emulator + provisioning.

``LocalStack`` starts both servers on 127.0.0.1; ``await stack.provision(prefix)``
creates one isolated environment and returns its :class:`StackEndpoints`, whose
``env()`` configures a worker process.

Names are imported lazily, so ``python -m a2i_worker.local.moto_server`` starts
without importing the emulator (and without runpy's double-import warning).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from a2i_worker.local.endpoints import StackEndpoints
    from a2i_worker.local.moto_patches import MotoPatchError, apply_moto_patches
    from a2i_worker.local.moto_server import MotoServer
    from a2i_worker.local.provision import provision_dynamodb_ledger
    from a2i_worker.local.stack import LocalStack, MotoSubprocess, run_stack_forever

__all__ = [
    "LocalStack",
    "MotoPatchError",
    "MotoServer",
    "MotoSubprocess",
    "StackEndpoints",
    "apply_moto_patches",
    "provision_dynamodb_ledger",
    "run_stack_forever",
]

_WHERE = {
    "StackEndpoints": "endpoints",
    "MotoPatchError": "moto_patches",
    "apply_moto_patches": "moto_patches",
    "MotoServer": "moto_server",
    "provision_dynamodb_ledger": "provision",
    "LocalStack": "stack",
    "MotoSubprocess": "stack",
    "run_stack_forever": "stack",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
