"""Every IAM policy in the template is least-privilege, judged by AWS's own action data.

cfn-lint ships the IAM service authorization reference (actions and the resource types
each one can be scoped to) as ``cfnlint/data/AdditionalSpecs/Policies.json``. A statement
may use ``Resource: "*"`` only when none of its actions has a resource type (AWS requires
"*" then: sagemaker:ListHumanLoops, ecr:GetAuthorizationToken); a statement scoped to
ARNs may hold only actions that can be scoped (otherwise the grant would silently not
work).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from a2i_worker.ledger import dynamodb as ledger_dynamodb
from a2i_worker.ledger import dynamodb_counts, dynamodb_table

from .cfn import iam_statements, load_template

SAGEMAKER_ALLOWED = {
    "sagemaker:StartHumanLoop",
    "sagemaker:DescribeHumanLoop",
    "sagemaker:ListHumanLoops",
    "sagemaker:StopHumanLoop",
    "sagemaker:DeleteHumanLoop",
}
#: Statements that AWS forces onto Resource "*", with the reason (see docs/deploy.md).
STAR_RESOURCE_EXCEPTIONS = {
    "sagemaker:ListHumanLoops": "no resource type in the service authorization reference",
    "ecr:GetAuthorizationToken": "no resource type in the service authorization reference",
}


@cache
def _iam_reference() -> dict[str, Any]:
    path = importlib_resources.files("cfnlint.data.AdditionalSpecs") / "Policies.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _resource_types(action: str) -> list[str]:
    service, _, name = action.partition(":")
    entry = _iam_reference()[service]["Actions"].get(name.lower())
    assert entry is not None, f"{action} is not an IAM action"
    return list(entry.get("Resources", []))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


STATEMENTS = list(iam_statements(load_template()))
TASK_ROLE = [s for name, s in STATEMENTS if name == "TaskRole"]


def test_reference_data_knows_the_a2i_actions() -> None:
    assert _resource_types("sagemaker:StartHumanLoop") == ["flow-definition"]
    assert _resource_types("sagemaker:DescribeHumanLoop") == ["human-loop"]
    assert _resource_types("sagemaker:ListHumanLoops") == []


@pytest.mark.parametrize(("owner", "statement"), STATEMENTS, ids=lambda v: str(v)[:40])
def test_no_wildcard_actions_and_star_resources_only_where_required(
    owner: str, statement: dict[str, Any]
) -> None:
    assert statement["Effect"] == "Allow"
    assert "NotAction" not in statement
    assert "NotResource" not in statement
    actions = _as_list(statement["Action"])
    for action in actions:
        assert "*" not in action, f"{owner}: wildcard action {action}"
        _resource_types(action)  # exists
    resources = _as_list(statement["Resource"])
    if "*" in resources:
        assert resources == ["*"]
        for action in actions:
            assert action in STAR_RESOURCE_EXCEPTIONS, f"{owner}: {action} on '*'"
            assert _resource_types(action) == [], f"{action} can be scoped"
    else:
        for action in actions:
            assert _resource_types(action), f"{owner}: {action} cannot be scoped to ARNs"
    principal = statement.get("Principal")
    assert principal != "*"
    assert principal in (None, {"Service": "events.amazonaws.com"})


def test_sagemaker_actions_are_only_the_human_loop_ones() -> None:
    granted = {a for s in TASK_ROLE for a in _as_list(s["Action"]) if a.startswith("sagemaker:")}
    assert granted == SAGEMAKER_ALLOWED
    start = next(s for s in TASK_ROLE if s["Action"] == "sagemaker:StartHumanLoop")
    assert start["Resource"] == {"Ref": "FlowDefinitionArns"}


def test_delete_human_loop_only_when_the_parameter_enables_it() -> None:
    policy = load_template()["Resources"]["TaskRole"]["Properties"]["Policies"][0]
    for item in policy["PolicyDocument"]["Statement"]:
        plain = json.dumps(item)
        if "sagemaker:DeleteHumanLoop" in plain:
            assert item["Fn::If"][0] == "AllowDelete"
            assert item["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    condition = load_template()["Conditions"]["AllowDelete"]
    assert condition == {"Fn::Equals": [{"Ref": "AllowDeleteFinishedLoops"}, "true"]}
    assert load_template()["Parameters"]["AllowDeleteFinishedLoops"]["Default"] == "false"


def _queue_grants() -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in TASK_ROLE:
        actions = [a for a in _as_list(statement["Action"]) if a.startswith("sqs:")]
        for resource in _as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::GetAtt" in resource:
                grants.setdefault(resource["Fn::GetAtt"][0], set()).update(actions)
    return grants


def test_sqs_actions_per_queue() -> None:
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    grants = _queue_grants()
    for queue in ("RequestsQueue", "EventsQueue"):
        assert consume <= grants[queue]
        assert "sqs:SendMessage" not in grants[queue]
    for queue in ("ResultsQueue", "RequestsDeadLetterQueue", "EventsDeadLetterQueue"):
        assert "sqs:SendMessage" in grants[queue]
        assert not consume & grants[queue]
    # The results DLQ belongs to the consumers of results, not to the worker.
    assert "ResultsDeadLetterQueue" not in grants


def test_dynamodb_only_on_the_ledger_table_and_its_indexes() -> None:
    statements = [
        s for s in TASK_ROLE if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))
    ]
    assert len(statements) == 1
    assert _as_list(statements[0]["Resource"]) == [
        {"Fn::GetAtt": ["LedgerTable", "Arn"]},
        {"Fn::Sub": "${LedgerTable.Arn}/index/*"},
    ]


def test_dynamodb_actions_are_exactly_what_the_ledger_calls() -> None:
    """Derived from the ledger's source (its three modules): every DynamoDB operation
    name it mentions."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    by_snake = {xform_name(op): op for op in model.operation_names}
    source = "\n".join(
        Path(str(m.__file__)).read_text(encoding="utf-8")
        for m in (ledger_dynamodb, dynamodb_counts, dynamodb_table)
    )
    mentioned = set(re.findall(r"\.([a-z_]+)\(|\"([a-z_]+)\"", source))
    used = {by_snake[n] for pair in mentioned for n in pair if n in by_snake}
    assert used, "found no DynamoDB calls in the ledger"
    granted = {a for s in TASK_ROLE for a in _as_list(s["Action"]) if a.startswith("dynamodb:")}
    # create_table / update_time_to_live are for the local stack and tests only.
    assert granted == {f"dynamodb:{op}" for op in used} - {
        "dynamodb:CreateTable",
        "dynamodb:UpdateTimeToLive",
    }


def test_s3_read_only_on_output_and_input_prefixes() -> None:
    s3 = [s for s in TASK_ROLE if any(a.startswith("s3:") for a in _as_list(s["Action"]))]
    assert {a for s in s3 for a in _as_list(s["Action"])} == {"s3:GetObject"}
    assert sorted(s["Resource"]["Fn::Sub"] for s in s3) == [
        "arn:${AWS::Partition}:s3:::${InputBucketName}/${InputPrefix}*",
        "arn:${AWS::Partition}:s3:::${OutputBucketName}/${OutputPrefix}*",
    ]
