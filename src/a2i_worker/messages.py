"""Message formats: review requests and cancels in, review results out.

:func:`parse_message` is the only way a message body becomes a request. It raises
nothing but :class:`MessageRejected` (a :class:`PermanentError`), whose ``reason``
names the field(s) and the rule broken and never repeats a value from the message
(values may hold PII). Decisions, also in ``docs/messages.md``:

- Body: UTF-8; one leading byte-order mark is ignored; at most
  :data:`MAX_MESSAGE_CHARS` characters.
- JSON is strict RFC 8259: ``NaN``/``Infinity`` and numbers that overflow a float are
  rejected (``invalid_number``), integers are limited to 4,300 digits, an object with
  the same key twice is rejected (``duplicate_key``: parsers disagree on which wins, so
  a fingerprint could not be trusted), strings with unpaired UTF-16 surrogates
  (``"\\ud800"``) are rejected (``invalid_unicode``: they cannot be sent on as UTF-8),
  and nesting deeper than :data:`MAX_DEPTH` is rejected (``too_deep``).
- Unknown top-level fields are rejected (``unknown_field``): a typo such as
  ``"predicton"`` must not silently change what is reviewed. Their names are repeated in
  the reason only when they look like identifiers (short, ``[A-Za-z0-9_-]``).
- ``request_id``: 1-256 characters, every one printable in Python's sense
  (``str.isprintable()``): letters, digits, marks, punctuation, symbols and the ASCII
  space of any script are fine; control and format characters (newline, tab, zero-width
  space, right-to-left mark, BOM), separators other than the ASCII space, unassigned
  code points and surrogates are not.
- ``version`` defaults to 1; any other value is ``unsupported_version``.
"""

from __future__ import annotations

import collections
import difflib
import enum
import hashlib
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from a2i_worker.errors import PermanentError
from a2i_worker.naming import stable_digest

__all__ = [
    "CONTENT_CLASSIFIERS",
    "FLOW_DEFINITION_ARN_PATTERN",
    "MAX_ARN_LENGTH",
    "MAX_DEPTH",
    "MAX_INPUT_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_METADATA_CHARS",
    "MAX_REQUEST_ID_LENGTH",
    "ROUTE_NAME_PATTERN",
    "Activation",
    "ActivationReason",
    "CancelRequest",
    "ContentClassifier",
    "ContentClassifiers",
    "FlowDefinitionArn",
    "MessageRejected",
    "Outcome",
    "ReviewRequest",
    "ReviewResult",
    "RouteName",
    "Timings",
    "is_valid_request_id",
    "parse_message",
    "request_fingerprint",
    "result_id",
    "serialize_input",
]

#: A2I's InputContent limit (botocore model ``sagemaker-a2i-runtime``), in characters.
MAX_INPUT_CHARS: Final = 3_145_728
#: Whole message body limit: the input limit plus room for everything else.
MAX_MESSAGE_CHARS: Final = 4 * 1024 * 1024
#: ``metadata`` is passed through to the result; its compact JSON is bounded.
MAX_METADATA_CHARS: Final = 64 * 1024
MAX_REQUEST_ID_LENGTH: Final = 256
#: Deepest nesting of arrays/objects accepted anywhere in a message (top level = 1).
MAX_DEPTH: Final = 64
MAX_INT_DIGITS: Final = 4300

FLOW_DEFINITION_ARN_PATTERN: Final = re.compile(
    r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:flow-definition/.*"
)
MAX_ARN_LENGTH: Final = 1024
#: Route names, both in messages and in the routes file.
ROUTE_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-]{1,40}")

