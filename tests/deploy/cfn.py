"""Reading the CloudFormation template as data, and deriving the moto-compatible variant."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

__all__ = [
    "TEMPLATE",
    "iam_statements",
    "load_template",
    "references",
    "without_resource_types",
]

TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation" / "a2i-worker.yaml"
_POLICY_TYPES = {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::SQS::QueuePolicy"}
_SUB_VAR = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain dicts (short-form intrinsics become ``{"Ref": ...}`` etc.)."""
    loaded = cfn_yaml.load(str(path))
    return _plain(loaded)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def references(value: Any) -> set[str]:
    """Logical IDs referenced by Ref, Fn::GetAtt, Fn::Sub and DependsOn inside ``value``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(_SUB_VAR.findall(str(text)))
                if isinstance(inner, list) and len(inner) > 1:
                    found.update(references(inner[1]))
            elif key == "DependsOn" and isinstance(inner, str):
                found.add(inner)
            elif key == "DependsOn" and all(isinstance(i, str) for i in inner):
                found.update(inner)
            # (An ECS container's DependsOn is a list of objects: searched like the rest.)
            else:
                found.update(references(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(references(inner))
    return found


def without_resource_types(
    template: dict[str, Any], types: set[str]
) -> tuple[dict[str, Any], list[str]]:
    """A copy without resources of ``types`` and everything that depends on them.

    Returns the variant and the logical IDs that were removed (sorted).
    """
    variant = copy.deepcopy(template)
    resources: dict[str, Any] = variant["Resources"]
    removed = {name for name, res in resources.items() if res["Type"] in types}
    while True:
        dependants = {
            name
            for name, res in resources.items()
            if name not in removed and references(res) & removed
        }
        if not dependants:
            break
        removed |= dependants
    for name in removed:
        del resources[name]
    outputs = variant.get("Outputs", {})
    for key in [k for k, v in outputs.items() if references(v) & removed]:
        del outputs[key]
    return variant, sorted(removed)


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every IAM policy in the template, with its resource's logical ID.

    ``Fn::If`` branches are all yielded (each may be in force for some parameters);
    ``AWS::NoValue`` branches are skipped.
    """
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents: list[Any] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] in _POLICY_TYPES:
            documents.append(props["PolicyDocument"])
        for document in documents:
            for statement in _branches(document["Statement"]):
                yield name, statement


def _branches(statements: Any) -> Iterator[dict[str, Any]]:
    for item in statements if isinstance(statements, list) else [statements]:
        if isinstance(item, dict) and "Fn::If" in item:
            for branch in item["Fn::If"][1:]:
                if branch != {"Ref": "AWS::NoValue"}:
                    yield from _branches(branch)
        elif isinstance(item, dict):
            yield item
