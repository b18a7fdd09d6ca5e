"""Properties: evaluate never raises on any JSON, and And/Or behave like logic."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a2i_worker.rules import Decision, evaluate, explain, load_rules


def simple(ctype: str, **params: Any) -> dict[str, Any]:
    return {"ConditionType": ctype, "ConditionParameters": params}


EVERY_TYPE: list[dict[str, Any]] = [
    simple("ModerationLabelConfidenceCheck", ModerationLabelName="*", ConfidenceLessThan=80),
    simple("ModerationLabelConfidenceCheck", ModerationLabelName="a", ConfidenceGreaterThan=10),
    simple(
        "ImportantFormKeyConfidenceCheck",
        ImportantFormKey="*",
        KeyValueBlockConfidenceLessThan=90,
        WordBlockConfidenceLessThan=90,
    ),
    simple(
        "ImportantFormKeyConfidenceCheck",
        ImportantFormKey="a",
        ImportantFormKeyAliases=["b"],
        WordBlockConfidenceGreaterThanEquals=1,
    ),
    simple("MissingImportantFormKey", ImportantFormKey="a", ImportantFormKeyAliases=["b:"]),
    simple("Sampling", RandomSamplingPercentage=50),
    simple("ConfidenceCheck", Path="a", ConfidenceLessThan=0.5),
    simple(
        "ConfidenceCheck",
        Path="b[*].c",
        Quantifier="all",
        ConfidenceGreaterThan=0,
        IfMissing="review",
    ),
    simple("ConfidenceCheck", Path="length(a)", ConfidenceEquals=2),
    simple("LabelCheck", Path="a", LabelIn=["a", 1]),
    simple("LabelCheck", Path="b[].c", LabelNotIn=["a"], Quantifier="all", IfMissing="review"),
    simple("MissingField", Path="b"),
    simple("ModelDisagreement", Paths=["a", "b"], Tolerance=0.5),
    simple("ModelDisagreement", LeftPath="a", RightPath="b[0]", IfMissing="review"),
]

keys = st.sampled_from(
    [
        "a",
        "b",
        "c",
        "Name",
        "Confidence",
        "Blocks",
        "ModerationLabels",
        "Id",
        "BlockType",
        "EntityTypes",
        "Relationships",
        "Type",
        "Ids",
        "Text",
    ]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["a", "b", "b:", "*", "KEY", "KEY_VALUE_SET", "WORD", "VALUE", "CHILD"])
    | st.text(max_size=5)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(keys | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)


def textract_like() -> st.SearchStrategy[Any]:
    ids = st.sampled_from(["1", "2", "3", "4"])
    block = st.fixed_dictionaries(
        {"Id": ids, "BlockType": st.sampled_from(["KEY_VALUE_SET", "WORD", "LINE"])},
        optional={
            "EntityTypes": st.lists(st.sampled_from(["KEY", "VALUE"]), max_size=2),
            "Confidence": st.floats(0, 100) | scalars,
            "Text": st.sampled_from(["a", "b", "b:", "A "]) | scalars,
            "Relationships": st.lists(
                st.fixed_dictionaries(
                    {
                        "Type": st.sampled_from(["CHILD", "VALUE"]),
                        "Ids": st.lists(ids | scalars, max_size=3),
                    }
                ),
                max_size=2,
            ),
        },
    )
    return st.fixed_dictionaries({"Blocks": st.lists(block, max_size=6)})


def rekognition_like() -> st.SearchStrategy[Any]:
    label = st.fixed_dictionaries(
        {},
        optional={
            "Name": st.sampled_from(["a", "A", "b"]) | scalars,
            "Confidence": st.floats(0, 100) | scalars,
            "ParentName": st.sampled_from(["", "a"]),
        },
    )
    return st.fixed_dictionaries({"ModerationLabels": st.lists(label, max_size=4)})


predictions = json_values | textract_like() | rekognition_like()
ALL_RULES = load_rules({"Conditions": EVERY_TYPE})
SINGLE = [load_rules({"Conditions": [c]}) for c in EVERY_TYPE]
conditions = st.sampled_from(range(len(EVERY_TYPE)))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prediction=predictions, request_id=st.text(max_size=8))
def test_evaluate_and_explain_never_raise(prediction: Any, request_id: str) -> None:
    decision = evaluate(ALL_RULES, prediction, request_id=request_id)
    assert isinstance(decision, Decision)
    assert decision.activated == bool(decision.fired)
    assert all(not f.explanation.startswith("could not be evaluated") for f in decision.fired)
    assert isinstance(explain(ALL_RULES, prediction, request_id=request_id), str)


def holds(i: int, prediction: Any, rid: str) -> bool:
    return evaluate(SINGLE[i], prediction, request_id=rid).activated


NON_SAMPLING = [i for i, c in enumerate(EVERY_TYPE) if c["ConditionType"] != "Sampling"]
deterministic = st.sampled_from(NON_SAMPLING)


@settings(deadline=None)
@given(i=deterministic, j=deterministic, prediction=predictions, rid=st.text(max_size=6))
def test_and_or_laws(i: int, j: int, prediction: Any, rid: str) -> None:
    a, b = EVERY_TYPE[i], EVERY_TYPE[j]
    hi, hj = holds(i, prediction, rid), holds(j, prediction, rid)
    or_ = evaluate(load_rules({"Conditions": [{"Or": [a, b]}]}), prediction, request_id=rid)
    and_ = evaluate(load_rules({"Conditions": [{"And": [a, b]}]}), prediction, request_id=rid)
    top = evaluate(load_rules({"Conditions": [a, b]}), prediction, request_id=rid)
    assert or_.activated == (hi or hj)
    assert and_.activated == (hi and hj)
    assert top.activated == (hi or hj)
    # Or reports exactly the members that held; And all members or none
    expected = [p for p, h in (("Conditions[0].Or[0]", hi), ("Conditions[0].Or[1]", hj)) if h]
    assert [f.path for f in or_.fired] == expected
    assert [f.path for f in top.fired] == [
        p.replace("Conditions[0].Or", "Conditions") for p in expected
    ]
    assert [f.path for f in and_.fired] == (
        ["Conditions[0].And[0]", "Conditions[0].And[1]"] if hi and hj else []
    )


@settings(deadline=None)
@given(i=conditions, j=conditions, prediction=predictions, rid=st.text(max_size=6))
def test_composites_are_consistent_with_their_fired_members(
    i: int, j: int, prediction: Any, rid: str
) -> None:
    # Sampling salts its draw with its path, so compare within one document only
    doc = {
        "Conditions": [
            {"Or": [EVERY_TYPE[i], EVERY_TYPE[j]]},
            {"And": [EVERY_TYPE[i], EVERY_TYPE[j]]},
        ]
    }
    decision = evaluate(load_rules(doc), prediction, request_id=rid)
    paths = {f.path for f in decision.fired}
    or_held = bool(paths & {"Conditions[0].Or[0]", "Conditions[0].Or[1]"})
    and_held = {"Conditions[1].And[0]", "Conditions[1].And[1]"} <= paths
    assert decision.activated == (or_held or and_held)
    assert paths <= {
        "Conditions[0].Or[0]",
        "Conditions[0].Or[1]",
        "Conditions[1].And[0]",
        "Conditions[1].And[1]",
    }
    assert len(paths & {"Conditions[1].And[0]", "Conditions[1].And[1]"}) in (0, 2)


@settings(deadline=None)
@given(i=conditions, prediction=predictions, rid=st.text(max_size=6))
def test_nested_composites_match_their_flat_logic(i: int, prediction: Any, rid: str) -> None:
    c = EVERY_TYPE[i]
    missing_a = simple("MissingField", Path="a")
    hm = evaluate(load_rules({"Conditions": [missing_a]}), prediction, request_id=rid).activated
    nested = {"Or": [{"And": [c, missing_a]}, {"And": [missing_a, missing_a]}]}
    got = evaluate(load_rules({"Conditions": [nested]}), prediction, request_id=rid).activated
    if c["ConditionType"] != "Sampling":
        assert got == ((holds(i, prediction, rid) and hm) or hm)
    else:
        assert got == hm
