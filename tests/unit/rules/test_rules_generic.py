"""Generic condition types over arbitrary prediction JSON (JMESPath addressed)."""

from __future__ import annotations

from typing import Any

import pytest

from a2i_worker.rules import evaluate, explain, load_rules


def simple(ctype: str, **params: Any) -> dict[str, Any]:
    return {"ConditionType": ctype, "ConditionParameters": params}


def fires(condition: dict[str, Any], prediction: Any) -> bool:
    rules = load_rules({"Conditions": [condition]})
    return evaluate(rules, prediction, request_id="r").activated


INVOICE = {
    "fields": {
        "total": {"value": 120.5, "confidence": 0.97},
        "date": {"value": "2026-11-01", "confidence": 0.62},
        "vendor": {"value": "ACME", "confidence": 0.91},
    },
    "checks": {"sum_of_line_items": 120.49},
    "predictions": [{"label": "fraud", "score": 0.7}, {"label": "ok", "score": 0.3}],
    "shadow_model": {"label": "ok"},
}


class TestConfidenceCheck:
    def test_any_and_all_quantifiers(self) -> None:
        any_low = simple("ConfidenceCheck", Path="fields.*.confidence", ConfidenceLessThan=0.9)
        all_low = {
            **any_low,
            "ConditionParameters": {**any_low["ConditionParameters"], "Quantifier": "all"},
        }
        assert fires(any_low, INVOICE)
        assert not fires(all_low, INVOICE)
        assert fires(
            simple(
                "ConfidenceCheck",
                Path="fields.*.confidence",
                Quantifier="all",
                ConfidenceGreaterThanEquals=0.62,
            ),
            INVOICE,
        )

    def test_any_numeric_scale_and_each_operator(self) -> None:
        pred = {"score": 512}
        assert fires(simple("ConfidenceCheck", Path="score", ConfidenceEquals=512), pred)
        assert fires(simple("ConfidenceCheck", Path="score", ConfidenceGreaterThan=-1e9), pred)
        assert not fires(simple("ConfidenceCheck", Path="score", ConfidenceLessThan=512), pred)
        assert fires(simple("ConfidenceCheck", Path="score", ConfidenceLessThanEquals=512), pred)

    @pytest.mark.parametrize(
        "prediction",
        [
            {},
            {"score": None},
            {"score": "0.1"},
            {"score": True},
            {"score": []},
            {"score": {}},
            None,
            3,
            "x",
            [1],
        ],
    )
    def test_missing_or_non_numeric_values_follow_if_missing(self, prediction: Any) -> None:
        skip = simple("ConfidenceCheck", Path="score", ConfidenceLessThan=1e12)
        review = simple(
            "ConfidenceCheck", Path="score", ConfidenceLessThan=1e12, IfMissing="review"
        )
        assert not fires(skip, prediction)
        assert fires(review, prediction)

    def test_non_numeric_members_are_missing_but_numbers_still_count(self) -> None:
        pred = {"scores": [0.95, "n/a", 0.2]}
        assert fires(simple("ConfidenceCheck", Path="scores", ConfidenceLessThan=0.5), pred)
        all_high = simple(
            "ConfidenceCheck", Path="scores", Quantifier="all", ConfidenceGreaterThan=0.9
        )
        assert not fires(all_high, {"scores": [0.95, 0.2]})
        assert fires(all_high, {"scores": [0.95, "n/a", [0.99]]})  # nested arrays flatten
        review = simple(
            "ConfidenceCheck",
            Path="scores",
            Quantifier="all",
            ConfidenceGreaterThan=0.9,
            IfMissing="review",
        )
        assert fires(review, {"scores": [0.95, "n/a"]})

    def test_runtime_jmespath_type_errors_count_as_missing(self) -> None:
        rule = simple(
            "ConfidenceCheck", Path="length(score)", ConfidenceLessThan=5, IfMissing="review"
        )
        assert fires(rule, {"score": 3})  # length() of a number is a JMESPath type error
        assert fires(
            {**rule, "ConditionParameters": {**rule["ConditionParameters"], "IfMissing": "skip"}},
            {"score": "abc"},
        )

    def test_huge_integers_compare_exactly(self) -> None:
        assert fires(
            simple("ConfidenceCheck", Path="x", ConfidenceGreaterThan=1e300), {"x": 10**400}
        )
        (fired,) = evaluate(
            load_rules(
                {"Conditions": [simple("ConfidenceCheck", Path="x", ConfidenceGreaterThan=0)]}
            ),
            {"x": 10**400},
            request_id="r",
        ).fired
        assert "401 digits" in fired.explanation


