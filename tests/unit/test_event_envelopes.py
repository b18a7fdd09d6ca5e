"""Status events as they reach the queue: straight from EventBridge, or through SNS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a2i_worker.events import EventParseError, LoopStatusEvent, parse_event

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "aws"  # copies of ../shared/formats
EVENT = json.loads((SAMPLE / "a2i-human-loop-status-change.json").read_text("utf-8"))


def _sns(message: str) -> str:
    """The JSON body SQS holds when an SNS topic delivers without raw message delivery."""
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "0b8f6a8e-0000-4000-8000-000000000001",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:a2i-status",
            "Message": message,
            "Timestamp": "2026-03-02T10:15:08.123Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def test_a_direct_event_and_the_same_event_through_sns_parse_alike() -> None:
    direct = parse_event(json.dumps(EVENT))
    wrapped = parse_event(_sns(json.dumps(EVENT)))
    assert isinstance(direct, LoopStatusEvent)
    assert wrapped == direct
    assert direct.update.status == "Completed"
    assert direct.update.output_uri is not None
    assert direct.update.output_uri.endswith("/output.json")


def test_an_sns_envelope_around_junk_says_where_the_junk_is() -> None:
    with pytest.raises(EventParseError, match="SNS notification's Message"):
        parse_event(_sns("{not json"))


def test_an_sns_envelope_is_unwrapped_once_only() -> None:
    with pytest.raises(EventParseError, match=r"source must be 'aws\.sagemaker'"):
        parse_event(_sns(_sns(json.dumps(EVENT))))


def test_an_event_that_has_a_type_key_of_its_own_is_not_taken_for_sns() -> None:
    doc = {**EVENT, "Type": "Notification", "Message": "x"}
    parsed = parse_event(json.dumps(doc))
    assert isinstance(parsed, LoopStatusEvent)
