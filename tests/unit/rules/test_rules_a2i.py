"""A2I's condition types over real-shaped Rekognition and Textract responses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rules_samples import load_sample

from a2i_worker.rules import evaluate, load_rules


def simple(ctype: str, **params: Any) -> dict[str, Any]:
    return {"ConditionType": ctype, "ConditionParameters": params}


def fires(condition: dict[str, Any], prediction: Any, request_id: str = "r-1") -> bool:
    return evaluate(
        load_rules({"Conditions": [condition]}), prediction, request_id=request_id
    ).activated


def mod(name: str, **op: float) -> dict[str, Any]:
    return simple("ModerationLabelConfidenceCheck", ModerationLabelName=name, **op)


SUGGESTIVE = load_sample(
    "rekognition-suggestive.json"
)  # Suggestive 97.18, children 97.18/91.41/64.03
VIOLENCE = load_sample("rekognition-violence.json")
CLEAN = load_sample("rekognition-clean.json")


class TestModerationLabelConfidenceCheck:
    def test_operators_compare_the_named_labels_confidence(self) -> None:
        assert fires(mod("Suggestive", ConfidenceLessThan=98), SUGGESTIVE)
        assert not fires(mod("Suggestive", ConfidenceLessThan=97), SUGGESTIVE)
        assert fires(mod("Suggestive", ConfidenceGreaterThan=97), SUGGESTIVE)
        assert not fires(mod("Suggestive", ConfidenceGreaterThan=97.18000030517578), SUGGESTIVE)
        assert fires(mod("Suggestive", ConfidenceGreaterThanEquals=97.18000030517578), SUGGESTIVE)
        assert fires(mod("Suggestive", ConfidenceLessThanEquals=97.18000030517578), SUGGESTIVE)
        assert fires(mod("Suggestive", ConfidenceEquals=97.18000030517578), SUGGESTIVE)
        assert not fires(mod("Suggestive", ConfidenceEquals=97.18), SUGGESTIVE)

    def test_names_match_exactly_and_case_sensitively(self) -> None:
        assert not fires(mod("suggestive", ConfidenceGreaterThan=0), SUGGESTIVE)
        assert not fires(mod("Suggestive ", ConfidenceGreaterThan=0), SUGGESTIVE)
        assert not fires(mod("Revealing", ConfidenceGreaterThan=0), SUGGESTIVE)

    def test_child_and_parent_labels_are_matched_by_their_own_name(self) -> None:
        # the third-level label has its own confidence; its parents' confidences don't count
        child = "Female Swimwear or Underwear"
        assert fires(mod(child, ConfidenceLessThan=65), SUGGESTIVE)
        assert not fires(mod(child, ConfidenceGreaterThan=90), SUGGESTIVE)
        # a parent name is not matched through a child's ParentName
        only_child = {
            "ModerationLabels": [
                {
                    "Name": "Weapon Violence",
                    "ParentName": "Violence",
                    "Confidence": 80.0,
                    "TaxonomyLevel": 2,
                }
            ]
        }
        assert not fires(mod("Violence", ConfidenceGreaterThan=0), only_child)

    def test_catch_all_matches_any_label(self) -> None:
        assert fires(mod("*", ConfidenceLessThan=65), SUGGESTIVE)  # the 64.03 label
        assert not fires(mod("*", ConfidenceLessThan=64), SUGGESTIVE)
        assert fires(mod("*", ConfidenceGreaterThanEquals=99.21), VIOLENCE)
        assert not fires(mod("*", ConfidenceGreaterThanEquals=0), CLEAN)

    def test_absent_label_does_not_fire_even_for_low_thresholds(self) -> None:
        assert not fires(mod("Violence", ConfidenceLessThan=100), SUGGESTIVE)
        assert not fires(mod("Violence", ConfidenceLessThan=100), CLEAN)

    def test_video_moderation_items_are_read_too(self) -> None:
        video = {
            "ModerationLabels": [
                {
                    "Timestamp": 1200,
                    "ModerationLabel": {
                        "Name": "Violence",
                        "Confidence": 70.5,
                        "ParentName": "",
                        "TaxonomyLevel": 1,
                    },
                }
            ]
        }
        assert fires(mod("Violence", ConfidenceLessThan=71), video)

    def test_malformed_labels_never_satisfy_a_comparison(self) -> None:
        odd = {
            "ModerationLabels": [
                {"Name": "Violence"},
                {"Name": "Violence", "Confidence": "90"},
                {"Name": "Violence", "Confidence": True},
                "Violence",
                None,
            ]
        }
        assert not fires(mod("Violence", ConfidenceLessThan=100), odd)
        assert not fires(mod("*", ConfidenceGreaterThanEquals=0), odd)

    def test_the_shared_moderation_example(self) -> None:
        rules = load_rules(load_sample("a2i-activation-rekognition-moderation.json"))
        # Suggestive 97.18 < 98 and some label > 60 → the And fires
        decision = evaluate(rules, SUGGESTIVE, request_id="req-1")
        assert decision.activated
        paths = [f.path for f in decision.fired]
        assert paths[:2] == ["Conditions[0].And[0]", "Conditions[0].And[1]"]
        # no Suggestive label: only the 5 % sample could fire
        assert not any(
            f.path.startswith("Conditions[0]")
            for f in evaluate(rules, VIOLENCE, request_id="req-1").fired
        )

    def test_aws_example_ranges_with_and_or(self) -> None:
        rules = load_rules(load_sample("aws-rekognition-example-1.json"))

        def labels(name: str, conf: float) -> dict[str, Any]:
            return {
                "ModerationLabels": [
                    {"Name": name, "Confidence": conf, "ParentName": "Explicit Nudity"}
                ]
            }

        assert evaluate(rules, labels("Graphic Male Nudity", 95), request_id="a").activated
        assert not evaluate(rules, labels("Graphic Male Nudity", 85), request_id="a").activated
        assert evaluate(rules, labels("Graphic Female Nudity", 85), request_id="a").activated
        assert not evaluate(rules, labels("Graphic Female Nudity", 99.5), request_id="a").activated


LOW_TOTAL = load_sample("textract-invoice-low-total.json")
CONFIDENT = load_sample("textract-invoice-confident.json")
ALIAS_MIXED = load_sample("textract-invoice-alias-mixed.json")
NO_FORMS = load_sample("textract-letter-no-forms.json")


def key_check(key: str, aliases: list[str] | None = None, **ops: float) -> dict[str, Any]:
    params: dict[str, Any] = {"ImportantFormKey": key, **ops}
    if aliases is not None:
        params["ImportantFormKeyAliases"] = aliases
    return simple("ImportantFormKeyConfidenceCheck", **params)


def missing(key: str, aliases: list[str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"ImportantFormKey": key}
    if aliases is not None:
        params["ImportantFormKeyAliases"] = aliases
    return simple("MissingImportantFormKey", **params)


class TestImportantFormKeyConfidenceCheck:
    # LOW_TOTAL: key words "Total"(88.1) ":"(85.0), value word 42.5, KEY/VALUE blocks 61.3

    def test_key_value_block_confidence_is_the_kv_set_blocks(self) -> None:
        assert fires(key_check("Total", KeyValueBlockConfidenceLessThan=62), LOW_TOTAL)
        assert not fires(key_check("Total", KeyValueBlockConfidenceLessThan=61.3), LOW_TOTAL)
        assert fires(key_check("Total", KeyValueBlockConfidenceLessThanEquals=61.3), LOW_TOTAL)
        assert fires(key_check("Total", KeyValueBlockConfidenceEquals=61.3), LOW_TOTAL)

    def test_word_block_confidence_must_hold_for_each_word_of_key_and_value(self) -> None:
        # every word (88.1, 85.0, 42.5) < 90 → fires; "< 88" fails on the key word 88.1
        assert fires(key_check("Total", WordBlockConfidenceLessThan=90), LOW_TOTAL)
        assert not fires(key_check("Total", WordBlockConfidenceLessThan=88), LOW_TOTAL)
        assert fires(key_check("Total", WordBlockConfidenceGreaterThan=42), LOW_TOTAL)
        assert not fires(key_check("Total", WordBlockConfidenceGreaterThan=43), LOW_TOTAL)

    def test_both_operators_must_hold_for_the_same_pair(self) -> None:
        both = key_check(
            "Total", KeyValueBlockConfidenceLessThan=90, WordBlockConfidenceLessThan=90
        )
        assert fires(both, LOW_TOTAL)
        assert not fires(both, CONFIDENT)
        kv_only_holds = key_check(
            "Total", KeyValueBlockConfidenceLessThan=90, WordBlockConfidenceLessThan=50
        )
        assert not fires(kv_only_holds, LOW_TOTAL)

    def test_mixed_word_confidence_does_not_satisfy_each_word_below(self) -> None:
        # ALIAS_MIXED: "Amount"(99.5) "Due"(99.4) value 71.0, KV 72.4
        rule = key_check(
            "Total",
            ["Amount due"],
            KeyValueBlockConfidenceLessThan=90,
            WordBlockConfidenceLessThan=90,
        )
        assert not fires(rule, ALIAS_MIXED)
        assert fires(
            key_check("Total", ["Amount due"], KeyValueBlockConfidenceLessThan=90), ALIAS_MIXED
        )

    @pytest.mark.parametrize(
        ("configured", "expected"),
        [
            ("Total", True),
            ("total", True),
            ("TOTAL:", True),
            ("  Total :", True),
            ("Tot al", False),
            ("Totals", False),
            ("Grand total", False),
        ],
    )
    def test_key_matching_normalizes_case_whitespace_and_trailing_colon(
        self, configured: str, expected: bool
    ) -> None:
        # the document's key is the two words "Total" ":" → "Total :"
        assert (
            fires(key_check(configured, KeyValueBlockConfidenceLessThan=90), LOW_TOTAL) is expected
        )

    def test_aliases_match_like_the_key(self) -> None:
        assert fires(
            key_check("Total", ["Balance", "amount  DUE:"], KeyValueBlockConfidenceLessThan=80),
            ALIAS_MIXED,
        )
        assert not fires(
            key_check("Total", ["Balance"], KeyValueBlockConfidenceLessThan=80), ALIAS_MIXED
        )

    def test_catch_all_checks_every_pair(self) -> None:
        assert fires(key_check("*", KeyValueBlockConfidenceLessThan=62), LOW_TOTAL)
        assert not fires(key_check("*", KeyValueBlockConfidenceLessThan=60), LOW_TOTAL)
        # AWS example 2: KV < 60 and words < 90
        rules = load_rules(load_sample("aws-textract-example-2.json"))
        assert not evaluate(rules, LOW_TOTAL, request_id="x").activated
        lower = copy.deepcopy(LOW_TOTAL)
        for block in lower["Blocks"]:
            if block["BlockType"] == "KEY_VALUE_SET" and block["Confidence"] == 61.3:
                block["Confidence"] = 55.0
        assert evaluate(rules, lower, request_id="x").activated

    def test_selection_element_values_have_only_key_words(self) -> None:
        # "Paid" (99.0) → [SELECTED] (kv 88): the selection element is not a word block
        assert fires(key_check("Paid", WordBlockConfidenceGreaterThan=98.9), LOW_TOTAL)
        assert fires(key_check("Paid", KeyValueBlockConfidenceEquals=88), LOW_TOTAL)

    def test_missing_key_or_non_textract_input_never_fires(self) -> None:
        rule = key_check(
            "Total", KeyValueBlockConfidenceLessThan=100, WordBlockConfidenceLessThan=100
        )
        odd: tuple[Any, ...] = (NO_FORMS, {}, [], None, "Total", {"Blocks": "x"}, {"Blocks": [1]})
        for prediction in odd:
            assert not fires(rule, prediction)

    def test_blocks_without_confidence_never_satisfy(self) -> None:
        broken = copy.deepcopy(LOW_TOTAL)
        for block in broken["Blocks"]:
            if block["BlockType"] == "WORD":
                del block["Confidence"]
        assert not fires(key_check("Total", WordBlockConfidenceLessThan=100), broken)
        assert fires(key_check("Total", KeyValueBlockConfidenceLessThan=100), broken)

    def test_aws_example_1_paystub(self) -> None:
        rules = load_rules(load_sample("aws-textract-example-1.json"))
        stub = {
            "Blocks": [
                {
                    "BlockType": "KEY_VALUE_SET",
                    "Id": "k",
                    "EntityTypes": ["KEY"],
                    "Confidence": 64.0,
                    "Relationships": [
                        {"Type": "VALUE", "Ids": ["v"]},
                        {"Type": "CHILD", "Ids": ["w1", "w2"]},
                    ],
                },
                {
                    "BlockType": "KEY_VALUE_SET",
                    "Id": "v",
                    "EntityTypes": ["VALUE"],
                    "Confidence": 64.0,
                    "Relationships": [{"Type": "CHILD", "Ids": ["w3"]}],
                },
                {"BlockType": "WORD", "Id": "w1", "Text": "Pay", "Confidence": 80.0},
                {"BlockType": "WORD", "Id": "w2", "Text": "Date", "Confidence": 84.9},
                {"BlockType": "WORD", "Id": "w3", "Text": "05/05/2026", "Confidence": 70.0},
            ]
        }
        decision = evaluate(rules, stub, request_id="x")
        assert [f.path for f in decision.fired] == ["Conditions[1]"]
        stub["Blocks"][3]["Confidence"] = 85.0  # one word not < 85 → no longer every word
        assert not evaluate(rules, stub, request_id="x").activated


class TestMissingImportantFormKey:
    def test_fires_only_when_neither_key_nor_alias_is_detected(self) -> None:
        assert not fires(missing("Invoice date"), CONFIDENT)  # "Invoice Date:"
        assert fires(missing("Invoice date"), LOW_TOTAL)
        assert fires(missing("Total"), ALIAS_MIXED)
        assert not fires(missing("Total", ["Amount due"]), ALIAS_MIXED)

    def test_text_outside_key_blocks_does_not_count(self) -> None:
        # "ACME Corp" is a LINE, not a KEY; a value's words are not keys either
        assert fires(missing("ACME Corp"), CONFIDENT)
        assert fires(missing("INV-10293"), CONFIDENT)

    def test_no_form_at_all_means_missing(self) -> None:
        formless: tuple[Any, ...] = (NO_FORMS, {}, None, [1, 2], {"Blocks": []})
        for prediction in formless:
            assert fires(missing("Total"), prediction)

    def test_shared_textract_example(self) -> None:
        rules = load_rules(load_sample("a2i-activation-textract-forms.json"))
        low = evaluate(rules, LOW_TOTAL, request_id="x")
        assert [f.path for f in low.fired] == ["Conditions[0].Or[0]", "Conditions[0].Or[1]"]
        assert not evaluate(rules, CONFIDENT, request_id="x").activated
        mixed = evaluate(rules, ALIAS_MIXED, request_id="x")
        assert not mixed.activated  # "Amount Due" words 99.5/99.4 are not < 90; date present


class TestExplanations:
    def test_explanations_name_operator_threshold_and_observation(self) -> None:
        rule = key_check(
            "Total", KeyValueBlockConfidenceLessThan=90, WordBlockConfidenceLessThan=90
        )
        (fired,) = evaluate(load_rules({"Conditions": [rule]}), LOW_TOTAL, request_id="x").fired
        assert fired.condition_type == "ImportantFormKeyConfidenceCheck"
        assert "form key 'Total'" in fired.explanation
        assert "61.3 < 90 (KeyValueBlockConfidenceLessThan)" in fired.explanation
        assert "42.5..88.1 < 90 (WordBlockConfidenceLessThan)" in fired.explanation

    def test_explanations_never_quote_document_text(self) -> None:
        rules = load_rules(
            {
                "Conditions": [
                    key_check("*", KeyValueBlockConfidenceLessThan=100),
                    missing("Ship to"),
                    mod("*", ConfidenceGreaterThan=0),
                ]
            }
        )
        for prediction in (LOW_TOTAL, CONFIDENT, ALIAS_MIXED, SUGGESTIVE):
            texts = {b["Text"] for b in prediction.get("Blocks", []) if "Text" in b}
            texts |= {lbl["Name"] for lbl in prediction.get("ModerationLabels", [])}
            words = {t for t in texts if len(t) >= 3}  # skip ":" and the like
            assert words
            for fired in evaluate(rules, prediction, request_id="x").fired:
                for word in words:
                    assert word not in fired.explanation, (word, fired.explanation)
