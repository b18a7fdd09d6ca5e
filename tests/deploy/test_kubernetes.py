"""The rendered Kubernetes manifests are valid, roll on config changes, and agree with each other.

Everything here reads what ``kubectl apply -k deploy/kubernetes`` would apply: the
kustomization is rendered by the real kustomize (tests/deploy/kustomize.py) and every
object but KEDA's is validated against the upstream OpenAPI schemas that
kubernetes-validate ships (no network). KEDA's objects are checked in test_keda.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps

from .dockerfile import read_dockerfile
from .kustomize import K8S, read_env_file, render

VERSIONS = ["1.29", "1.33", kubernetes_validate.latest_version()]
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}


def _one(docs: list[dict[str, Any]], kind: str, prefix: str | None = None) -> dict[str, Any]:
    (found,) = [
        d
        for d in docs
        if d["kind"] == kind and (prefix is None or d["metadata"]["name"].startswith(prefix))
    ]
    return found


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(docs, "Deployment")


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (only,) = _deployment(docs)["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def _volume_config_maps(docs: list[dict[str, Any]]) -> dict[str, str]:
    pod = _deployment(docs)["spec"]["template"]["spec"]
    return {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}


DOCS = render()


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return DOCS


@pytest.fixture(scope="module")
def pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _deployment(docs)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return _container(docs)


@pytest.fixture(scope="module")
def config(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    (ref,) = container["envFrom"]
    name = ref["configMapRef"]["name"]
    (found,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
    return found["data"]  # type: ignore[no-any-return]


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "kubernetes"
    shutil.copytree(K8S, target)
    return target


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "doc",
    [d for d in DOCS if d["kind"] not in KEDA_KINDS],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_rendered_object_is_valid_kubernetes(version: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_validation_rejects_an_unknown_field(docs: list[dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(_deployment(docs)))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_the_deployment_leaves_the_replica_count_to_keda(docs: list[dict[str, Any]]) -> None:
    deployment = _deployment(docs)
    assert "replicas" not in deployment["spec"], "kubectl apply -k would reset KEDA's count"
    scaled = _one(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 1


def test_every_object_is_in_the_namespace_and_labelled(docs: list[dict[str, Any]]) -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == kustomization["namespace"], doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "a2i-worker"
    listed = set(kustomization["resources"])
    files = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == files, "every manifest file is listed once, and only those"


def test_config_maps_are_generated_with_content_hashes(
    docs: list[dict[str, Any]], container: dict[str, Any]
) -> None:
    names = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    env_name = container["envFrom"][0]["configMapRef"]["name"]
    routes_name = _volume_config_maps(docs)["routes"]
    assert {env_name, routes_name} == names
    assert env_name.startswith("a2i-worker-")
    assert env_name != "a2i-worker-routes"
    assert routes_name.startswith("a2i-worker-routes-")
    assert render() == docs, "rendering is deterministic"


def test_editing_the_routes_file_rolls_the_pods(tmp_path: Path, docs: list[dict[str, Any]]) -> None:
    copy = _copy(tmp_path)
    routes = copy / "routes" / "routes.toml"
    routes.write_text(routes.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    edited = render(copy)
    before, after = _volume_config_maps(docs)["routes"], _volume_config_maps(edited)["routes"]
    assert before != after, "the routes ConfigMap's name must follow its content"
    assert after in {d["metadata"]["name"] for d in edited if d["kind"] == "ConfigMap"}
    assert _deployment(edited)["spec"]["template"] != _deployment(docs)["spec"]["template"]
    # The worker's environment is untouched.
    assert _container(edited)["envFrom"] == _container(docs)["envFrom"]


def test_editing_a_setting_rolls_the_pods(tmp_path: Path, docs: list[dict[str, Any]]) -> None:
    copy = _copy(tmp_path)
    env = copy / "worker.env"
    text = env.read_text(encoding="utf-8")
    env.write_text(text.replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG"), encoding="utf-8")
    edited = render(copy)
    assert _container(edited)["envFrom"] != _container(docs)["envFrom"]
    assert _volume_config_maps(edited) == _volume_config_maps(docs)


def test_health_port_comes_from_the_worker_environment(
    tmp_path: Path, docs: list[dict[str, Any]], container: dict[str, Any], config: dict[str, str]
) -> None:
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    assert http["containerPort"] == int(config["A2I_WORKER_HEALTH_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", "probes name the port"
    copy = _copy(tmp_path)
    env = copy / "worker.env"
    text = env.read_text(encoding="utf-8")
    env.write_text(text.replace("HEALTH_PORT=8080", "HEALTH_PORT=9191"), encoding="utf-8")
    moved = render(copy)
    (http,) = [p for p in _container(moved)["ports"] if p["name"] == "http"]
    assert http["containerPort"] == 9191
    annotations = _one(moved, "Service")["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9191"
    kubernetes_validate.validate(_deployment(moved), VERSIONS[-1], strict=True)


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
    namespace = _one(DOCS, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_resources_are_bounded(container: dict[str, Any]) -> None:
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_termination_grace_exceeds_the_drain_grace(
    pod: dict[str, Any], config: dict[str, str]
) -> None:
    grace = float(config["A2I_WORKER_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > grace + 10


def test_probes_hit_the_health_endpoints(container: dict[str, Any]) -> None:
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"


def test_service_and_pdb_select_the_pods(docs: list[dict[str, Any]]) -> None:
    deployment = _deployment(docs)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_irsa_service_account(docs: list[dict[str, Any]], pod: dict[str, Any]) -> None:
    account = _one(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::")
    assert ":role/" in role


def test_config_is_the_worker_env_file(config: dict[str, str]) -> None:
    assert config == read_env_file(K8S / "worker.env")


def test_config_uses_the_dynamodb_ledger_for_many_replicas(
    docs: list[dict[str, Any]], config: dict[str, str]
) -> None:
    assert config["A2I_WORKER_LEDGER_URL"].startswith("dynamodb://")
    assert _one(docs, "ScaledObject")["spec"]["maxReplicaCount"] > 1


def test_config_and_ecs_task_set_the_same_worker_settings(config: dict[str, str]) -> None:
    from .cfn import load_template

    containers = load_template()["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    (worker,) = [c for c in containers if c.get("Name") == "a2i-worker"]
    ecs = {e["Name"] for e in worker["Environment"]}
    assert {n for n in config if n.startswith("A2I_WORKER_")} == {
        n for n in ecs if n.startswith("A2I_WORKER_")
    }


def test_routes_are_a_valid_routes_file_mounted_where_the_setting_points(
    tmp_path: Path,
    docs: list[dict[str, Any]],
    container: dict[str, Any],
    config: dict[str, str],
) -> None:
    from a2i_worker.routes import load_routes

    name = _volume_config_maps(docs)["routes"]
    (routes_cm,) = [d for d in docs if d["metadata"]["name"] == name]
    for key, text in routes_cm["data"].items():
        (tmp_path / key).write_text(text, encoding="utf-8")
    assert load_routes(tmp_path / "routes.toml")  # raises ConfigError if invalid
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "routes"]
    assert mount["readOnly"] is True
    assert config["A2I_WORKER_ROUTES_FILE"] == f"{mount['mountPath']}/routes.toml"
