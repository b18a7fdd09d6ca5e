"""Unit tests of the emulator's pure parts: quotas, store, reviewers, faults, validation."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2i_emulator.faults import FaultConfig
from a2i_emulator.publisher import output_key, split_s3_uri, status_change_detail
from a2i_emulator.quotas import Quotas, RateSpec, TokenBucket
from a2i_emulator.reviewers import ReviewerSpec, iso_ms
from a2i_emulator.store import (
    ConflictError,
    LoopStore,
    NameReusedError,
    NotFoundError,
    NotTerminalError,
    TokenError,
)
from a2i_emulator.validation import OPERATIONS, RequestValidationError, parse_request

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/f"
OTHER_FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/g"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- quotas ------------------------------------------------------------------------------------


def test_bucket_admits_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateSpec(rate=10, burst=5), clock)
    assert [bucket.try_acquire() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1  # one token at 10/s
    assert bucket.try_acquire()
    assert not bucket.try_acquire()
    clock.now += 100  # refill caps at burst
    assert sum(bucket.try_acquire() for _ in range(10)) == 5


def test_bucket_step_change_applies_to_next_call() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateSpec(rate=100, burst=100), clock)
    bucket.configure(RateSpec(rate=1, burst=2))  # burst lowered: tokens clamped at once
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
    clock.now += 0.5
    assert not bucket.try_acquire()  # new rate (1/s) is in force
    clock.now += 0.5
    assert bucket.try_acquire()
    bucket.configure(RateSpec(rate=1000, burst=1000))  # raising does not grant a burst
    assert not bucket.try_acquire()
    clock.now += 0.0105
    assert sum(bucket.try_acquire() for _ in range(20)) == 10


def test_quotas_report_tokens_left_per_operation() -> None:
    clock = FakeClock()
    quotas = Quotas(clock)
    assert quotas.tokens("StartHumanLoop") is None  # unlimited
    quotas.set_rate("StartHumanLoop", RateSpec(rate=10, burst=5))
    assert quotas.tokens("StartHumanLoop") == 5.0
    assert quotas.allow("StartHumanLoop")
    assert quotas.allow("StartHumanLoop")
    assert quotas.tokens("StartHumanLoop") == 3.0
    clock.now += 0.15  # 1.5 tokens at 10/s
    assert quotas.tokens("StartHumanLoop") == pytest.approx(4.5)
    clock.now += 10  # capped at the burst
    assert quotas.tokens("StartHumanLoop") == 5.0


def test_quotas_update_validates_whole_patch_before_applying() -> None:
    quotas = Quotas(FakeClock())
    with pytest.raises(ValueError, match="unknown operation"):
        quotas.update({"max_in_progress": 3, "rates": {"Nope": None}}, OPERATIONS)
    assert quotas.max_in_progress is None
    quotas.update(
        {"max_in_progress": 2, "rates": {"StartHumanLoop": {"rate": 1, "burst": 1}}}, OPERATIONS
    )
    assert quotas.over_cap(2)
    assert not quotas.over_cap(1)
    assert quotas.allow("StartHumanLoop")
    assert not quotas.allow("StartHumanLoop")
    assert quotas.allow("DescribeHumanLoop")  # other operations unlimited
    quotas.update({"rates": {"StartHumanLoop": None}}, OPERATIONS)
    assert all(quotas.allow("StartHumanLoop") for _ in range(100))
    with pytest.raises(ValueError, match="rate must be > 0"):
        quotas.update({"rates": {"StartHumanLoop": {"rate": 0, "burst": 1}}}, OPERATIONS)


# -- store -------------------------------------------------------------------------------------


def _store() -> LoopStore:
    return LoopStore("us-east-1", "123456789012", b"k")


def test_store_names_idempotency_conflict_and_reuse() -> None:
    store = _store()
    loop, created = store.start("a", FLOW, '{"x":1}', None, 10.0)
    assert created
    assert loop.arn == "arn:aws:sagemaker:us-east-1:123456789012:human-loop/a"
    again, created = store.start("a", FLOW, '{"x":1}', None, 11.0)
    assert again is loop
    assert not created
    assert store.idempotent_repeats == 1
    for flow, content, classifiers in [
        (FLOW, '{"x":2}', None),
        (OTHER_FLOW, '{"x":1}', None),
        (FLOW, '{"x":1}', ("FreeOfAdultContent",)),
    ]:
        with pytest.raises(ConflictError):
            store.start("a", flow, content, classifiers, 12.0)
    assert store.stop("a")
    assert store.open_loops == 1
    with pytest.raises(ConflictError):  # Stopping is still active
        store.start("a", FLOW, '{"x":2}', None, 12.0)
    assert store.finish("a", "Stopped") is loop
    with pytest.raises(NameReusedError):
        store.start("a", FLOW, '{"x":1}', None, 13.0)
    store.delete("a")
    with pytest.raises(NotFoundError):
        store.get("a")
    with pytest.raises(NameReusedError):
        store.start("a", FLOW, '{"x":1}', None, 13.0)
    assert store.starts_per_name == {"a": 1}
    assert store.max_starts_per_name == 1


def test_store_terminal_status_never_moves_and_delete_needs_terminal() -> None:
    store = _store()
    store.start("a", FLOW, "{}", None, 1.0)
    with pytest.raises(NotTerminalError):
        store.delete("a")
    assert store.finish("a", "Completed", output_s3_uri="s3://b/k") is not None
    assert store.finish("a", "Failed", failure_code="Expired") is None
    assert not store.stop("a")
    assert store.get("a").status == "Completed"
    assert store.status_counts["Completed"] == 1
    assert store.open_loops == 0


def test_store_list_filters_sorts_and_pages() -> None:
    store = _store()
    for i in range(25):
        store.start(f"l{i}", FLOW if i % 5 else OTHER_FLOW, "{}", None, 100.0 + i)
    ours = [f"l{i}" for i in range(25) if i % 5]
    names: list[str] = []
    token = None
    while True:
        page = store.list(FLOW, sort_order="Ascending", max_results=7, next_token=token)
        names += [lp.name for lp in page.loops]
        token = page.next_token
        if token is None:
            break
    assert names == ours
    desc = store.list(FLOW, max_results=100)
    assert [lp.name for lp in desc.loops] == ours[::-1]
    assert desc.next_token is None
    window = store.list(FLOW, creation_time_after=105.0, creation_time_before=112.0)
    assert [lp.name for lp in window.loops] == ["l12", "l11", "l9", "l8", "l7", "l6"]
    store.finish("l6", "Completed")
    store.delete("l6")
    window = store.list(FLOW, creation_time_after=105.0, creation_time_before=112.0)
    assert "l6" not in [lp.name for lp in window.loops]


def test_store_list_tokens_are_validated() -> None:
    store = _store()
    for i in range(3):
        store.start(f"l{i}", FLOW, "{}", None, float(i))
    token = store.list(FLOW, max_results=1).next_token
    assert token is not None
    with pytest.raises(TokenError):
        store.list(FLOW, max_results=1, next_token="garbage")
    with pytest.raises(TokenError):  # bound to the query it came from
        store.list(FLOW, sort_order="Ascending", max_results=1, next_token=token)
    with pytest.raises(TokenError):
        store.list(FLOW, max_results=1, next_token=token[:-2] + "AA")
    forged = LoopStore("us-east-1", "123456789012", b"other-key")
    forged.start("x", FLOW, "{}", None, 0.0)
    forged.start("y", FLOW, "{}", None, 1.0)
    other_token = forged.list(FLOW, max_results=1).next_token
    assert other_token is not None
    with pytest.raises(TokenError):
        store.list(FLOW, max_results=1, next_token=other_token)


# -- reviewers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "expected_mean", "tolerance"),
    [
        ({"distribution": "fixed", "seconds": 2.5}, 2.5, 0.0),
        ({"distribution": "uniform", "low": 1, "high": 3}, 2.0, 0.05),
        ({"distribution": "exponential", "mean": 4}, 4.0, 0.2),
        ({"distribution": "lognormal", "mu": 0.0, "sigma": 0.5}, 1.1331, 0.04),
    ],
)
def test_delay_distributions(
    delay: dict[str, object], expected_mean: float, tolerance: float
) -> None:
    spec = ReviewerSpec.from_json({"delay": delay})
    rng = random.Random(3)
    samples = [spec.sample_delay(rng) for _ in range(5000)]
    assert min(samples) >= 0
    assert abs(statistics.fmean(samples) - expected_mean) <= tolerance
    again = [spec.sample_delay(random.Random(3)) for _ in range(1)]
    assert again[0] == samples[0]  # seeded: reproducible


def test_outcome_mix_follows_weights() -> None:
    spec = ReviewerSpec.from_json({"outcomes": {"Completed": 8, "Expired": 1, "InternalError": 1}})
    rng = random.Random(1)
    draws = [spec.sample_outcome(rng) for _ in range(10000)]
    assert abs(draws.count("Completed") / 10000 - 0.8) < 0.02
    assert abs(draws.count("Expired") / 10000 - 0.1) < 0.02


def test_answer_model_template_copy_flip() -> None:
    spec = ReviewerSpec.from_json(
        {
            "answers": {
                "template": {"is_correct": True, "label": "cat"},
                "copy": {"total": "invoice.total", "missing": "nope.nope"},
                "flip": {"is_correct": 0.3},
                "workers": 2,
            }
        }
    )
    rng = random.Random(5)
    input_obj = {"invoice": {"total": "12.00"}}
    answers = spec.human_answers(
        input_obj, created=1_700_000_000.0, finished=1_700_000_090.0, rng=rng
    )
    assert len(answers) == 2
    first = answers[0]
    assert set(first) == {
        "acceptanceTime",
        "submissionTime",
        "timeSpentInSeconds",
        "workerId",
        "workerMetadata",
        "answerContent",
    }
    assert first["answerContent"]["total"] == "12.00"
    assert "missing" not in first["answerContent"]
    assert first["acceptanceTime"] <= first["submissionTime"]
    assert first["workerMetadata"]["identityData"]["identityProviderType"] == "Cognito"
    flips = sum(not spec.answers.answer_content(input_obj, rng)["is_correct"] for _ in range(5000))
    assert abs(flips / 5000 - 0.3) < 0.03


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "sometimes"},
        {"delay": {"distribution": "gamma"}},
        {"delay": {"distribution": "uniform", "low": 3, "high": 1}},
        {"outcomes": {"Completed": 0}},
        {"outcomes": {"Won": 1}},
        {"answers": {"flip": {"x": 2}}},
        {"answers": []},
        [],
    ],
)
def test_reviewer_spec_rejects_bad_input(bad: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        ReviewerSpec.from_json(bad)


# -- faults ------------------------------------------------------------------------------------


def test_event_faults_probabilities() -> None:
    faults = FaultConfig().merged(
        {"events": {"drop": 0.2, "duplicate": 0.5, "delay": 0.25, "delay_seconds": [1, 2]}},
        OPERATIONS,
    )
    rng = random.Random(9)
    decisions = [faults.events.decide(rng) for _ in range(10000)]
    dropped = sum(d.drop for d in decisions)
    kept = [d for d in decisions if not d.drop]
    assert abs(dropped / 10000 - 0.2) < 0.02
    assert abs(sum(d.copies == 2 for d in kept) / len(kept) - 0.5) < 0.03
    delays = [d.delay_seconds for d in kept if d.delay_seconds]
    assert abs(len(delays) / len(kept) - 0.25) < 0.03
    assert all(1 <= x <= 2 for x in delays)


def test_operation_faults_merge_and_decide() -> None:
    faults = FaultConfig().merged(
        {"operations": {"StartHumanLoop": {"error_rate": 1.0, "latency_ms": [5, 10]}}}, OPERATIONS
    )
    decision = faults.for_operation("StartHumanLoop").decide(random.Random(1))
    assert decision.status == 500
    assert 0.005 <= decision.latency_seconds <= 0.010
    assert faults.for_operation("DescribeHumanLoop").inactive
    faults = faults.merged(
        {"operations": {"StartHumanLoop": {"error_rate": 0, "unavailable_rate": 1}}}, OPERATIONS
    )
    assert faults.for_operation("StartHumanLoop").decide(random.Random(1)).status == 503
    with pytest.raises(ValueError, match="probability"):
        faults.merged({"events": {"drop": 1.5}}, OPERATIONS)
    with pytest.raises(ValueError, match="unknown operation"):
        faults.merged({"operations": {"Foo": {}}}, OPERATIONS)


# -- publisher's pure helpers ------------------------------------------------------------------


def test_output_key_uses_creation_time_utc() -> None:
    created = 1772445761.512  # 2026-03-02T10:02:41.512Z
    assert iso_ms(created) == "2026-03-02T10:02:41.512Z"
    assert split_s3_uri("s3://review-output/a/b/") == ("review-output", "a/b")
    assert (
        output_key("a/b", "invoices", "loop-1", created)
        == "a/b/invoices/2026/03/02/10/02/41/loop-1/output.json"
    )
    assert output_key("", "f", "l", created) == "f/2026/03/02/10/02/41/l/output.json"
    with pytest.raises(ValueError, match="s3://"):
        split_s3_uri("https://x")


def test_status_change_detail_matches_documented_shape() -> None:
    store = _store()
    loop, _ = store.start("a", FLOW, "{}", None, 1772445761.512)
    store.finish("a", "Failed", failure_code="Expired", failure_reason="late")
    with open(
        Path(__file__).parents[1] / "data" / "aws" / "a2i-human-loop-status-change.json"
    ) as f:
        documented = json.load(f)["detail"]
    detail = status_change_detail(loop)
    assert set(detail) == set(documented)
    assert detail["humanLoopStatus"] == "Failed"
    assert detail["failureCode"] == "Expired"
    assert detail["creationTime"] == "2026-03-02T10:02:41.512Z"


# -- validation --------------------------------------------------------------------------------


def test_parse_request_deserializes_locations() -> None:
    params = parse_request(
        "ListHumanLoops",
        path_params={},
        query={
            "FlowDefinitionArn": FLOW,
            "MaxResults": "5",
            "CreationTimeAfter": "2026-03-02T10:02:41Z",
            "SortOrder": "Ascending",
        },
        body=b"",
    )
    assert params["MaxResults"] == 5
    assert params["CreationTimeAfter"].year == 2026
    for query, fragment in [
        ({"FlowDefinitionArn": FLOW, "MaxResults": "0"}, "MaxResults"),
        ({"FlowDefinitionArn": FLOW, "MaxResults": "x"}, "integer"),
        ({"FlowDefinitionArn": FLOW, "SortOrder": "Up"}, "SortOrder"),
        ({"FlowDefinitionArn": FLOW, "CreationTimeAfter": "yesterday"}, "timestamp"),
        ({"FlowDefinitionArn": "arn:aws:s3:::bucket"}, "pattern"),
        ({}, "FlowDefinitionArn"),
    ]:
        with pytest.raises(RequestValidationError, match=fragment):
            parse_request("ListHumanLoops", path_params={}, query=query, body=b"")


def test_parse_request_checks_patterns_and_lengths_in_bodies() -> None:
    good: dict[str, Any] = {
        "HumanLoopName": "a-1",
        "FlowDefinitionArn": FLOW,
        "HumanLoopInput": {"InputContent": "{}"},
    }
    assert parse_request("StartHumanLoop", path_params={}, query={}, body=json.dumps(good).encode())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"HumanLoopName": "Upper"}, "pattern"),
        ({"HumanLoopName": "a-"}, "pattern"),
        ({"HumanLoopName": "a\n"}, "pattern"),
        ({"HumanLoopName": "a" * 64}, "length less than or equal to 63"),
        ({"HumanLoopInput": {}}, "InputContent"),
        ({"HumanLoopInput": {"InputContent": 5}}, "type"),
        ({"DataAttributes": {"ContentClassifiers": ["Nope"]}}, "enum value set"),
    ]
    for patch, fragment in cases:
        with pytest.raises(RequestValidationError, match=fragment):
            parse_request(
                "StartHumanLoop",
                path_params={},
                query={},
                body=json.dumps({**good, **patch}).encode(),
            )
    with pytest.raises(RequestValidationError, match="JSON"):
        parse_request("StartHumanLoop", path_params={}, query={}, body=b"{nope")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(deadline=None)
@given(
    operation=st.sampled_from(OPERATIONS),
    name=st.text(max_size=80),
    body=st.one_of(st.binary(max_size=200), _json_values.map(lambda v: json.dumps(v).encode())),
    query=st.dictionaries(
        st.sampled_from(
            ["FlowDefinitionArn", "MaxResults", "CreationTimeAfter", "SortOrder", "NextToken"]
        ),
        st.text(max_size=40),
    ),
)
def test_validation_only_ever_raises_validation_errors(
    operation: str, name: str, body: bytes, query: dict[str, str]
) -> None:
    outcome: object
    try:
        outcome = parse_request(
            operation, path_params={"HumanLoopName": name}, query=query, body=body
        )
    except RequestValidationError as exc:
        outcome = exc.message
    assert isinstance(outcome, dict) or (isinstance(outcome, str) and outcome)
