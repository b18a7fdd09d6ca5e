"""parse_message: body -> JSON -> request, rejecting with a stable code and no values.

The stdlib decoder with hooks, not pydantic-core's JSON parser: pydantic-core keeps the last
of two equal keys, turns 1e400 into inf and allows any depth, and says why it refuses only
in words, so duplicate_key/invalid_number/invalid_unicode/too_deep could not be told apart.
"""

from __future__ import annotations

import collections
import difflib
import json
import math
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from a2i_worker.messages._fields import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_MESSAGE_CHARS,
    MessageRejected,
    is_valid_request_id,
)
from a2i_worker.messages._models import CancelRequest, ReviewRequest

_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z0-9_\-]{1,40}")
_BOM = "\ufeff"

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
