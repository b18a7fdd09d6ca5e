"""KEDA's objects, as rendered, follow the KEDA v2 spec and read the worker's own environment.

kubernetes-validate has no schemas for KEDA's CRDs, so ScaledObject and
TriggerAuthentication are checked against the KEDA v2 fields (keda.sh/v1alpha1; the
aws-sqs-queue scaler, ``queueURLFromEnv``, and ``awsRegion`` from a TriggerAuthentication
``env`` entry, which KEDA reads since 2.17) by hand, and the HPA ``behavior`` they embed is
validated by wrapping it in a real autoscaling/v2 HorizontalPodAutoscaler.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from .kustomize import render

DOCS = render()

SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
SQS_METADATA = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "identityOwner",
    "scaleOnInFlight",
    "scaleOnDelayed",
}
TRIGGER_AUTH_SPEC = {"podIdentity", "env", "secretTargetRef", "configMapTargetRef"}


def _one(kind: str) -> dict[str, Any]:
    (found,) = [d for d in DOCS if d["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def container() -> dict[str, Any]:
    (only,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as KEDA resolves it (env, then envFrom ConfigMaps)."""
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        name = ref["configMapRef"]["name"]
        (cm,) = [d for d in DOCS if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
        env.update(cm["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def test_scaled_object_follows_the_keda_v2_spec() -> None:
    scaled = _one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": _one("Deployment")["metadata"]["name"],
    }
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert set(spec["fallback"]) <= {"failureThreshold", "replicas", "behavior"}
    assert set(spec["advanced"]) <= {
        "restoreToOriginalReplicaCount",
        "horizontalPodAutoscalerConfig",
        "scalingModifiers",
    }
    hpa_config = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert set(hpa_config) <= {"name", "behavior"}
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-check"},
        "spec": {
            "scaleTargetRef": spec["scaleTargetRef"],
            "minReplicas": spec["minReplicaCount"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": hpa_config["behavior"],
        },
    }
    kubernetes_validate.validate(hpa, kubernetes_validate.latest_version(), strict=True)


def test_sqs_trigger_reads_the_queue_from_the_container_environment(
    environment: dict[str, str],
) -> None:
    (trigger,) = _one("ScaledObject")["spec"]["triggers"]
    assert set(trigger) <= TRIGGER_FIELDS
    assert trigger["type"] == "aws-sqs-queue"
    metadata = trigger["metadata"]
    assert set(metadata) <= SQS_METADATA
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata is string->string"
    # One place for the queue and the region: the worker's environment.
    assert "queueURL" not in metadata
    assert "awsRegion" not in metadata
    assert metadata["queueURLFromEnv"] == "A2I_WORKER_REQUESTS_QUEUE_URL"
    assert environment[metadata["queueURLFromEnv"]].startswith("https://sqs.")
    assert int(metadata["queueLength"]) >= 1
    # Visible + in flight: the same signal as the ECS scaling policy.
    assert metadata["scaleOnInFlight"] == "true"
    assert "identityOwner" not in metadata, "deprecated since KEDA 2.13: use podIdentity"
    auth = _one("TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_trigger_authentication_uses_the_workload_identity_and_the_container_region(
    container: dict[str, Any], environment: dict[str, str]
) -> None:
    auth = _one("TriggerAuthentication")
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    assert set(auth["spec"]) <= TRIGGER_AUTH_SPEC
    identity = auth["spec"]["podIdentity"]
    assert set(identity) <= {"provider", "roleArn", "identityOwner"}
    assert identity["provider"] == "aws"
    assert identity.get("identityOwner") in {"keda", "workload"}
    assert not {"roleArn", "identityOwner"} <= set(identity), "mutually exclusive"
    (region,) = auth["spec"]["env"]
    assert set(region) <= {"parameter", "name", "containerName"}
    assert region["parameter"] == "awsRegion"
    assert region["containerName"] == container["name"]
    value = environment[region["name"]]
    assert re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", value)
    queue = environment["A2I_WORKER_REQUESTS_QUEUE_URL"]
    assert f".{value}." in queue, "the queue is in the region KEDA asks"
