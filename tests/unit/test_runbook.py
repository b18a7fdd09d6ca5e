"""The runbook in docs/operations.md names only metrics and commands that exist.

Its alerts are PromQL over the worker's metrics and its remedies are ``a2i-worker``
commands; a renamed metric or command would leave an alert that never fires or a step
that fails. The metrics it alerts on must also reach CloudWatch through the ECS
collector sidecar's selectors, or the same alarms cannot be set on ECS.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps

from a2i_worker import docgen

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = (REPO / "docs" / "operations.md").read_text(encoding="utf-8").split("## Runbook")[1]
#: Names in the runbook that start like metrics but are SQS message attributes.
MESSAGE_ATTRIBUTES = {"a2i_worker_rejection_code"}


def _exposed_metrics() -> set[str]:
    names = set()
    for row in docgen.metrics_table().splitlines()[2:]:
        names.add(row.split("`")[1])
    return names


def _collector_selectors() -> list[str]:
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(REPO / "deploy" / "cloudformation" / "a2i-worker.yaml"))
    containers = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    (sidecar,) = [c["Fn::If"][1] for c in containers if "Fn::If" in c]
    config = yaml.safe_load(str(sidecar["Environment"][0]["Value"]["Fn::Sub"]))
    declarations = config["exporters"]["awsemf"]["metric_declarations"]
    return [s for d in declarations for s in d["metric_name_selectors"]]


def test_runbook_metrics_exist_and_reach_cloudwatch() -> None:
    named = set(re.findall(r"\ba2i_worker_[a-z_]+", RUNBOOK)) - MESSAGE_ATTRIBUTES
    assert named, "the runbook names metrics"
    assert named <= _exposed_metrics(), named - _exposed_metrics()
    selectors = _collector_selectors()
    for metric in named:
        assert any(re.fullmatch(s, metric) for s in selectors), f"{metric} not exported on ECS"


def test_runbook_commands_exist() -> None:
    commands = {row.split("`")[1] for row in docgen.cli_table().splitlines()[2:]}
    synopses = {" ".join(c.split()[:3]) for c in commands} | {
        " ".join(c.split()[:2]) for c in commands
    }
    named = set(re.findall(r"`(a2i-worker [a-z]+(?: [a-z][a-z-]*)?)", RUNBOOK))
    assert named
    for command in named:
        assert command in synopses, command
    assert "python -m a2i_worker.probe readyz" in RUNBOOK


def test_runbook_rejection_codes_and_stages_are_the_registrys() -> None:
    from a2i_worker.rejection_codes import REJECTION_CODES

    section = RUNBOOK.split("### Requests rejected")[1].split("###")[0]
    fields = {"rejection_code", "request_id"}
    tokens = set(re.findall(r"`([a-z0-9]+(?:_[a-z0-9]+)+)`", section)) - fields
    codes = {t for t in tokens if t not in MESSAGE_ATTRIBUTES and t not in _exposed_metrics()}
    assert len(codes) >= 10
    assert codes <= set(REJECTION_CODES), codes - set(REJECTION_CODES)
    stages = {c.stage.value for c in REJECTION_CODES.values()}
    groups = re.findall(r"\*\*stages? ([^*]+)\*\*", section)
    named = {s for group in groups for s in re.findall(r"`([A-Za-z0-9]+)`", group)}
    assert named == stages, "the runbook covers every stage, and only those"


def test_runbook_settings_exist() -> None:
    from a2i_worker.settings import ENV_FILE_VARIABLE, Settings, env_var

    known = {env_var(n) for n in Settings.model_fields} | {ENV_FILE_VARIABLE}
    named = set(re.findall(r"\bA2I_WORKER_[A-Z_]+[A-Z]", RUNBOOK))
    assert named
    assert named <= known, named - known