ContentClassifier = Literal["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]
CONTENT_CLASSIFIERS: Final = ("FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent")

_BOM = "\ufeff"


class MessageRejected(PermanentError):  # noqa: N818 (the name says what happened)
    """A message that can never be processed.

    ``request_id`` is the message's own ``request_id`` when one could be read and is
    itself valid, else ``None``.
    """

    def __init__(self, code: str, reason: str, request_id: str | None = None) -> None:
        super().__init__(code, reason)
        self.request_id = request_id


# --------------------------------------------------------------------------- fields


def is_valid_request_id(value: object) -> bool:
    """True for a str of 1-256 characters that are all printable (``str.isprintable``)."""
    return (
        isinstance(value, str) and 1 <= len(value) <= MAX_REQUEST_ID_LENGTH and value.isprintable()
    )


def _check_request_id(value: str) -> str:
    if not is_valid_request_id(value):
        raise PydanticCustomError(
            "invalid_request_id",
            "must be 1-256 printable characters (no control, format or "
            "zero-width characters, no line breaks or tabs)",
        )
    return value


def _check_arn(value: str) -> str:
    if len(value) > MAX_ARN_LENGTH or not FLOW_DEFINITION_ARN_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "invalid_arn",
            "must be a SageMaker flow definition ARN "
            "(arn:aws:sagemaker:<region>:<12-digit account>:flow-definition/<name>, "
            "at most 1024 characters)",
        )
    return value


def _check_route(value: str) -> str:
    if not ROUTE_NAME_PATTERN.fullmatch(value):
        raise PydanticCustomError(
            "invalid_route_name",
            "must be a route name: 1-128 characters of letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
        )
    return value


def _check_s3_uri(value: str) -> str:
    m = _S3_URI.fullmatch(value)
    ok = (
        m is not None
        and ".." not in m["bucket"]
        and len(m["key"].encode("utf-8", "surrogatepass")) <= 1024
        and m["key"].isprintable()
    )
    if not ok:
        raise PydanticCustomError(
            "invalid_s3_uri",
            "must be s3://<bucket>/<key>: a bucket name of 3-63 lower-case letters, digits, "
            "'.' and '-', and a non-empty key of printable characters, at most 1024 bytes",
        )
    return value


