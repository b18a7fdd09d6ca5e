"""Strict validation of rules documents: every fault names its JSON pointer and reason."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from rules_samples import CONFIG, DATA

from a2i_worker.errors import ConfigError
from a2i_worker.rules import (
    MAX_DOCUMENT_CHARS,
    RulesError,
    RuleSet,
    load_rules,
    load_rules_file,
    parse_rules_json,
)


def simple(ctype: str, **params: Any) -> dict[str, Any]:
    return {"ConditionType": ctype, "ConditionParameters": params}


MOD = simple(
    "ModerationLabelConfidenceCheck", ModerationLabelName="Violence", ConfidenceLessThan=90
)
SAMPLE = simple("Sampling", RandomSamplingPercentage=5)


def error_of(doc: Any) -> RulesError:
    with pytest.raises(RulesError) as info:
        load_rules(doc)
    return info.value


def test_rules_error_is_a_config_error_with_source_pointer_reason() -> None:
    doc = {"Conditions": [{"And": [SAMPLE, simple("Sampling", RandomSamplingPercentage=0)]}]}
    err = error_of(doc)
    assert isinstance(err, ConfigError)
    assert err.source == "inline"
    assert err.pointer == "/Conditions/0/And/1/ConditionParameters/RandomSamplingPercentage"
    assert "between 0.01 and 100" in err.reason
    assert str(err) == f"inline: {err.pointer}: {err.reason}"


def test_the_brief_example_pointer_for_an_out_of_range_confidence() -> None:
    bad = simple("ModerationLabelConfidenceCheck", ModerationLabelName="x", ConfidenceLessThan=101)
    err = error_of({"Conditions": [{"And": [SAMPLE, bad]}]})
    assert err.pointer == "/Conditions/0/And/1/ConditionParameters/ConfidenceLessThan"
    assert "out of range" in err.reason


@pytest.mark.parametrize(
    ("doc", "pointer", "needle"),
    [
        ([], "", "must be an object"),
        ({}, "", "needs a 'Conditions' array"),
        ({"Conditions": [SAMPLE], "Version": 1}, "/Version", "unknown key"),
        ({"Conditions": {}}, "/Conditions", "expected an array"),
        ({"Conditions": []}, "/Conditions", "at least one condition"),
        ({"Conditions": [5]}, "/Conditions/0", "must be an object"),
        ({"Conditions": [{"And": [SAMPLE]}]}, "/Conditions/0/And", "at least 2"),
        ({"Conditions": [{"Or": SAMPLE}]}, "/Conditions/0/Or", "must be an array"),
        (
            {"Conditions": [{"And": [SAMPLE, SAMPLE], "Or": [SAMPLE, SAMPLE]}]},
            "/Conditions/0/Or",
            "nothing else",
        ),
        (
            {"Conditions": [{"And": [SAMPLE, SAMPLE], "ConditionType": "Sampling"}]},
            "/Conditions/0/ConditionType",
            "nothing else",
        ),
        ({"Conditions": [{"ConditionParameters": {}}]}, "/Conditions/0", "needs ConditionType"),
        (
            {"Conditions": [{"ConditionType": "Sampling"}]},
            "/Conditions/0",
            "needs ConditionParameters",
        ),
        (
            {"Conditions": [{"ConditionType": 3, "ConditionParameters": {}}]},
            "/Conditions/0/ConditionType",
            "expected a string",
        ),
        ({"Conditions": [simple("Nope")]}, "/Conditions/0/ConditionType", "unknown condition type"),
        ({"Conditions": [{**SAMPLE, "Extra": 1}]}, "/Conditions/0/Extra", "unknown key"),
        (
            {"Conditions": [{"ConditionType": "Sampling", "ConditionParameters": [5]}]},
            "/Conditions/0/ConditionParameters",
            "must be an object",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=5, Seed=1)]},
            "/Conditions/0/ConditionParameters/Seed",
            "unknown parameter",
        ),
        (
            {"Conditions": [simple("Sampling")]},
            "/Conditions/0/ConditionParameters",
            "RandomSamplingPercentage",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=0.009)]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "out of range",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=100.5)]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "out of range",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=True)]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "boolean",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage="5")]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "expected a number",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=float("nan"))]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "finite",
        ),
        (
            {"Conditions": [simple("Sampling", RandomSamplingPercentage=float("inf"))]},
            "/Conditions/0/ConditionParameters/RandomSamplingPercentage",
            "finite",
        ),
        (
            {"Conditions": [simple("ModerationLabelConfidenceCheck", ModerationLabelName="x")]},
            "/Conditions/0/ConditionParameters",
            "Confidence* operator",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ModerationLabelConfidenceCheck",
                        ModerationLabelName="x",
                        ConfidenceLessThan=5,
                        ConfidenceGreaterThan=1,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ConfidenceGreaterThan",
            "mutually exclusive",
        ),
        (
            {"Conditions": [simple("ModerationLabelConfidenceCheck", ConfidenceLessThan=5)]},
            "/Conditions/0/ConditionParameters",
            "ModerationLabelName",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ModerationLabelConfidenceCheck",
                        ModerationLabelName="",
                        ConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ModerationLabelName",
            "empty",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ModerationLabelConfidenceCheck",
                        ModerationLabelName="x",
                        ConfidenceLessThan=-1,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ConfidenceLessThan",
            "out of range",
        ),
        (
            {"Conditions": [simple("ImportantFormKeyConfidenceCheck", ImportantFormKey="Total")]},
            "/Conditions/0/ConditionParameters",
            "KeyValueBlockConfidence",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ImportantFormKeyConfidenceCheck",
                        ImportantFormKey="Total",
                        KeyValueBlockConfidenceLessThan=5,
                        KeyValueBlockConfidenceEquals=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/KeyValueBlockConfidenceEquals",
            "mutually exclusive",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ImportantFormKeyConfidenceCheck",
                        ImportantFormKey="Total",
                        ImportantFormKeyAliases="Sum",
                        WordBlockConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ImportantFormKeyAliases",
            "expected an array",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ImportantFormKeyConfidenceCheck",
                        ImportantFormKey="Total",
                        ImportantFormKeyAliases=["Sum", 3],
                        WordBlockConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ImportantFormKeyAliases/1",
            "expected a string",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ImportantFormKeyConfidenceCheck",
                        ImportantFormKey="*",
                        ImportantFormKeyAliases=["Sum"],
                        WordBlockConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ImportantFormKeyAliases",
            "catch-all",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "ImportantFormKeyConfidenceCheck",
                        ImportantFormKey=" : ",
                        WordBlockConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/ImportantFormKey",
            "colons",
        ),
        (
            {"Conditions": [simple("MissingImportantFormKey", ImportantFormKey="*")]},
            "/Conditions/0/ConditionParameters/ImportantFormKey",
            "catch-all",
        ),
        (
            {
                "Conditions": [
                    simple(
                        "MissingImportantFormKey",
                        ImportantFormKey="Total",
                        KeyValueBlockConfidenceLessThan=5,
                    )
                ]
            },
            "/Conditions/0/ConditionParameters/KeyValueBlockConfidenceLessThan",
            "unknown parameter",
        ),
        (
            {"Conditions": [simple("ConfidenceCheck", Path="a[", ConfidenceLessThan=1)]},
            "/Conditions/0/ConditionParameters/Path",
            "invalid JMESPath",
        ),
        (
            {"Conditions": [simple("ConfidenceCheck", ConfidenceLessThan=1)]},
            "/Conditions/0/ConditionParameters",
            "Path",
        ),
        (
            {
                "Conditions": [
                    simple("ConfidenceCheck", Path="a", ConfidenceLessThan=1, Quantifier="most")
                ]
            },
            "/Conditions/0/ConditionParameters/Quantifier",
            "one of 'any', 'all'",
        ),
        (
            {
                "Conditions": [
                    simple("ConfidenceCheck", Path="a", ConfidenceLessThan=1, IfMissing=True)
                ]
            },
            "/Conditions/0/ConditionParameters/IfMissing",
            "one of 'review', 'skip'",
        ),
        (
            {"Conditions": [simple("LabelCheck", Path="a", LabelIn=["x"], LabelNotIn=["y"])]},
            "/Conditions/0/ConditionParameters/LabelNotIn",
            "mutually exclusive",
        ),
        (
            {"Conditions": [simple("LabelCheck", Path="a")]},
            "/Conditions/0/ConditionParameters",
            "LabelIn",
        ),
        (
            {"Conditions": [simple("LabelCheck", Path="a", LabelIn=[])]},
            "/Conditions/0/ConditionParameters/LabelIn",
            "at least 1",
        ),
        (
            {"Conditions": [simple("LabelCheck", Path="a", LabelIn=["x", True])]},
            "/Conditions/0/ConditionParameters/LabelIn/1",
            "string or an integer",
        ),
        (
            {"Conditions": [simple("MissingField", Path="")]},
            "/Conditions/0/ConditionParameters/Path",
            "empty",
        ),
        (
            {"Conditions": [simple("ModelDisagreement", Paths=["a"])]},
            "/Conditions/0/ConditionParameters/Paths",
            "at least 2",
        ),
        (
            {"Conditions": [simple("ModelDisagreement", Paths=["a", "b"], LeftPath="a")]},
            "/Conditions/0/ConditionParameters/LeftPath",
            "mutually exclusive",
        ),
        (
            {"Conditions": [simple("ModelDisagreement", LeftPath="a")]},
            "/Conditions/0/ConditionParameters",
            "RightPath",
        ),
        (
            {"Conditions": [simple("ModelDisagreement", Paths=["a", "b"], Tolerance=-1)]},
            "/Conditions/0/ConditionParameters/Tolerance",
            "at least 0",
        ),
        (
            {"Conditions": [simple("ModelDisagreement", Paths=["a", "b["])]},
            "/Conditions/0/ConditionParameters/Paths/1",
            "invalid JMESPath",
        ),
        (
            {"Conditions": [{"And": [SAMPLE, {"a/b~c": 1}]}]},
            "/Conditions/0/And/1/a~1b~0c",
            "unknown key",
        ),
    ],
)
def test_invalid_documents_name_pointer_and_reason(doc: Any, pointer: str, needle: str) -> None:
    err = error_of(doc)
    assert err.pointer == pointer, err
    assert needle in err.reason, err


def test_two_levels_of_nesting_are_allowed_three_are_not() -> None:
    two = {"Conditions": [{"Or": [{"And": [MOD, SAMPLE]}, SAMPLE]}]}
    assert isinstance(load_rules(two), RuleSet)
    three = {"Conditions": [{"Or": [{"And": [MOD, {"Or": [MOD, SAMPLE]}]}, SAMPLE]}]}
    err = error_of(three)
    assert err.pointer == "/Conditions/0/Or/0/And/1/Or"
    assert "two levels" in err.reason


def test_document_size_limit_is_10240_serialized_characters() -> None:
    def doc_with_alias_of(n: int) -> dict[str, Any]:
        return {
            "Conditions": [
                simple(
                    "MissingImportantFormKey",
                    ImportantFormKey="k",
                    ImportantFormKeyAliases=["x" * n],
                )
            ]
        }

    base = len(json.dumps(doc_with_alias_of(0), separators=(",", ":")))
    fits = doc_with_alias_of(MAX_DOCUMENT_CHARS - base)
    assert len(json.dumps(fits, separators=(",", ":"))) == MAX_DOCUMENT_CHARS
    load_rules(fits)
    err = error_of(doc_with_alias_of(MAX_DOCUMENT_CHARS - base + 1))
    assert err.pointer == ""
    assert "10241 characters" in err.reason


def test_json_text_rejects_nan_infinity_and_duplicate_keys() -> None:
    nan = (
        '{"Conditions": [{"ConditionType": "Sampling", "ConditionParameters": '
        '{"RandomSamplingPercentage": NaN}}]}'
    )
    with pytest.raises(RulesError) as info:
        parse_rules_json(nan)
    assert info.value.pointer == "/Conditions/0/ConditionParameters/RandomSamplingPercentage"
    assert "NaN" in info.value.reason
    dup = (
        '{"Conditions": [{"ConditionType": "Sampling", "ConditionType": "Sampling", '
        '"ConditionParameters": {"RandomSamplingPercentage": 5}}]}'
    )
    with pytest.raises(RulesError) as info:
        parse_rules_json(dup)
    assert info.value.pointer == "/Conditions/0/ConditionType"
    assert "more than once" in info.value.reason


def test_rules_file_errors_name_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Conditions": [', encoding="utf-8")
    with pytest.raises(RulesError) as info:
        load_rules_file(bad)
    assert info.value.source == str(bad)
    assert str(info.value).startswith(f"{bad}: : not valid JSON")
    missing = tmp_path / "missing.json"
    with pytest.raises(RulesError) as info:
        load_rules_file(missing)
    assert info.value.source == str(missing)
    assert "cannot read" in info.value.reason
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"Conditions": [simple("Sampling", RandomSamplingPercentage=0)]}))
    with pytest.raises(RulesError) as info:
        load_rules_file(wrong)
    assert str(info.value).startswith(
        f"{wrong}: /Conditions/0/ConditionParameters/RandomSamplingPercentage: "
    )


def test_every_shipped_example_and_aws_documented_rule_loads() -> None:
    files = sorted(DATA.glob("a*-*.json")) + sorted(CONFIG.glob("*.json"))
    assert len(files) >= 12
    for path in files:
        rules = load_rules_file(path)
        assert rules.source == str(path)
        assert rules.document == json.loads(path.read_text(encoding="utf-8"))


def test_ruleset_is_immutable_and_document_is_a_copy() -> None:
    doc = {"Conditions": [copy.deepcopy(SAMPLE)]}
    rules = load_rules(doc)
    doc["Conditions"].append(MOD)
    assert rules.document == {"Conditions": [SAMPLE]}
    rules.document["Conditions"].clear()
    assert rules.document == {"Conditions": [SAMPLE]}
    with pytest.raises(AttributeError):
        rules._source = "x"


def test_json_text_is_accepted_like_a2is_string_parameter() -> None:
    text = json.dumps({"Conditions": [SAMPLE]})
    assert load_rules(text).document == {"Conditions": [SAMPLE]}
    assert load_rules(text.encode()).document == {"Conditions": [SAMPLE]}
    with pytest.raises(RulesError) as info:
        load_rules('{"Conditions": [}', source="req-9")
    assert info.value.source == "req-9"
    assert "not valid JSON" in info.value.reason


def test_public_surface_is_pinned() -> None:
    import a2i_worker.rules as rules_pkg

    assert set(rules_pkg.__all__) >= {
        "RulesError",
        "RuleSet",
        "load_rules",
        "load_rules_file",
        "FiredCondition",
        "Decision",
        "evaluate",
        "explain",
    }
    assert all(hasattr(rules_pkg, name) for name in rules_pkg.__all__)
