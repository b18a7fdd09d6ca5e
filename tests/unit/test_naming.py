"""Loop names: A2I's pattern, determinism, attempts, and no collisions in practice."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from a2i_worker.naming import (
    DIGEST_LENGTH,
    MAX_ATTEMPT,
    MAX_LOOP_NAME_LENGTH,
    flow_slug,
    loop_name,
    parse_loop_name,
    stable_digest,
)

A2I_NAME = re.compile(r"[a-z0-9](-*[a-z0-9])*")
ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/invoices"

arns = st.builds(
    lambda name: f"arn:aws:sagemaker:us-east-1:123456789012:flow-definition/{name}",
    st.text(min_size=0, max_size=200),
)
request_ids = st.text(min_size=1, max_size=256)
attempts = st.integers(min_value=1, max_value=MAX_ATTEMPT)


def test_shape_matches_the_documented_example() -> None:
    name = loop_name(ARN, "req-1", 1)
    assert name.startswith("invoices-")
    assert name.endswith("-1")
    assert len(name.split("-")[1]) == DIGEST_LENGTH
    assert parse_loop_name(name) == ("invoices", name.split("-")[1], 1)


def test_known_value_is_stable_across_releases() -> None:
    # Pinned: changing the hash would orphan every loop already started in production.
    assert loop_name(ARN, "req-1", 1) == loop_name(ARN, "req-1", 1)
    assert stable_digest("a", "b") == "7jenj425qj47dyeg76dvzc2wd9"


@given(arn=arns, request_id=request_ids, attempt=attempts)
def test_any_input_gives_a_valid_a2i_name(arn: str, request_id: str, attempt: int) -> None:
    name = loop_name(arn, request_id, attempt)
    assert A2I_NAME.fullmatch(name)
    assert 1 <= len(name) <= MAX_LOOP_NAME_LENGTH
    parsed = parse_loop_name(name)
    assert parsed is not None
    assert parsed.attempt == attempt
    assert parsed.slug == flow_slug(arn)


@given(arn=arns, request_id=request_ids, a=attempts, b=attempts)
def test_deterministic_and_attempt_changes_the_name(
    arn: str, request_id: str, a: int, b: int
) -> None:
    assert loop_name(arn, request_id, a) == loop_name(arn, request_id, a)
    assert (loop_name(arn, request_id, a) == loop_name(arn, request_id, b)) == (a == b)


@given(request_id=request_ids, other=request_ids)
def test_different_request_ids_differ(request_id: str, other: str) -> None:
    if request_id != other:
        assert loop_name(ARN, request_id, 1) != loop_name(ARN, other, 1)


def test_length_prefix_removes_concatenation_ambiguity() -> None:
    assert stable_digest("ab", "c") != stable_digest("a", "bc")
    assert stable_digest("abc") != stable_digest("ab", "c")
    # Same slug, different ARN (region) -> different digest.
    other = ARN.replace("us-east-1", "eu-west-1")
    assert flow_slug(other) == flow_slug(ARN)
    assert loop_name(other, "r", 1) != loop_name(ARN, "r", 1)


@pytest.mark.parametrize("n", [20_000, pytest.param(200_000, marks=pytest.mark.soak)])
def test_no_collisions_among_many_ids(n: int) -> None:
    names = {loop_name(ARN, f"request-{i}", 1) for i in range(n)}
    assert len(names) == n


@pytest.mark.parametrize(
    ("flow_name", "slug"),
    [
        ("invoices", "invoices"),
        ("Invoices_V2..Prod", "invoices-v2-prod"),
        ("---", "loop"),
        ("", "loop"),
        ("ünïcødé", "n-c-d"),
        ("a" * 40, "a" * 32),
        ("a" * 31 + "-b", "a" * 31),
    ],
)
def test_slug_sanitizing(flow_name: str, slug: str) -> None:
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:flow-definition/{flow_name}"
    assert flow_slug(arn) == slug


def test_lone_surrogates_do_not_raise() -> None:
    assert A2I_NAME.fullmatch(loop_name(ARN, "\ud800x", 1))


@pytest.mark.parametrize("attempt", [0, -1, MAX_ATTEMPT + 1, True])
def test_attempt_out_of_range(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        loop_name(ARN, "r", attempt)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "invoices",
        "invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6",
        "invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-0",
        "invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1000",
        "invoices-7qk2m4d9x1c3v5b7n8p0r2t4wu-1",  # 'u' is not Crockford base32
        "invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1\n",
        "Invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1",
        "x" * 40 + "-7qk2m4d9x1c3v5b7n8p0r2t4w6-1",  # too long
    ],
)
def test_parse_rejects_foreign_names(name: str) -> None:
    assert parse_loop_name(name) is None


def test_parse_accepts_the_event_example() -> None:
    assert parse_loop_name("invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1") == (
        "invoices",
        "7qk2m4d9x1c3v5b7n8p0r2t4w6",
        1,
    )
