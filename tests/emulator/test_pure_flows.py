"""Unit tests of the pure parts added for SageMaker flows and the wire: registry lifecycle
and paging (injected clock), timestamp formats, perturbed reviewer answers, strict keys."""

from __future__ import annotations

import random

import pytest

from a2i_emulator.flows import FlowDefinition, FlowRegistry, InUseError, NotFoundError
from a2i_emulator.reviewers import AnswerModel, ReviewerSpec
from a2i_emulator.tokens import TokenCodec, TokenError
from a2i_emulator.wire import format_timestamp


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _flow(name: str, created: float, active_after: float) -> FlowDefinition:
    return FlowDefinition(
        name=name,
        arn=f"arn:aws:sagemaker:us-east-1:123456789012:flow-definition/{name}",
        output_s3_uri="s3://b/p",
        bucket="b",
        prefix="p",
        role_arn="arn:aws:iam::123456789012:role/r",
        creation_time=created,
        active_after=active_after,
    )


def test_flow_lifecycle_initializing_active_deleting_gone() -> None:
    clock = Clock()
    flows = FlowRegistry("Flow definition", TokenCodec(b"k"), clock, deletion_seconds=2.0)
    flow = flows.add(_flow("a", clock.now, clock.now + 1.0))
    assert flows.status(flow) == "Initializing"
    with pytest.raises(InUseError):
        flows.add(_flow("a", clock.now, clock.now))
    clock.now += 1.0
    assert flows.status(flow) == "Active"
    assert flows.by_arn(flow.arn) is flow
    assert flows.by_arn(flow.arn + "x") is None
    flows.delete("a")
    assert flows.status(flow) == "Deleting"
    with pytest.raises(InUseError):  # the name is still taken while Deleting
        flows.add(_flow("a", clock.now, clock.now))
    clock.now += 2.0
    with pytest.raises(NotFoundError):
        flows.get("a")
    assert len(flows) == 0
    flows.add(_flow("a", clock.now, clock.now))  # and free again afterwards


def test_flow_listing_pages_sorts_filters_and_binds_tokens() -> None:
    clock = Clock()
    flows = FlowRegistry("Flow definition", TokenCodec(b"k"), clock, deletion_seconds=0.0)
    for i in range(5):
        flows.add(_flow(f"f{i}", 100.0 + i, 0.0))
    page = flows.list(after=None, before=None, sort_order="Ascending", max_results=2,
                      next_token=None)  # fmt: skip
    assert [f.name for f in page.items] == ["f0", "f1"]
    assert page.next_token is not None
    rest = flows.list(after=None, before=None, sort_order="Ascending", max_results=10,
                      next_token=page.next_token)  # fmt: skip
    assert [f.name for f in rest.items] == ["f2", "f3", "f4"]
    assert rest.next_token is None
    desc = flows.list(after=101.0, before=103.0, sort_order="Descending", max_results=10,
                      next_token=None)  # fmt: skip
    assert [f.name for f in desc.items] == ["f3", "f2", "f1"]
    with pytest.raises(TokenError):  # a token of another query
        flows.list(after=None, before=None, sort_order="Descending", max_results=2,
                   next_token=page.next_token)  # fmt: skip


def test_timestamp_formats_follow_the_model_names() -> None:
    assert format_timestamp(1772445912.0034, "iso8601") == "2026-03-02T10:05:12.003Z"
    assert format_timestamp(1772445912.0034, "unixTimestamp") == 1772445912.003
    assert format_timestamp(1772445912.0, "rfc822") == "Mon, 02 Mar 2026 10:05:12 GMT"


def test_perturbed_answers_move_numbers_and_keep_their_form() -> None:
    model = AnswerModel.from_json(
        {"copy": {"total": "t", "n": "n"}, "perturb": {"total": {"p": 1, "relative": 0.1},
                                                         "n": {"p": 1, "relative": 0.1}}}
    )  # fmt: skip
    rng = random.Random(3)
    for _ in range(50):
        content = model.answer_content({"t": "1,000.00", "n": 200}, rng)
        total = float(content["total"])
        assert content["total"] == f"{total:.2f}"
        assert 900 <= total <= 1100
        assert total != 1000.0
        assert 180 <= content["n"] <= 220
    never = AnswerModel.from_json({"copy": {"total": "t"}, "perturb": {"total": {"p": 0}}})
    assert never.answer_content({"t": "5.00"}, rng) == {"total": "5.00"}


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"answers": {"perturb": {"total": {"p": 2}}}}, "probability"),
        ({"answers": {"perturb": {"total": {"p": 0.5, "relative": 0}}}}, "relative"),
        ({"answers": {"perturb": {"total": {"p": 0.5, "rel": 1}}}}, "unknown key 'rel'"),
        ({"answers": {"copy_from": {}}}, "unknown key 'copy_from' in answers"),
        ({"mode": "auto", "delay": {"distribution": "uniform", "low": 1}}, "delay.high"),
    ],
)
def test_reviewer_specs_refuse_what_nobody_reads(spec: dict[str, object], fragment: str) -> None:
    with pytest.raises((ValueError, TypeError), match=fragment):
        ReviewerSpec.from_json(spec)
