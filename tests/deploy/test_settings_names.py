"""Every A2I_WORKER_* variable the deploy files set is a real setting with a valid value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from a2i_worker.settings import ENV_FILE_VARIABLE, ENV_PREFIX, Settings
from a2i_worker.settings_doc import unknown_environment_variables

from .cfn import load_template
from .dockerfile import read_dockerfile
from .kustomize import K8S, read_env_file

REPO = Path(__file__).resolve().parents[2]


def _configmap() -> dict[str, str]:
    return read_env_file(K8S / "worker.env")


def _ecs_environment() -> dict[str, Any]:
    containers = load_template()["Resources"]["TaskDefinition"]["Properties"][
        "ContainerDefinitions"
    ]
    (worker,) = [c for c in containers if c.get("Name") == "a2i-worker"]
    return {e["Name"]: e["Value"] for e in worker["Environment"]}


def _dockerfile_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in read_dockerfile(REPO / "Dockerfile").final.all("ENV"):
        for word in instruction.words():
            name, _, value = word.partition("=")
            env[name] = value
    return env


@pytest.mark.parametrize(
    "environ",
    [_configmap(), _ecs_environment(), _dockerfile_environment()],
    ids=["configmap", "ecs-task", "dockerfile"],
)
def test_every_worker_variable_is_a_setting(environ: dict[str, Any]) -> None:
    names = {k: "" for k in environ if k.startswith(ENV_PREFIX)}
    assert names
    assert unknown_environment_variables(names) == []


def test_detects_a_misspelled_variable() -> None:
    assert unknown_environment_variables({"A2I_WORKER_SHUTDOWN_GRACE": "1"}) == [
        "A2I_WORKER_SHUTDOWN_GRACE"
    ]


def _settings_from(environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)
    return Settings()


def test_configmap_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from(_configmap(), monkeypatch)
    assert settings.ledger_url.startswith("dynamodb://")
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == 8080
    assert settings.requests_queue_url == _configmap()["A2I_WORKER_REQUESTS_QUEUE_URL"]


def test_worker_env_is_also_a_dotenv_file_for_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file kustomize turns into the ConfigMap loads as A2I_WORKER_ENV_FILE too."""
    import os

    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(K8S / "worker.env"))
    settings = Settings()
    expected = _settings_from(_configmap(), monkeypatch)
    assert settings.model_dump(exclude={"env_file"}) == expected.model_dump(exclude={"env_file"})


def test_dockerfile_defaults_load(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_from(_dockerfile_environment(), monkeypatch)
    assert settings.health_host == "0.0.0.0"
    assert settings.health_port == 8080
    assert settings.ledger_url == "sqlite:////var/lib/a2i-worker/ledger.db"


def test_ecs_literal_values_load(monkeypatch: pytest.MonkeyPatch) -> None:
    literal = {k: v for k, v in _ecs_environment().items() if isinstance(v, str)}
    settings = _settings_from(literal, monkeypatch)
    assert settings.health_host == "0.0.0.0"
    assert _ecs_environment()["A2I_WORKER_HEALTH_PORT"] == {"Ref": "HealthPort"}


def test_ecs_delete_setting_follows_the_iam_parameter() -> None:
    env = _ecs_environment()
    assert env["A2I_WORKER_DELETE_FINISHED_LOOPS"] == {"Ref": "AllowDeleteFinishedLoops"}
    assert env["A2I_WORKER_VISIBILITY_TIMEOUT_SECONDS"] == {"Ref": "RequestsVisibilityTimeout"}
    grace = Settings.model_fields["heartbeat_interval_seconds"].default
    minimum = load_template()["Parameters"]["RequestsVisibilityTimeout"]["MinValue"]
    assert int(minimum) > grace
