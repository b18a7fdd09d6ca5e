"""`explain` is the human-readable report behind `a2i-worker rules check`."""

from __future__ import annotations

import json

from rules_samples import load_sample

from a2i_worker.rules import evaluate, explain, load_rules


def test_explain_shows_every_condition_and_the_decision() -> None:
    rules = load_rules(load_sample("a2i-activation-textract-forms.json"), source="forms.json")
    prediction = load_sample("textract-invoice-low-total.json")
    text = explain(rules, prediction, request_id="inv-7")
    lines = text.splitlines()
    assert lines[0] == "rules: forms.json"
    assert lines[1] == "request_id: inv-7"
    assert lines[2] == "decision: REVIEW (human loop); 2 condition(s) fired"
    assert "[HOLDS] Conditions[0] Or: 2 of 2 member(s) hold" in text
    assert (
        "[HOLDS] Conditions[0].Or[1] MissingImportantFormKey: form key 'Invoice date' not found"
        in text
    )
    configured = json.dumps(rules.document)
    words = {b["Text"] for b in prediction["Blocks"] if "Text" in b and len(b["Text"]) > 2}
    leaked = {w for w in words if w in text and w not in configured}
    assert not leaked


def test_explain_says_why_conditions_did_not_hold() -> None:
    rules = load_rules(load_sample("a2i-activation-textract-forms.json"))
    prediction = load_sample("textract-invoice-confident.json")
    assert not evaluate(rules, prediction, request_id="x").activated
    text = explain(rules, prediction, request_id="x")
    assert "decision: NO REVIEW; 0 condition(s) fired" in text
    assert (
        "[no] Conditions[0].Or[0] ImportantFormKeyConfidenceCheck: form key 'Total' (or an alias)"
        " found but no pair qualifies: key-value block confidence 96.5 >= 90, not < 90"
        " (KeyValueBlockConfidenceLessThan)"
    ) in (text)
    assert "[no] Conditions[0].Or[1] MissingImportantFormKey: form key 'Invoice date' found" in text
    assert "fired:" not in text


def test_explain_and_evaluate_agree_on_sampling() -> None:
    rules = load_rules(
        {
            "Conditions": [
                {
                    "ConditionType": "Sampling",
                    "ConditionParameters": {"RandomSamplingPercentage": 30},
                }
            ]
        }
    )
    for i in range(50):
        rid = f"s-{i}"
        activated = evaluate(rules, None, request_id=rid).activated
        assert (
            "[HOLDS] Conditions[0] Sampling" in explain(rules, None, request_id=rid)
        ) is activated