def serialize_input(obj: Any) -> str:
    """The compact JSON sent to A2I as InputContent; its length is what the limit checks."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _check_input(value: dict[str, Any]) -> dict[str, Any]:
    if len(serialize_input(value)) > MAX_INPUT_CHARS:
        raise PydanticCustomError(
            "input_too_large",
            "serialized compact JSON is longer than A2I's 3,145,728-character InputContent "
            "limit; put the payload in S3 and send input_s3_uri instead",
        )
    return value


def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(serialize_input(value)) > MAX_METADATA_CHARS:
        raise PydanticCustomError(
            "metadata_too_large",
            "serialized compact JSON is longer than 65,536 characters",
        )
    return value


def _check_classifiers(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise PydanticCustomError("duplicate_classifier", "must not list a classifier twice")
    return value


RequestId = Annotated[str, AfterValidator(_check_request_id)]
FlowDefinitionArn = Annotated[str, AfterValidator(_check_arn)]
RouteName = Annotated[str, AfterValidator(_check_route)]
S3Uri = Annotated[str, AfterValidator(_check_s3_uri)]
ContentClassifiers = Annotated[list[ContentClassifier], AfterValidator(_check_classifiers)]
JsonObject = dict[str, Any]


# --------------------------------------------------------------------------- requests

_REQUEST_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


class ReviewRequest(BaseModel):
    """A request to decide on (and maybe start) a human review of one prediction."""

    model_config = _REQUEST_CONFIG

    version: Literal[1] = 1
    type: Literal["review"] = "review"
    request_id: RequestId = Field(description="The caller's idempotency key.")
    route: RouteName | None = Field(default=None, description="A configured route's name.")
    flow_definition_arn: FlowDefinitionArn | None = None
    input: Annotated[JsonObject, AfterValidator(_check_input)] | None = Field(
        default=None, description="The InputContent object shown to reviewers."
    )
    input_s3_uri: S3Uri | None = None
    prediction: Any = Field(default=None, description="What the rules look at.")
    rules: JsonObject | None = Field(default=None, description="Inline rules (raw).")
    content_classifiers: ContentClassifiers = Field(default_factory=list)
    metadata: Annotated[JsonObject, AfterValidator(_check_metadata)] = Field(
        default_factory=dict, description="Opaque; passed through to the result."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ReviewRequest:
        for a, b in (("route", "flow_definition_arn"), ("input", "input_s3_uri")):
            has_a, has_b = getattr(self, a) is not None, getattr(self, b) is not None
            if has_a and has_b:
                raise PydanticCustomError(
                    "conflicting_fields", f"give either '{a}' or '{b}', not both"
                )
            if not has_a and not has_b:
                raise PydanticCustomError("missing_field", f"one of '{a}' or '{b}' is required")
        return self

    @property
    def has_prediction(self) -> bool:
        """True when the message carried a ``prediction`` (even ``null``)."""
        return "prediction" in self.model_fields_set

    @property
    def effective_prediction(self) -> Any:
        """What the rules evaluate: ``prediction`` if given, else ``input``.

        With ``input_s3_uri`` and no ``prediction`` this is ``None``: the input is not
        known until it is read from S3, which the request handler does.
        """
        return self.prediction if self.has_prediction else self.input


class CancelRequest(BaseModel):
    """Stop the human loop of an earlier request (StopHumanLoop)."""

    model_config = _REQUEST_CONFIG

    version: Literal[1] = 1
    type: Literal["cancel"]
    request_id: RequestId


# --------------------------------------------------------------------------- results


class Outcome(enum.StrEnum):
    NOT_ACTIVATED = "not_activated"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    EXPIRED = "expired"
    REJECTED = "rejected"


_RESULT_CONFIG = ConfigDict(extra="forbid", frozen=True)


class ActivationReason(BaseModel):
    """A condition that fired (mirrors ``rules.FiredCondition``)."""

    model_config = _RESULT_CONFIG
    path: str
    condition_type: str
    explanation: str


class Activation(BaseModel):
    model_config = _RESULT_CONFIG
    activated: bool
    reasons: list[ActivationReason] = Field(default_factory=list)


class Timings(BaseModel):
    model_config = _RESULT_CONFIG
    received_at: datetime | None = None
    decided_at: datetime | None = None
    loop_created_at: datetime | None = None
    finished_at: datetime | None = None
    review_seconds: float | None = None


class ReviewResult(BaseModel):
    """The one result published per request. ``model_dump(mode="json")`` is stable."""

    model_config = _RESULT_CONFIG

    version: Literal[1] = 1
    result_id: str
    request_id: str | None
    outcome: Outcome
    route: str | None = None
    flow_definition_arn: str | None = None
    loop_name: str | None = None
    loop_arn: str | None = None
    attempt: int = 1
    activation: Activation | None = None
    human_answers: list[dict[str, Any]] = Field(default_factory=list)
    prediction: Any = None
    agreement: dict[str, Any] | None = None
    failure_code: str | None = None
    reason: str | None = None
    #: For ``rejected``: the stable reason code (see docs/messages.md).
    rejection_code: str | None = None
    #: For ``completed``: where A2I wrote output.json (the full human answers).
    output_uri: str | None = None
    #: True when the result was too large for SQS and ``prediction``/``human_answers``
    #: were left out; ``output_uri`` still points at the answers.
    truncated: bool = False
    timings: Timings = Field(default_factory=Timings)
    metadata: dict[str, Any] = Field(default_factory=dict)
    shadow: bool = False
    produced_at: datetime

    def to_body(self) -> str:
        """The SQS message body: compact JSON, fields in declaration order."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)


def result_id(request_id: str, outcome: str, attempt: int) -> str:
    """Stable id of a result: publishing it again yields the same id (dedupe key)."""
    return "res-" + stable_digest("result", request_id, str(outcome), str(attempt))


