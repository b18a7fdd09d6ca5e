"""Bad input through a running worker: one ``rejected`` result each, with the precise
code; the original kept in the requests DLQ; the worker keeps going.

The corpus (tests/data/bad_messages, codes in index.json) is sent as it is wherever SQS
can carry it. SQS message bodies are Unicode text of XML characters, at most 256 KiB:
entries that are not UTF-8, or hold NUL and other characters outside that set, or are
empty, cannot be sent at all; they are listed with the reason and covered by the unit
tests of the parser. Their text equivalents that SQS does accept (mojibake, U+FFFD,
escaped surrogates, C1 controls) are sent instead.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from a2i_emulator.control import EmulatorControl
from a2i_worker.local.endpoints import StackEndpoints
from helpers import wait_until

sys.path.append(str(Path(__file__).parents[1] / "integration"))
from harness import running_worker

CORPUS = Path(__file__).parents[1] / "data" / "bad_messages"
SQS_MAX_BODY = 262_144
# Characters SQS accepts in a message body (XML 1.0 characters).
_SQS_TEXT = re.compile("^[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+$")


def sqs_carriable(raw: bytes) -> tuple[str | None, str]:
    """(body, "") if SQS can carry ``raw`` unchanged, else (None, why not)."""
    if len(raw) > SQS_MAX_BODY:
        return None, "over SQS's 256 KiB body limit"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8: SQS bodies are Unicode text"
    if not text:
        return None, "SQS refuses an empty body"
    if not _SQS_TEXT.match(text):
        return None, "holds characters SQS refuses (NUL, controls, U+FFFE/FFFF)"
    return text, ""


def _ok(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": f"fine-{i}",
        "route": "main",
        "input": {"confidence": 0.95, "label": "cat"},
        **extra,
    }


def extra_cases(bucket: str) -> dict[str, tuple[str, str]]:
    """Name → (body, expected code) beyond the corpus, including text SQS does accept."""
    req = {"route": "main", "input": {"confidence": 0.1}}

    def body(rid: str, **fields: Any) -> str:
        return json.dumps({"request_id": rid, **req, **fields})

    return {
        "inline rules, unknown condition type": (
            body("x-rules-1", rules={"Conditions": [{"ConditionType": "Nope"}]}),
            "invalid_rules",
        ),
        "inline rules, nesting too deep": (
            body(
                "x-rules-2",
                rules={
                    "Conditions": [
                        {"And": [{"Or": [{"And": [{"ConditionType": "Sampling"}] * 2}] * 2}] * 2}
                    ]
                },
            ),
            "invalid_rules",
        ),
        "inline rules, Conditions not a list": (
            body("x-rules-3", rules={"Conditions": "all"}),
            "invalid_rules",
        ),
        "huge integer in prediction": (
            '{"request_id":"x-num-1","route":"main","input":{},"prediction":' + "9" * 5000 + "}",
            "invalid_number",
        ),
        "NaN in input": (
            '{"request_id":"x-num-2","route":"main","input":{"c":NaN}}',
            "invalid_number",
        ),
        "1e999 in metadata": (
            '{"request_id":"x-num-3","route":"main","input":{},"metadata":{"a":1e999}}',
            "invalid_number",
        ),
        "65 levels of input": (
            '{"request_id":"x-deep-1","route":"main","input":'
            + '{"a":' * 64
            + "1"
            + "}" * 64
            + "}",
            "too_deep",
        ),
        "Latin-1 read as UTF-8 (mojibake) in a request_id with a control char": (
            '{"request_id":"caf\u00c3\u00a9\u0085","route":"main","input":{}}',
            "invalid_field",
        ),
        "U+FFFD replacement characters around the JSON": (
            "\ufffd\ufffd" + body("x-enc-2"),
            "not_json",
        ),
        "escaped lone surrogate in metadata": (
            '{"request_id":"x-uni-1","route":"main","input":{},"metadata":{"k":"\\udc00"}}',
            "invalid_unicode",
        ),
        "noncharacter U+FDD0 in request_id": (
            body("x-uni-2\ufdd0"),
            "invalid_field",
        ),
        "input_s3_uri to a missing object": (
            json.dumps(
                {
                    "request_id": "x-s3-1",
                    "route": "main",
                    "input_s3_uri": f"s3://{bucket}/inputs/missing.json",
                }
            ),
            "input_not_found",
        ),
        "input_s3_uri to an object over 3,145,728 characters": (
            json.dumps(
                {
                    "request_id": "x-s3-2",
                    "route": "main",
                    "input_s3_uri": f"s3://{bucket}/inputs/huge.json",
                }
            ),
            "input_too_large",
        ),
    }


#: Valid but unusual: these must NOT be rejected.
UNICODE_FINE = [
    _ok(
        1,
        input={"t": "👩‍👩‍👧 e\u0301 \u202eRTL\u202c \u05e9\u05dc\u05d5\u05dd", "confidence": 0.95},
    ),
    _ok(2, metadata={"k\u00e9y": "\U0010fffd", "n": 1e308, "z": -0.0}),
    _ok(3, request_id="fine-3 with spaces and ümlauts ✓"),
]


async def test_bad_input_is_rejected_precisely_and_kept(
    env: StackEndpoints, emulator: EmulatorControl, tmp_path: Path
) -> None:
    index: dict[str, dict[str, str]] = json.loads((CORPUS / "index.json").read_text())
    sent: dict[str, tuple[str, str]] = {}
    skipped: dict[str, str] = {}
    for name, entry in sorted(index.items()):
        text, why = sqs_carriable((CORPUS / name).read_bytes())
        if text is None:
            skipped[name] = why
        else:
            sent[name] = (text, entry["code"])
    sent |= extra_cases(env.output_bucket)
    bodies = [b for b, _ in sent.values()]
    assert len(set(bodies)) == len(bodies), "distinct bodies: one result each"
    # Everything the corpus holds is either sent or skipped with a reason.
    assert set(index) == {n for n in sent if n in index} | set(skipped)
    assert len(skipped) < len(index) // 3, skipped

    async with running_worker(env, tmp_path, rules=None) as h:
        await h.aws.s3.put_object(
            Bucket=env.output_bucket,
            Key="inputs/huge.json",
            Body=json.dumps({"blob": "x" * 3_145_728}).encode(),
        )
        await h.send([_ok(0)])
        await h.results.wait_for(1, within=30)
        await h.send(bodies)
        await h.send(UNICODE_FINE)
        await h.send([_ok(4)])

        def rejected() -> list[dict[str, Any]]:
            return [d for d in h.results.deliveries if d["outcome"] == "rejected"]

        async def all_in() -> bool:
            while await h.results.poll():
                pass
            return len(rejected()) >= len(sent) and len(h.results.by_request) >= 1 + 4

        await wait_until(all_in, 60, interval=0.2, message=f"{len(sent)} rejections")
        dlq = await h.dlq_messages(env.requests_dlq_url)
        assert await h.queue_depth(env.requests_queue_url) == (0, 0)

    rej = rejected()
    assert len({r["result_id"] for r in rej}) == len(sent), "exactly one result per message"
    assert all(r["reason"] for r in rej), "every rejection says why"
    assert Counter(r["rejection_code"] for r in rej) == Counter(c for _, c in sent.values())
    # The original, unchanged, in the DLQ, with the code as an attribute.
    by_body = {m["Body"]: m for m in dlq}
    assert len(dlq) == len(sent)
    for name, (body, code) in sent.items():
        kept = by_body.get(body)
        assert kept is not None, f"{name}: original not in the DLQ"
        got = kept["MessageAttributes"]["a2i_worker_rejection_code"]["StringValue"]
        assert got == code, f"{name}: DLQ says {got}, expected {code}"
    # The worker kept going, and valid-but-odd Unicode was not rejected.
    fine = {d["request_id"]: d["outcome"] for d in h.results.deliveries}
    for i in range(5):
        rid = "fine-3 with spaces and ümlauts ✓" if i == 3 else f"fine-{i}"
        assert fine.get(rid) == "not_activated", (rid, fine.get(rid))
