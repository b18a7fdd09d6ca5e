"""Request deserialization and validation against the botocore service models.

Promise: :func:`parse_request` either returns the operation's input as a plain ``dict`` that
satisfies every constraint of the service model (required members, types, lengths, ranges,
enums and ``pattern`` traits — botocore's own validator checks only the minimums), or raises
:class:`RequestValidationError` with a message a person can act on. It never raises anything
else, whatever the bytes it is given.

Both services served here go through it: A2I runtime (REST-JSON: members from the path, the
query string and the body) and the SageMaker subset (JSON 1.1: every member in the body).
Models come from :mod:`a2i_emulator.model`; per-operation specs (member locations, compiled
patterns) are cached so the hot path does no model lookups. A ``pattern`` Python's ``re``
cannot compile (Unicode classes such as ``\\p{L}`` in SageMaker's tag patterns) is not
checked; lengths and the rest still are.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import botocore.model
from botocore.utils import parse_timestamp
from botocore.validate import ParamValidator

from a2i_emulator.model import A2I_OPERATIONS, operation_model

__all__ = [
    "OPERATIONS",
    "OperationSpec",
    "RequestValidationError",
    "operation_spec",
    "parse_request",
]

OPERATIONS: tuple[str, ...] = A2I_OPERATIONS


class RequestValidationError(Exception):
    """The request does not satisfy the service model; answered as ``ValidationException``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    # Model patterns are ECMAScript-style and not implicitly anchored; Python's ``$`` also
    # matches before a trailing newline, which the service would reject, so use ``\Z``.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:  # e.g. \p{L}: not checked (see the module's docstring)
        return None


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    location: str | None  # None (body), "uri", "querystring", "header"
    location_name: str
    shape: botocore.model.Shape


@dataclass(frozen=True)
class OperationSpec:
    """Everything the server needs to deserialize and validate one operation's input."""

    name: str
    http_method: str
    input_shape: botocore.model.StructureShape
    output_shape: botocore.model.StructureShape | None
    members: tuple[_Member, ...]
    patterns: Mapping[str, re.Pattern[str]]  # shape name -> compiled pattern
    has_body: bool


def _collect_patterns(
    shape: botocore.model.Shape, out: dict[str, re.Pattern[str]], seen: set[str]
) -> None:
    if shape.name in seen:
        return
    seen.add(shape.name)
    pattern = shape.metadata.get("pattern")
    if isinstance(pattern, str):
        compiled = _compile_pattern(pattern)
        if compiled is not None:
            out[shape.name] = compiled
    if isinstance(shape, botocore.model.StructureShape):
        for member in shape.members.values():
            _collect_patterns(member, out, seen)
    elif isinstance(shape, botocore.model.ListShape):
        _collect_patterns(shape.member, out, seen)
    elif isinstance(shape, botocore.model.MapShape):
        _collect_patterns(shape.key, out, seen)
        _collect_patterns(shape.value, out, seen)


@functools.cache
def operation_spec(name: str) -> OperationSpec:
    """Cached spec of one operation served here (``KeyError`` for unknown names)."""
    op = operation_model(name)
    input_shape = op.input_shape
    assert isinstance(input_shape, botocore.model.StructureShape)
    members = tuple(
        _Member(
            name=m_name,
            location=m_shape.serialization.get("location"),
            location_name=m_shape.serialization.get("name", m_name),
            shape=m_shape,
        )
        for m_name, m_shape in input_shape.members.items()
    )
    patterns: dict[str, re.Pattern[str]] = {}
    _collect_patterns(input_shape, patterns, set())
    output_shape = op.output_shape
    assert output_shape is None or isinstance(output_shape, botocore.model.StructureShape)
    return OperationSpec(
        name=name,
        http_method=op.http["method"],
        input_shape=input_shape,
        output_shape=output_shape,
        members=members,
        patterns=patterns,
        has_body=any(m.location is None for m in members),
    )


_VALIDATOR = ParamValidator()


