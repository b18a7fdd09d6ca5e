"""Messages: parsing never raises anything but MessageRejected, never echoes values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a2i_worker.errors import PermanentError
from a2i_worker.messages import (
    MAX_INPUT_CHARS,
    MAX_MESSAGE_CHARS,
    Activation,
    ActivationReason,
    CancelRequest,
    MessageRejected,
    Outcome,
    ReviewRequest,
    ReviewResult,
    Timings,
    parse_message,
    request_fingerprint,
    result_id,
    serialize_input,
)

CORPUS = Path(__file__).parent.parent / "data" / "bad_messages"
INDEX: dict[str, dict[str, str]] = json.loads((CORPUS / "index.json").read_text("utf-8"))
MARKER = "PLANTED"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/invoices"


def body(**fields: Any) -> str:
    base: dict[str, Any] = {"request_id": "req-1", "route": "invoices", "input": {"x": 1}}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}, ensure_ascii=False)


def rejected(raw: str | bytes) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        parse_message(raw)
    return info.value


# ------------------------------------------------------------------ the corpus


def test_every_corpus_file_is_indexed() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "index.json"}
    assert files == set(INDEX)


@pytest.mark.parametrize("name", sorted(INDEX))
def test_corpus_message_is_rejected_with_its_code(name: str) -> None:
    exc = rejected((CORPUS / name).read_bytes())
    assert isinstance(exc, PermanentError)
    assert exc.code == INDEX[name]["code"], exc.reason
    assert MARKER not in exc.reason
    assert exc.reason.strip()


@pytest.mark.parametrize("name", sorted(INDEX))
def test_corpus_as_text_gives_the_same_code(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")  # what a careless caller might pass
    exc = rejected(text)
    assert MARKER not in exc.reason
    if INDEX[name]["code"] != "invalid_encoding":
        assert exc.code == INDEX[name]["code"]


# ------------------------------------------------------------------ sizes


def test_input_at_the_limit_is_accepted_and_one_more_is_rejected() -> None:
    overhead = len(serialize_input({"t": ""}))
    fits = {"t": "y" * (MAX_INPUT_CHARS - overhead)}
    assert len(serialize_input(fits)) == MAX_INPUT_CHARS
    req = parse_message(body(input=fits))
    assert isinstance(req, ReviewRequest)
    exc = rejected(body(input={"t": "y" * (MAX_INPUT_CHARS - overhead) + MARKER}))
    assert exc.code == "input_too_large"
    assert "input_s3_uri" in exc.reason
    assert exc.request_id == "req-1"


def test_input_limit_counts_characters_not_bytes() -> None:
    overhead = len(serialize_input({"t": ""}))
    fits = {"t": "é" * (MAX_INPUT_CHARS - overhead)}  # 2 bytes each in UTF-8
    assert isinstance(parse_message(body(input=fits).encode("utf-8")), ReviewRequest)


def test_metadata_too_large() -> None:
    exc = rejected(body(metadata={"m": MARKER * 10_000}))
    assert exc.code == "metadata_too_large"
    assert MARKER not in exc.reason


def test_message_too_large() -> None:
    exc = rejected(body(metadata={"m": "z" * MAX_MESSAGE_CHARS}))
    assert exc.code == "message_too_large"


# ------------------------------------------------------------------ accepted messages


def test_minimal_review_request_defaults() -> None:
    req = parse_message(body())
    assert isinstance(req, ReviewRequest)
    assert (req.version, req.type, req.request_id, req.route) == (1, "review", "req-1", "invoices")
    assert req.content_classifiers == []
    assert req.metadata == {}
    assert not req.has_prediction
    assert req.effective_prediction == {"x": 1}


def test_prediction_null_is_kept_apart_from_absent() -> None:
    req = parse_message(body(prediction=None))
    assert isinstance(req, ReviewRequest)
    assert req.has_prediction
    assert req.effective_prediction is None


def test_s3_input_without_prediction_has_no_effective_prediction() -> None:
    req = parse_message(
        body(input=..., input_s3_uri="s3://my-bucket/in/1.json", flow_definition_arn=ARN, route=...)
    )
    assert isinstance(req, ReviewRequest)
    assert req.input is None
    assert req.effective_prediction is None
    assert req.flow_definition_arn == ARN


def test_full_review_request() -> None:
    req = parse_message(
        body(
            prediction={"label": "cat", "score": 0.4},
            rules={"Conditions": []},
            content_classifiers=["FreeOfAdultContent", "FreeOfPersonallyIdentifiableInformation"],
            metadata={"trace": "t-1"},
            version=1,
            type="review",
        )
    )
    assert isinstance(req, ReviewRequest)
    assert req.effective_prediction == {"label": "cat", "score": 0.4}
    assert req.rules == {"Conditions": []}
    assert req.metadata == {"trace": "t-1"}


@pytest.mark.parametrize(
    "request_id",
    ["שלום-עולם", "مرحبا", "🙂🙂", "e\u0301", "with space", "a" * 256, "x", "日本語/ID:42"],
)
def test_printable_unicode_request_ids_are_accepted(request_id: str) -> None:
    req = parse_message(body(request_id=request_id))
    assert req.request_id == request_id


def test_bom_and_bytes_are_accepted() -> None:
    assert isinstance(parse_message(("\ufeff" + body()).encode("utf-8")), ReviewRequest)
    assert isinstance(parse_message("\ufeff" + body()), ReviewRequest)


def test_cancel() -> None:
    req = parse_message('{"type": "cancel", "request_id": "req-9"}')
    assert req == CancelRequest(type="cancel", request_id="req-9")


def test_paired_surrogate_escape_is_a_valid_emoji() -> None:
    req = parse_message(body(input=...)[:-1] + ', "input": {"t": "\\ud83d\\ude00"}}')
    assert isinstance(req, ReviewRequest)
    assert req.input == {"t": "😀"}


# ------------------------------------------------------------------ reasons and request ids


def test_unknown_field_suggests_the_right_name() -> None:
    exc = rejected(body(predicton={"a": MARKER}))
    assert exc.code == "unknown_field"
    assert "'predicton'" in exc.reason
    assert "did you mean 'prediction'" in exc.reason


def test_several_problems_are_all_named() -> None:
    exc = rejected(body(request_id="x\n", content_classifiers=[MARKER], input=[MARKER]))
    for field in ("request_id", "content_classifiers[0]", "input"):
        assert field in exc.reason
    assert MARKER not in exc.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (body(version=2), "req-1"),
        (body()[:-1] + ', "bad": NaN}', "req-1"),  # not JSON: found in the text
        ('{"request_id": "r-7", "x": \x01}', "r-7"),
        (body(request_id="bad\n"), None),
        (body(input={"request_id": "inner"})[:-1] + ", x}", None),  # two candidates: none
        ("[]", None),
    ],
)
def test_best_effort_request_id(raw: str, expected: str | None) -> None:
    assert rejected(raw).request_id == expected


def test_rejection_carries_no_value_even_for_type_errors() -> None:
    for field in ("request_id", "route", "input_s3_uri", "flow_definition_arn"):
        exc = rejected(body(**{field: MARKER + "\n" + MARKER}))
        assert MARKER not in exc.reason, field
        assert field in exc.reason


# ------------------------------------------------------------------ property tests

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
FIELDS = [
    "request_id",
    "route",
    "flow_definition_arn",
    "input",
    "input_s3_uri",
    "prediction",
    "rules",
    "content_classifiers",
    "metadata",
    "version",
    "type",
]
near_messages = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=12),
    json_values
    | st.sampled_from(
        [ARN, "invoices", "s3://b-1/k", "review", "cancel", 1, 2, ["FreeOfAdultContent"]]
    ),
    max_size=8,
)


def _parse_only_rejects(raw: str | bytes) -> None:
    outcome: object
    try:
        outcome = parse_message(raw)
    except MessageRejected as exc:
        outcome = exc
    if isinstance(outcome, MessageRejected):
        assert outcome.code
        assert outcome.reason
    else:
        assert isinstance(outcome, ReviewRequest | CancelRequest)


@given(st.text())
def test_arbitrary_text(raw: str) -> None:
    _parse_only_rejects(raw)


@given(st.binary())
def test_arbitrary_bytes(raw: bytes) -> None:
    _parse_only_rejects(raw)


@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _parse_only_rejects(json.dumps(value))


@given(near_messages)
def test_arbitrary_near_messages(value: dict[str, Any]) -> None:
    _parse_only_rejects(json.dumps(value))


@given(st.sampled_from(FIELDS), st.text(min_size=1, max_size=20))
def test_values_never_echoed(field: str, noise: str) -> None:
    planted = f"{MARKER}{noise}"
    raw = body(**{field: planted})
    reason = ""
    try:
        parse_message(raw)
    except MessageRejected as exc:
        reason = exc.reason
    assert planted not in reason


@given(st.text(alphabet='[]{}":, 0a', max_size=200))
def test_bracket_soup(raw: str) -> None:
    _parse_only_rejects(raw)


# ------------------------------------------------------------------ fingerprints and results


def _fp(**fields: Any) -> str:
    req = parse_message(body(**fields))
    assert isinstance(req, ReviewRequest)
    return request_fingerprint(req)


def test_fingerprint_is_stable_for_redelivery_and_key_order() -> None:
    a = '{"request_id": "r", "route": "x", "input": {"a": 1, "b": [1, 2]}}'
    b = '{"input": {"b": [1, 2], "a": 1}, "route": "x", "request_id": "r"}'
    fa, fb = (request_fingerprint(parse_message(s)) for s in (a, b))  # type: ignore[arg-type]
    assert fa == fb
    assert len(fa) == 64


def test_fingerprint_ignores_metadata_and_classifier_order() -> None:
    assert _fp(metadata={"trace": 1}) == _fp(metadata={"trace": 2})
    assert _fp(
        content_classifiers=["FreeOfAdultContent", "FreeOfPersonallyIdentifiableInformation"]
    ) == _fp(content_classifiers=["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"])


@pytest.mark.parametrize(
    "change",
    [
        {"input": {"x": 2}},
        {"input": {"x": 1.0}},
        {"prediction": {"x": 1}},
        {"prediction": None},
        {"rules": {"Conditions": []}},
        {"content_classifiers": ["FreeOfAdultContent"]},
        {"route": "other"},
        {"route": ..., "flow_definition_arn": ARN},
        {"input": ..., "input_s3_uri": "s3://bucket/k"},
    ],
)
def test_fingerprint_changes_with_what_is_reviewed(change: dict[str, Any]) -> None:
    assert _fp(**change) != _fp()


def test_result_id_is_stable_and_distinct() -> None:
    assert result_id("r", "completed", 1) == result_id("r", "completed", 1)
    ids = {result_id(r, o, a) for r in ("r", "s") for o in Outcome for a in (1, 2)}
    assert len(ids) == 2 * len(Outcome) * 2
    assert result_id("r", Outcome.COMPLETED, 1) == result_id("r", "completed", 1)


def test_review_result_serialization_round_trips() -> None:
    now = datetime(2026, 3, 2, 10, 15, 7, tzinfo=UTC)
    res = ReviewResult(
        result_id=result_id("req-1", Outcome.COMPLETED, 1),
        request_id="req-1",
        outcome=Outcome.COMPLETED,
        route="invoices",
        flow_definition_arn=ARN,
        loop_name="invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1",
        activation=Activation(
            activated=True,
            reasons=[ActivationReason(path="$.Conditions[0]", condition_type="T", explanation="e")],
        ),
        human_answers=[{"answerContent": {"ok": True}}],
        prediction={"score": 0.2},
        timings=Timings(received_at=now, finished_at=now, review_seconds=1.5),
        produced_at=now,
    )
    dumped = res.model_dump(mode="json")
    assert dumped["outcome"] == "completed"
    assert dumped["produced_at"] == "2026-03-02T10:15:07Z"
    assert ReviewResult.model_validate(dumped) == res
    assert json.loads(res.to_body()) == dumped
    assert res.to_body() == ReviewResult.model_validate_json(res.to_body()).to_body()


def test_rejected_result_without_request_id() -> None:
    res = ReviewResult(
        result_id=result_id("sqs:msg-1", Outcome.REJECTED, 1),
        request_id=None,
        outcome=Outcome.REJECTED,
        failure_code="not_json",
        reason="the body is not JSON",
        produced_at=datetime.now(UTC),
    )
    assert res.model_dump(mode="json")["request_id"] is None


def test_examples_in_docs_are_valid() -> None:
    import re

    doc = (Path(__file__).parents[2] / "docs" / "messages.md").read_text("utf-8")
    blocks = re.findall(r"```json\n(.*?)```", doc, re.DOTALL)
    # the first three examples tell one story: a request, its cancel, its result
    review, cancel, result = blocks[:3]
    req = parse_message(review)
    assert isinstance(req, ReviewRequest)
    assert isinstance(parse_message(cancel), CancelRequest)
    res = ReviewResult.model_validate_json(result)
    assert res.request_id == req.request_id
    assert res.result_id == result_id(req.request_id, res.outcome, res.attempt)
