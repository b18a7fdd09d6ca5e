"""Result bodies always fit SQS: too-large results drop the bulky parts, never the result."""

from __future__ import annotations

import json
from typing import Any

from a2i_worker.results import SQS_MAX_BYTES, sqs_body


def _result(**extra: Any) -> dict[str, Any]:
    return {
        "result_id": "res-1",
        "request_id": "r-1",
        "outcome": "completed",
        "output_uri": "s3://b/k/output.json",
        "prediction": {"p": 1},
        "human_answers": [{"answerContent": {"a": 1}}],
        "metadata": {"m": 1},
        "truncated": False,
        **extra,
    }


def test_small_result_is_sent_whole() -> None:
    body = json.loads(sqs_body(_result()))
    assert body["prediction"] == {"p": 1}
    assert body["truncated"] is False


def test_prediction_can_be_left_out_by_configuration() -> None:
    body = json.loads(sqs_body(_result(), include_prediction=False))
    assert body["prediction"] is None
    assert body["human_answers"] == [{"answerContent": {"a": 1}}]


def test_oversize_answers_are_truncated_with_the_output_uri_kept() -> None:
    big = [{"answerContent": {"text": "x" * 1000}} for _ in range(400)]
    text = sqs_body(_result(human_answers=big))
    assert len(text.encode()) < SQS_MAX_BYTES
    body = json.loads(text)
    assert body["truncated"] is True
    assert body["human_answers"] == []
    assert body["output_uri"] == "s3://b/k/output.json"
    assert body["result_id"] == "res-1"


def test_oversize_metadata_is_dropped_last() -> None:
    text = sqs_body(_result(metadata={"blob": "y" * 300_000}))
    assert len(text.encode()) < SQS_MAX_BYTES
    assert json.loads(text)["metadata"] == {}
