"""The Kubernetes manifests validate against the Kubernetes schemas and agree with each other.

kubernetes-validate ships the upstream OpenAPI schemas (no network). KEDA's CRDs are not
among them, so ScaledObject and TriggerAuthentication are checked against the KEDA v2
fields (keda.sh/v1alpha1; the aws-sqs-queue scaler and the ``aws`` pod identity provider,
KEDA >= 2.13) by hand, and the HPA ``behavior`` they embed is validated by wrapping it in a
real autoscaling/v2 HorizontalPodAutoscaler.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps

from .dockerfile import read_dockerfile

K8S = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSIONS = ["1.29", "1.33", kubernetes_validate.latest_version()]
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                docs.append((path.name, doc))
    return docs


DOCS = _documents()


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [
        d for _, d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    return found


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return _one("Deployment")


@pytest.fixture(scope="module")
def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return only  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def config() -> dict[str, str]:
    return _one("ConfigMap", "a2i-worker")["data"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("name", "doc"),
    [(n, d) for n, d in DOCS if d["kind"] not in KEDA_KINDS],
    ids=lambda v: v if isinstance(v, str) else v["kind"],
)
def test_manifest_is_valid_kubernetes(version: str, name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_validation_rejects_an_unknown_field(deployment: dict[str, Any]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_once() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert len(set(kustomization["resources"])) == len(kustomization["resources"])
    namespaced = [d for _, d in DOCS if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {kustomization["namespace"]}


def test_pod_security(pod: dict[str, Any], container: dict[str, Any], repo: Path) -> None:
    image_user = read_dockerfile(repo / "Dockerfile").final.last("USER")
    assert image_user is not None
    uid = int(image_user.raw.split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == uid
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs writable emptyDirs for /tmp and the ledger/working dir.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/tmp", "/var/lib/a2i-worker"):
        assert "emptyDir" in volumes[mounts[path]]
    assert _one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )


def test_resources_are_bounded(container: dict[str, Any]) -> None:
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_termination_grace_exceeds_the_drain_grace(
    pod: dict[str, Any], config: dict[str, str]
) -> None:
    grace = float(config["A2I_WORKER_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > grace + 10


def _port(container: dict[str, Any], ref: int | str) -> int:
    if isinstance(ref, int):
        return ref
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == ref]
    return int(number)


def test_probes_hit_the_health_endpoints_on_8080(container: dict[str, Any]) -> None:
    live = container["livenessProbe"]["httpGet"]
    ready = container["readinessProbe"]["httpGet"]
    assert live["path"] == "/livez"
    assert ready["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    for probe in (live, ready, container["startupProbe"]["httpGet"]):
        assert _port(container, probe["port"]) == 8080


def test_service_and_pdb_select_the_pods(
    deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert _port(container, port["targetPort"]) == 8080
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_irsa_service_account(pod: dict[str, Any], container: dict[str, Any]) -> None:
    account = _one("ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role)
    assert container["envFrom"] == [{"configMapRef": {"name": "a2i-worker"}}]


def test_config_uses_the_dynamodb_ledger_for_many_replicas(config: dict[str, str]) -> None:
    assert config["A2I_WORKER_LEDGER_URL"].startswith("dynamodb://")
    assert _one("ScaledObject")["spec"]["maxReplicaCount"] > 1


def test_config_and_ecs_task_set_the_same_worker_settings(config: dict[str, str]) -> None:
    from .cfn import load_template

    (task_container,) = load_template()["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    ecs = {e["Name"] for e in task_container["Environment"]}
    assert {n for n in config if n.startswith("A2I_WORKER_")} == {
        n for n in ecs if n.startswith("A2I_WORKER_")
    }


# --------------------------------------------------------------------------- KEDA

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


def test_scaled_object_follows_the_keda_v2_spec(deployment: dict[str, Any]) -> None:
    scaled = _one("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= SCALED_OBJECT_SPEC
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
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
    kubernetes_validate.validate(hpa, VERSIONS[-1], strict=True)


def test_sqs_trigger_scales_on_the_requests_queue(config: dict[str, str]) -> None:
    (trigger,) = _one("ScaledObject")["spec"]["triggers"]
    assert set(trigger) <= TRIGGER_FIELDS
    assert trigger["type"] == "aws-sqs-queue"
    metadata = trigger["metadata"]
    assert set(metadata) <= SQS_METADATA
    assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata is string->string"
    assert metadata["queueURL"] == config["A2I_WORKER_REQUESTS_QUEUE_URL"]
    assert metadata["awsRegion"] == config["AWS_REGION"]
    assert f".{metadata['awsRegion']}." in metadata["queueURL"]
    assert int(metadata["queueLength"]) >= 1
    assert "identityOwner" not in metadata, "deprecated since KEDA 2.13: use podIdentity"
    auth = _one("TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_trigger_authentication_uses_the_workload_identity() -> None:
    auth = _one("TriggerAuthentication")
    assert auth["apiVersion"] == "keda.sh/v1alpha1"
    identity = auth["spec"]["podIdentity"]
    assert set(identity) <= {"provider", "roleArn", "identityOwner"}
    assert identity["provider"] == "aws"
    assert identity.get("identityOwner") in {"keda", "workload"}
    assert not {"roleArn", "identityOwner"} <= set(identity), "mutually exclusive"


def test_routes_configmap_is_a_valid_routes_file_mounted_where_the_setting_points(
    tmp_path: Path, pod: dict[str, Any], container: dict[str, Any], config: dict[str, str]
) -> None:
    from a2i_worker.routes import load_routes

    routes_cm = _one("ConfigMap", "a2i-worker-routes")
    for key, text in routes_cm["data"].items():
        (tmp_path / key).write_text(text, encoding="utf-8")
    routes = load_routes(tmp_path / "routes.toml")  # raises ConfigError if invalid
    assert routes
    (volume,) = [
        v
        for v in pod["volumes"]
        if v.get("configMap", {}).get("name") == routes_cm["metadata"]["name"]
    ]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert config["A2I_WORKER_ROUTES_FILE"] == f"{mount['mountPath']}/routes.toml"