class TestLabelCheck:
    def test_label_in_and_not_in(self) -> None:
        assert fires(simple("LabelCheck", Path="predictions[0].label", LabelIn=["fraud"]), INVOICE)
        assert not fires(
            simple("LabelCheck", Path="predictions[0].label", LabelIn=["Fraud"]), INVOICE
        )
        assert not fires(
            simple("LabelCheck", Path="predictions[0].label", LabelNotIn=["fraud", "ok"]), INVOICE
        )
        assert fires(simple("LabelCheck", Path="predictions[0].label", LabelNotIn=["ok"]), INVOICE)

    def test_quantifiers_over_lists(self) -> None:
        any_in = simple("LabelCheck", Path="predictions[].label", LabelIn=["fraud"])
        all_in = simple(
            "LabelCheck", Path="predictions[].label", LabelIn=["fraud"], Quantifier="all"
        )
        assert fires(any_in, INVOICE)
        assert not fires(all_in, INVOICE)
        assert fires(all_in, {"predictions": [{"label": "fraud"}, {"label": "fraud"}]})

    def test_labels_are_type_aware(self) -> None:
        assert fires(simple("LabelCheck", Path="c", LabelIn=[1]), {"c": 1})
        assert not fires(simple("LabelCheck", Path="c", LabelIn=[1]), {"c": "1"})
        assert not fires(simple("LabelCheck", Path="c", LabelIn=[1]), {"c": True})
        assert not fires(simple("LabelCheck", Path="c", LabelNotIn=[1]), {"c": True})
        assert fires(
            simple("LabelCheck", Path="c", LabelNotIn=[1], IfMissing="review"), {"c": True}
        )

    def test_explanation_names_only_configured_labels(self) -> None:
        rules = load_rules(
            {
                "Conditions": [
                    simple("LabelCheck", Path="predictions[].label", LabelNotIn=["spam"]),
                ]
            }
        )
        (fired,) = evaluate(rules, INVOICE, request_id="r").fired
        assert "'spam'" in fired.explanation
        assert "fraud" not in fired.explanation
        assert "'ok'" not in fired.explanation


class TestMissingField:
    @pytest.mark.parametrize(
        ("prediction", "held"),
        [
            ({"a": {"b": 1}}, False),
            ({"a": {"b": 0}}, False),
            ({"a": {"b": False}}, False),
            ({"a": {"b": "x"}}, False),
            ({"a": {}}, True),
            ({"a": {"b": None}}, True),
            ({"a": {"b": ""}}, True),
            ({"a": {"b": "  "}}, True),
            ({"a": {"b": []}}, True),
            ({"a": {"b": {}}}, True),
            (None, True),
            ([1], True),
            ("a", True),
        ],
    )
    def test_missing_null_and_empty(self, prediction: Any, held: bool) -> None:
        assert fires(simple("MissingField", Path="a.b"), prediction) is held


class TestModelDisagreement:
    def test_numbers_within_tolerance_agree(self) -> None:
        rule = simple(
            "ModelDisagreement",
            LeftPath="fields.total.value",
            RightPath="checks.sum_of_line_items",
            Tolerance=0.01,
        )
        assert not fires(rule, INVOICE)
        strict = simple(
            "ModelDisagreement", Paths=["fields.total.value", "checks.sum_of_line_items"]
        )
        assert fires(strict, INVOICE)

    def test_labels_and_structures(self) -> None:
        rule = simple("ModelDisagreement", Paths=["predictions[0].label", "shadow_model.label"])
        assert fires(rule, INVOICE)
        assert not fires(rule, {"predictions": [{"label": "ok"}], "shadow_model": {"label": "ok"}})
        deep = simple("ModelDisagreement", Paths=["a", "b"])
        assert not fires(deep, {"a": {"x": [1, 2.0]}, "b": {"x": [1.0, 2]}})
        assert fires(deep, {"a": {"x": [1, 2]}, "b": {"x": [1, 2, 3]}})
        assert fires(deep, {"a": 1, "b": True})
        assert fires(deep, {"a": 1, "b": "1"})

    def test_three_models_any_pair_differs(self) -> None:
        rule = simple("ModelDisagreement", Paths=["a", "b", "c"])
        assert not fires(rule, {"a": "x", "b": "x", "c": "x"})
        assert fires(rule, {"a": "x", "b": "x", "c": "y"})

    def test_missing_side_follows_if_missing(self) -> None:
        skip = simple("ModelDisagreement", Paths=["a", "b"])
        review = simple("ModelDisagreement", Paths=["a", "b"], IfMissing="review")
        assert not fires(skip, {"a": 1})
        assert fires(review, {"a": 1})

    def test_explanation_has_no_prediction_strings(self) -> None:
        rules = load_rules(
            {
                "Conditions": [
                    simple(
                        "ModelDisagreement", Paths=["predictions[0].label", "shadow_model.label"]
                    ),
                ]
            }
        )
        (fired,) = evaluate(rules, INVOICE, request_id="r").fired
        assert "fraud" not in fired.explanation
        assert "disagree" in fired.explanation
        text = explain(rules, INVOICE, request_id="r")
        assert "fraud" not in text
        assert "REVIEW" in text