def request_fingerprint(req: ReviewRequest) -> str:
    """SHA-256 (hex) of the canonical JSON of what determines the review.

    Covered: type, route or flow_definition_arn, input or input_s3_uri, prediction (if
    given), inline rules and content classifiers (as a sorted set). Not covered:
    ``metadata`` (opaque pass-through; a producer may resend with a new trace id) and
    ``version``. A redelivered message has the same fingerprint; a different payload
    under the same request_id has a different one (keys are sorted, so key order in the
    message does not matter; ``1`` and ``1.0`` are different).
    """
    doc: dict[str, Any] = {
        "type": req.type,
        "route": req.route,
        "flow_definition_arn": req.flow_definition_arn,
        "input": req.input,
        "input_s3_uri": req.input_s3_uri,
        "rules": req.rules,
        "content_classifiers": sorted(req.content_classifiers),
    }
    if req.has_prediction:
        doc["prediction"] = req.prediction
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- parsing

_REVIEW_FIELDS = frozenset(ReviewRequest.model_fields)
_CANCEL_FIELDS = frozenset(CancelRequest.model_fields)
_MAX_LISTED_ERRORS = 5

# Codes for pydantic error types that are ours (PydanticCustomError) or need their own.
_CODE_BY_ERROR_TYPE = {
    "missing": "missing_field",
    "missing_field": "missing_field",
    "extra_forbidden": "unknown_field",
    "conflicting_fields": "conflicting_fields",
    "input_too_large": "input_too_large",
    "metadata_too_large": "metadata_too_large",
}


class _RejectError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RejectError("invalid_number", "a number is too large to be represented")
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _RejectError("invalid_number", f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise _RejectError(
        "invalid_number", "NaN, Infinity and -Infinity are not JSON; send null or a string"
    )


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        counts = collections.Counter(k for k, _ in pairs)
        dup = next(k for k, n in counts.items() if n > 1)
        named = f" ('{dup}')" if dup in _REVIEW_FIELDS else ""
        raise _RejectError(
            "duplicate_key",
            f"a JSON object has the same key twice{named}; which one wins is undefined",
        )
    return obj


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs,
    parse_float=_parse_float,
    parse_int=_parse_int,
    parse_constant=_parse_constant,
)


