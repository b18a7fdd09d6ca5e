"""Property tests of ``a2i_worker.events.parse_event``: whatever arrives on the events
queue, the parser answers with a parsed event or ``EventParseError``, nothing else.

A crash in the parser would leave an event to be redelivered forever instead of going to
the events DLQ with a reason. The message parser and the rules engine have their own
property tests under tests/unit.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from a2i_worker.events import (
    A2I_DETAIL_TYPE,
    EventParseError,
    GroundTruthEvent,
    LoopStatusEvent,
    OtherSageMakerEvent,
    parse_event,
)

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**320),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
timestamps = st.one_of(
    json_values,
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.isoformat() + "+23:59"),
    st.datetimes().map(lambda d: d.isoformat() + "-23:59"),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
)
statuses = st.one_of(
    st.sampled_from(["InProgress", "Stopping", "Stopped", "Completed", "Failed"]), json_values
)


@st.composite
def a2i_envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed A2I status events with any field possibly replaced by junk."""
    detail: dict[str, Any] = {
        "creationTime": draw(timestamps),
        "humanLoopName": draw(st.one_of(st.text(min_size=1, max_size=40), json_values)),
        "humanLoopArn": draw(st.one_of(st.text(max_size=40), json_values)),
        "flowDefinitionArn": draw(st.one_of(st.text(max_size=40), json_values)),
        "humanLoopStatus": draw(statuses),
        "failureCode": draw(st.one_of(st.none(), st.text(max_size=10), json_values)),
        "failureReason": draw(st.one_of(st.none(), st.text(max_size=10), json_values)),
        "humanLoopOutput": draw(
            st.one_of(st.fixed_dictionaries({"outputS3Uri": json_values}), json_values)
        ),
    }
    for key in draw(st.lists(st.sampled_from(sorted(detail)), max_size=3)):
        detail.pop(key, None)
    return {
        "version": "0",
        "id": draw(st.one_of(st.uuids().map(str), json_values)),
        "detail-type": draw(
            st.one_of(
                st.just(A2I_DETAIL_TYPE),
                st.just("SageMaker Ground Truth Labeling Job State Change"),
                st.text(max_size=20),
                json_values,
            )
        ),
        "source": draw(st.sampled_from(["aws.sagemaker", "aws.sagemaker", "aws.s3"])),
        "time": draw(timestamps),
        "resources": draw(json_values),
        "detail": draw(st.one_of(st.just(detail), st.just(detail), json_values)),
    }


def _parse(body: str | bytes) -> object:
    try:
        return parse_event(body)
    except EventParseError as exc:
        if not exc.reason:
            raise AssertionError("EventParseError without a reason") from exc
        return exc


def _dumps(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True)


@FUZZ
@given(st.text(max_size=300))
def test_any_text(body: str) -> None:
    _parse(body)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(body: bytes) -> None:
    _parse(body)


@FUZZ
@given(json_values)
def test_any_json(doc: Any) -> None:
    _parse(_dumps(doc))


@FUZZ
@given(a2i_envelopes())
def test_event_shaped_junk(envelope: dict[str, Any]) -> None:
    out = _parse(_dumps(envelope))
    assert isinstance(
        out, EventParseError | LoopStatusEvent | GroundTruthEvent | OtherSageMakerEvent
    )
    if isinstance(out, LoopStatusEvent):
        assert out.update.loop_name
        assert out.update.status in {"InProgress", "Stopping", "Stopped", "Completed", "Failed"}
        assert out.event_time.tzinfo is not None


def test_known_crashers_are_parse_errors() -> None:
    """Inputs that once escaped as TypeError/ValueError/OverflowError (found by the above)."""
    base = {
        "source": "aws.sagemaker",
        "detail-type": A2I_DETAIL_TYPE,
        "detail": {"humanLoopName": "x", "humanLoopStatus": "Completed"},
    }
    crashers = [
        _dumps(base | {"detail": {"humanLoopName": "x", "humanLoopStatus": ["Completed"]}}),
        _dumps(base | {"detail": {"humanLoopName": "x", "humanLoopStatus": {"a": 1}}}),
        _dumps(base | {"time": 10**400}),
        _dumps(base | {"time": "0001-01-01T00:00:00+01:00"}),
        _dumps(base | {"time": "9999-12-31T23:59:59-01:00"}),
        '{"source":"aws.sagemaker","time":' + "1" * 5000 + "}",
    ]
    for body in crashers:
        assert isinstance(_parse(body), EventParseError), body[:80]