def _timestamp(member: _Member, raw: Any) -> dt.datetime:
    """A timestamp member as sent: ISO 8601 / RFC 822 text, or epoch seconds (JSON bodies)."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise RequestValidationError(
            f"Value '{raw}' at '{member.name}' failed to satisfy constraint: "
            "Member must be a timestamp"
        )
    try:
        value = (
            parse_timestamp(raw)
            if isinstance(raw, str)
            else dt.datetime.fromtimestamp(raw, tz=dt.UTC)
        )
    except (ValueError, TypeError, OverflowError, OSError):
        raise RequestValidationError(
            f"Value '{raw}' at '{member.name}' failed to satisfy constraint: "
            "Member must be a timestamp"
        ) from None
    if not isinstance(value, dt.datetime):  # pragma: no cover - parse_timestamp promise
        raise RequestValidationError(f"Invalid timestamp at '{member.name}'")
    return value


def _convert_scalar(member: _Member, raw: str) -> Any:
    """Deserialize a uri/querystring value per the member's shape type."""
    type_name = member.shape.type_name
    if type_name == "integer" or type_name == "long":
        try:
            return int(raw)
        except ValueError:
            raise RequestValidationError(
                f"Value '{raw}' at '{member.name}' failed to satisfy constraint: "
                "Member must be an integer"
            ) from None
    if type_name == "timestamp":
        return _timestamp(member, raw)
    if type_name == "boolean":
        if raw not in ("true", "false"):
            raise RequestValidationError(f"Value '{raw}' at '{member.name}' must be a boolean")
        return raw == "true"
    return raw


def _fail(value: Any, path: str, constraint: str) -> RequestValidationError:
    shown = repr(value) if not isinstance(value, str) else value
    if len(shown) > 100:
        shown = shown[:100] + "..."
    return RequestValidationError(
        f"1 validation error detected: Value '{shown}' at '{path}' failed to satisfy "
        f"constraint: {constraint}"
    )


def _check_constraints(
    value: Any, shape: botocore.model.Shape, path: str, patterns: Mapping[str, re.Pattern[str]]
) -> None:
    """The traits botocore's client-side validator leaves to the service.

    ``ParamValidator`` checks required members, types and minimums only; the service also
    enforces maximum lengths and values, enums and patterns.
    """
    meta = shape.metadata
    if isinstance(value, str):
        maximum = meta.get("max")
        if maximum is not None and len(value) > maximum:
            raise _fail(value, path, f"Member must have length less than or equal to {maximum}")
        enum: list[str] = meta.get("enum") or []
        if enum and value not in enum:
            raise _fail(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        compiled = patterns.get(shape.name)
        if compiled is not None and compiled.search(value) is None:
            raise _fail(
                value,
                path,
                f"Member must satisfy regular expression pattern: {meta['pattern']}",
            )
    elif isinstance(value, int) and not isinstance(value, bool):
        maximum = meta.get("max")
        if maximum is not None and value > maximum:
            raise _fail(value, path, f"Member must have value less than or equal to {maximum}")
    elif isinstance(shape, botocore.model.StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            member = shape.members.get(key)
            if member is not None:
                _check_constraints(item, member, f"{path}.{key}" if path else key, patterns)
    elif isinstance(shape, botocore.model.ListShape) and isinstance(value, list):
        maximum = meta.get("max")
        if maximum is not None and len(value) > maximum:
            raise _fail(value, path, f"Member must have length less than or equal to {maximum}")
        for i, item in enumerate(value):
            _check_constraints(item, shape.member, f"{path}.{i + 1}", patterns)


def parse_request(
    operation: str,
    *,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """Deserialize one HTTP request of ``operation`` into its validated input ``dict``.

    Body members come from the JSON body (unknown keys are ignored, as the service does),
    uri/querystring members from the path and query string per their ``locationName``.
    """
    spec = operation_spec(operation)
    params: dict[str, Any] = {}
    if spec.has_body and body:
        try:
            decoded = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise RequestValidationError("Request body is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise RequestValidationError("Request body must be a JSON object")
        body_obj: dict[str, Any] = decoded
    else:
        body_obj = {}
    for member in spec.members:
        if member.location is None:
            value = body_obj.get(member.location_name)
            if value is not None:
                if member.shape.type_name == "timestamp":
                    value = _timestamp(member, value)
                params[member.name] = value
        elif member.location == "uri":
            raw = path_params.get(member.location_name)
            if raw is not None:
                params[member.name] = _convert_scalar(member, raw)
        elif member.location == "querystring":
            raw = query.get(member.location_name)
            if raw is not None:
                params[member.name] = _convert_scalar(member, raw)
    report = _VALIDATOR.validate(params, spec.input_shape)
    if report.has_errors():
        raise RequestValidationError(report.generate_report())
    _check_constraints(params, spec.input_shape, "", spec.patterns)
    return params
