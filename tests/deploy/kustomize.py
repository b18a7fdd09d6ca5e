"""Rendering deploy/kubernetes with the real kustomize, as ``kubectl apply -k`` would.

The manifests are only correct once rendered: kustomize generates the two ConfigMaps
(with content-hash names), rewrites the Deployment's references to them, and copies the
health port into the container port. So the tests read kustomize's output, not the files.

kustomize v5 is needed: ``kustomize build`` if a ``kustomize`` binary is on PATH, else
``kubectl kustomize`` (kubectl >= 1.27 embeds kustomize v5; the project's machines have it
from the ``kubectl`` Debian package of the Kubernetes/Google Cloud apt repository).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps

__all__ = ["K8S", "kustomize_command", "read_env_file", "render"]

K8S = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
_MIN_KUSTOMIZE_MAJOR = 5


def kustomize_command(directory: Path) -> list[str]:
    """The command that renders ``directory``; AssertionError naming what to install."""
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(directory)]
    kubectl = shutil.which("kubectl")
    assert kubectl, (
        "rendering deploy/kubernetes needs kustomize v5: install kubectl >= 1.27 "
        "(apt-get install kubectl) or a kustomize binary"
    )
    version = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    embedded = str(json.loads(version.stdout).get("kustomizeVersion", "v0"))
    major = int(embedded.lstrip("v").split(".")[0] or 0)
    assert major >= _MIN_KUSTOMIZE_MAJOR, f"kubectl embeds kustomize {embedded}; need v5"
    return [kubectl, "kustomize", str(directory)]


def render(directory: Path = K8S) -> list[dict[str, Any]]:
    """Every object ``kubectl apply -k directory`` would apply, in kustomize's order."""
    done = subprocess.run(
        kustomize_command(directory), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as kustomize's ``envs`` reads them (``#`` lines are comments)."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        env[key] = value
    return env