def _check_depth(root: Any) -> None:
    """Iterative (never a RecursionError); visits containers only."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _RejectError("too_deep", f"JSON is nested deeper than {MAX_DEPTH} levels")
        children = node.values() if type(node) is dict else node if type(node) is list else ()
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)


def _strings(root: Any) -> Iterator[str]:
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if type(node) is str:
            yield node
        elif type(node) is dict:
            stack.extend(node)
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)


# A lone surrogate can only come from a literal surrogate code point in the text or a
# \uD800-\uDFFF escape; without either (the common case) no string needs checking.
_MAYBE_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")


def _check_tree(root: Any, text: str) -> None:
    _check_depth(root)
    if _MAYBE_SURROGATE.search(text) and any(_SURROGATE.search(s) for s in _strings(root)):
        raise _RejectError(
            "invalid_unicode",
            "a string contains an unpaired UTF-16 surrogate (such as \\ud800), "
            "which is not valid Unicode",
        )


def _decode(body: str | bytes) -> tuple[Any, str]:
    if isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if len(raw) > 4 * MAX_MESSAGE_CHARS:
            raise _RejectError("message_too_large", "the message body is larger than 4 MiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _RejectError(
                "invalid_encoding", f"the body is not valid UTF-8 (byte offset {exc.start})"
            ) from None
    elif isinstance(body, str):
        text = body
    else:
        raise _RejectError("not_json", "the body is neither text nor bytes")
    if text.startswith(_BOM):
        text = text[1:]
    if len(text) > MAX_MESSAGE_CHARS:
        raise _RejectError("message_too_large", "the message body is longer than 4 MiB characters")
    if not text.strip():
        raise _RejectError("empty_body", "the body is empty; expected a JSON object")
    try:
        obj, end = _DECODER.raw_decode(text, _skip_ws(text, 0))
    except _RejectError:
        raise
    except RecursionError:
        raise _RejectError("too_deep", f"JSON is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise _RejectError(
            "not_json", f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError:
        raise _RejectError("invalid_number", "a number cannot be represented") from None
    if _skip_ws(text, end) != len(text):
        raise _RejectError("not_json", "the body has extra data after the JSON value")
    return obj, text


_REQUEST_ID_IN_TEXT = re.compile(r'"request_id"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.){1,1600}")')


def _request_id_from_text(body: str | bytes) -> str | None:
    """Best effort for bodies that are not valid JSON: one unambiguous ``request_id``."""
    if isinstance(body, bytes | bytearray | memoryview):
        text = bytes(body[: MAX_MESSAGE_CHARS * 4]).decode("utf-8", "replace")
    elif isinstance(body, str):
        text = body
    else:
        return None
    found = _REQUEST_ID_IN_TEXT.findall(text)
    if len(found) != 1 or text.count('"request_id"') != 1:
        return None
    try:
        value = json.loads(found[0])
    except ValueError:
        return None
    return value if is_valid_request_id(value) else None


_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _field_name(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(err: Any, known: frozenset[str]) -> tuple[str, str]:
    """(code, sentence) for one pydantic error, never repeating the input value."""
    etype: str = err["type"]
    loc: tuple[int | str, ...] = tuple(err["loc"])
    code = _CODE_BY_ERROR_TYPE.get(etype, "invalid_field")
    if etype == "extra_forbidden":
        name = str(loc[0]) if loc else ""
        if _IDENTIFIER.fullmatch(name):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return code, f"unknown field '{name}'{hint}"
        return code, "an unknown field (its name is not shown)"
    if etype == "missing":
        return code, f"field '{_field_name(loc)}' is required"
    msg: str = err["msg"]
    if etype == "value_error":
        msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str) and len(value) >= 3 and value in msg:
        msg = "has an invalid value"
    where = _field_name(loc)
    return code, (f"field '{where}': {msg}" if where else msg)


def _rejection_from(exc: ValidationError, known: frozenset[str]) -> tuple[str, str]:
    described = [_describe(e, known) for e in exc.errors(include_url=False)]
    code = described[0][0]
    sentences = [s for _, s in described[:_MAX_LISTED_ERRORS]]
    more = len(described) - _MAX_LISTED_ERRORS
    if more > 0:
        sentences.append(f"and {more} more problem(s)")
    return code, "; ".join(sentences)


def parse_message(body: str | bytes) -> ReviewRequest | CancelRequest:
    """Parse an SQS message body into a request.

    Raises :class:`MessageRejected` and nothing else, whatever the body.
    """
    request_id: str | None = None
    try:
        try:
            obj, text = _decode(body)
        except _RejectError:
            request_id = _request_id_from_text(body)
            raise
        if isinstance(obj, dict) and is_valid_request_id(obj.get("request_id")):
            request_id = obj["request_id"]
        return _validate(obj, text)
    except _RejectError as rej:
        raise MessageRejected(rej.code, rej.reason, request_id) from None
    except RecursionError:
        raise MessageRejected(
            "too_deep", f"JSON is nested deeper than {MAX_DEPTH} levels", request_id
        ) from None


def _validate(obj: Any, text: str) -> ReviewRequest | CancelRequest:
    """Turn parsed JSON into a request; raises :class:`_RejectError`."""
    _check_tree(obj, text)
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        raise _RejectError(
            "not_an_object",
            f"the body is {kind.get(type(obj), 'a number')}; expected a JSON object",
        )
    version = obj.get("version", 1)
    if version != 1 or isinstance(version, bool):
        if isinstance(version, int) and not isinstance(version, bool):
            raise _RejectError(
                "unsupported_version", "field 'version': this worker understands version 1"
            )
        raise _RejectError("invalid_field", "field 'version': must be the integer 1")
    kind_field = obj.get("type", "review")
    model: type[ReviewRequest | CancelRequest]
    if kind_field == "review":
        model, known = ReviewRequest, _REVIEW_FIELDS
    elif kind_field == "cancel":
        model, known = CancelRequest, _CANCEL_FIELDS
    else:
        raise _RejectError("unknown_type", "field 'type': must be 'review' (default) or 'cancel'")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise _RejectError(*_rejection_from(exc, known)) from None
