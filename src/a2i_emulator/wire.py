"""Responses as the botocore service model says: output shapes and error shapes on the wire.

Promises:
- :func:`serialize_output` turns an operation's result (a plain ``dict``; timestamps as
  epoch seconds or ``datetime``) into the JSON body the protocol prescribes, walking the
  model's output shape: members under their wire names, optional members absent rather
  than ``null``, timestamps in the member's ``timestampFormat`` (else the protocol's
  default, epoch seconds for both JSON protocols), blobs base64. A required member that is
  missing or a key the shape does not have raises :class:`OutputShapeError` (an emulator
  bug, answered as a 500 rather than sent malformed).
- :func:`error_response` gives status, headers and body of an error answer: REST-JSON
  names the code in ``x-amzn-ErrorType``; JSON 1.1 in the body's ``__type`` (and the same
  header); the body carries the error shape's members (``Message``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

import botocore.model

from a2i_emulator.model import error_status, operation_model, service_model

__all__ = [
    "JSON_CONTENT_TYPES",
    "OutputShapeError",
    "error_response",
    "format_timestamp",
    "serialize_output",
]

JSON_CONTENT_TYPES: Final = {"rest-json": "application/json", "json": "application/x-amz-json-1.1"}
_DEFAULT_TIMESTAMP_FORMAT: Final = {"rest-json": "unixTimestamp", "json": "unixTimestamp"}


class OutputShapeError(Exception):
    """A result does not fit the model's output shape (a bug in the emulator)."""


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    raise OutputShapeError(f"not a timestamp: {value!r}")


def format_timestamp(value: Any, timestamp_format: str) -> str | float:
    """``value`` (epoch seconds or datetime) in a model ``timestampFormat``, millisecond
    precision: ``iso8601`` -> ``2026-03-02T10:05:12.003Z``, ``unixTimestamp`` -> 1772445912.003,
    ``rfc822`` -> ``Mon, 02 Mar 2026 10:05:12 GMT``."""
    stamp = _as_datetime(value).astimezone(dt.UTC)
    if timestamp_format == "iso8601":
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    if timestamp_format == "unixTimestamp":
        return round(stamp.timestamp(), 3)
    if timestamp_format == "rfc822":
        return stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")
    raise OutputShapeError(f"unknown timestampFormat {timestamp_format}")


def _value(value: Any, shape: botocore.model.Shape, protocol: str, path: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, botocore.model.StructureShape)
        return _structure(value, shape, protocol, path)
    if kind == "list":
        assert isinstance(shape, botocore.model.ListShape)
        if not isinstance(value, list | tuple):
            raise OutputShapeError(f"{path}: expected a list, got {type(value).__name__}")
        return [_value(v, shape.member, protocol, f"{path}[{i}]") for i, v in enumerate(value)]
    if kind == "map":
        assert isinstance(shape, botocore.model.MapShape)
        if not isinstance(value, Mapping):
            raise OutputShapeError(f"{path}: expected a map, got {type(value).__name__}")
        return {str(k): _value(v, shape.value, protocol, f"{path}.{k}") for k, v in value.items()}
    if kind == "timestamp":
        fmt = shape.serialization.get("timestampFormat") or _DEFAULT_TIMESTAMP_FORMAT[protocol]
        return format_timestamp(value, fmt)
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if kind == "string":
        if not isinstance(value, str):
            raise OutputShapeError(f"{path}: expected a string, got {type(value).__name__}")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            raise OutputShapeError(f"{path}: {value!r} is not one of {enum}")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise OutputShapeError(f"{path}: expected an integer, got {value!r}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise OutputShapeError(f"{path}: expected a boolean, got {value!r}")
        return value
    if kind in ("float", "double"):
        return float(value)
    return value  # document types pass through as JSON


def _structure(
    value: Any, shape: botocore.model.StructureShape, protocol: str, path: str
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise OutputShapeError(f"{path or shape.name}: expected an object")
    members = shape.members
    unknown = set(value) - set(members)
    if unknown:
        raise OutputShapeError(f"{path or shape.name}: not in the model: {sorted(unknown)}")
    out: dict[str, Any] = {}
    for name, member in members.items():
        item = value.get(name)
        if item is None:
            if name in shape.required_members:
                raise OutputShapeError(f"{path or shape.name}: required member {name} missing")
            continue
        if member.serialization.get("location"):  # header/uri members never go in the body
            continue
        wire_name = member.serialization.get("name", name)
        out[wire_name] = _value(item, member, protocol, f"{path}.{name}" if path else name)
    return out


def serialize_output(operation: str, result: Mapping[str, Any]) -> bytes:
    """The JSON body of ``operation``'s answer ``result``, as its output shape says."""
    op = operation_model(operation)
    protocol = op.service_model.protocol
    shape = op.output_shape
    if shape is None:
        if result:
            raise OutputShapeError(f"{operation} has no output shape")
        return b"{}"
    assert isinstance(shape, botocore.model.StructureShape)
    return json.dumps(_structure(result, shape, protocol, ""), separators=(",", ":")).encode()


def error_response(service: str, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of error ``code`` of ``service`` with ``message``."""
    model = service_model(service)
    protocol = model.protocol
    status = error_status(service, code)
    body: dict[str, Any] = {}
    if code in model.shape_names:
        shape = model.shape_for(code)
        assert isinstance(shape, botocore.model.StructureShape)
        body = _structure({"Message": message}, shape, protocol, code)
    else:
        body = {"Message": message}
    headers = {"x-amzn-ErrorType": code, "Content-Type": JSON_CONTENT_TYPES[protocol]}
    if protocol == "json":
        body = {"__type": code, **body}
    return status, headers, json.dumps(body, separators=(",", ":")).encode()
