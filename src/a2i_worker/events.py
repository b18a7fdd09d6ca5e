"""Parse the EventBridge events that arrive on the events queue (pure, no I/O).

Tolerant of what AWS may add (unknown keys are ignored), strict about what is needed
(loop name, status). An event that reached the queue through an SNS topic without raw
message delivery (``{"Type": "Notification", "Message": "<the event>", ...}``) is
unwrapped once. Two kinds are recognised: A2I human loop status changes and
Ground Truth labeling job state changes (which may share the queue and are counted,
not treated as errors). Anything else raises :class:`EventParseError` with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from a2i_worker.ledger.protocol import LoopUpdate

__all__ = [
    "A2I_DETAIL_TYPE",
    "GT_DETAIL_TYPE_PREFIX",
    "KNOWN_LOOP_STATUSES",
    "EventParseError",
    "GroundTruthEvent",
    "LoopStatusEvent",
    "OtherSageMakerEvent",
    "ParsedEvent",
    "parse_event",
    "parse_timestamp",
]

A2I_DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"
GT_DETAIL_TYPE_PREFIX = "SageMaker Ground Truth"
KNOWN_LOOP_STATUSES = frozenset({"InProgress", "Stopping", "Stopped", "Completed", "Failed"})
_MAX_EVENT_CHARS = 262_144


class EventParseError(ValueError):
    """The message is not an event the worker can use; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoopStatusEvent:
    event_id: str
    event_time: datetime
    update: LoopUpdate
    flow_definition_arn: str | None


@dataclass(frozen=True)
class GroundTruthEvent:
    event_id: str
    detail_type: str
    resources: tuple[str, ...]


@dataclass(frozen=True)
class OtherSageMakerEvent:
    """An ``aws.sagemaker`` event of another detail-type: acknowledged and counted."""

    event_id: str
    detail_type: str


ParsedEvent = LoopStatusEvent | GroundTruthEvent | OtherSageMakerEvent


def parse_timestamp(value: Any) -> datetime | None:
    """ISO-8601 (with ``Z`` or offset) or epoch seconds/milliseconds → aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise EventParseError("timestamp is a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value) / 1000.0 if value > 1e11 else float(value)
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise EventParseError("timestamp out of range") from exc
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise EventParseError("timestamp is not ISO-8601") from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:  # e.g. year 1 with a positive offset
            raise EventParseError("timestamp out of range") from exc
    raise EventParseError(f"timestamp has type {type(value).__name__}")


def _optional_str(detail: dict[str, Any], key: str) -> str | None:
    value = detail.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventParseError(f"detail.{key} must be a string")
    return value


def _reject_constant(name: str) -> Any:
    raise EventParseError(f"not valid JSON: {name} is not allowed")


def _load(text: str, within: str = "") -> Any:
    where = f" ({within})" if within else ""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise EventParseError(f"not valid JSON{where}: nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise EventParseError(f"not valid JSON{where}: {exc.msg} at position {exc.pos}") from exc
    except ValueError as exc:  # an integer beyond Python's digit limit
        raise EventParseError(f"not valid JSON{where}: a number is too long") from exc


def _is_sns_notification(doc: Any) -> bool:
    """SNS's JSON envelope (a topic subscribed to the rule, raw delivery off)."""
    return (
        isinstance(doc, dict)
        and doc.get("Type") == "Notification"
        and isinstance(doc.get("Message"), str)
        and "source" not in doc
    )


def parse_event(body: str | bytes) -> ParsedEvent:
    """Parse one SQS message body holding an EventBridge event."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventParseError("body is not UTF-8") from exc
    if len(body) > _MAX_EVENT_CHARS:
        raise EventParseError("body is larger than an EventBridge event can be")
    envelope = _load(body)
    if _is_sns_notification(envelope):
        envelope = _load(envelope["Message"], within="the SNS notification's Message")
    if not isinstance(envelope, dict):
        raise EventParseError(f"event must be a JSON object, got {type(envelope).__name__}")
    source = envelope.get("source")
    detail_type = envelope.get("detail-type")
    if source != "aws.sagemaker":
        raise EventParseError(f"source must be 'aws.sagemaker', got {_short(source)}")
    if not isinstance(detail_type, str):
        raise EventParseError("detail-type is missing")
    event_id = envelope.get("id")
    event_id = event_id if isinstance(event_id, str) else ""
    if detail_type.startswith(GT_DETAIL_TYPE_PREFIX):
        resources = envelope.get("resources")
        res = (
            tuple(r for r in resources if isinstance(r, str)) if isinstance(resources, list) else ()
        )
        return GroundTruthEvent(event_id=event_id, detail_type=detail_type, resources=res)
    if detail_type != A2I_DETAIL_TYPE:
        return OtherSageMakerEvent(event_id=event_id, detail_type=detail_type)
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise EventParseError("detail must be a JSON object")
    name = detail.get("humanLoopName")
    if not isinstance(name, str) or not name:
        raise EventParseError("detail.humanLoopName is missing")
    status = detail.get("humanLoopStatus")
    if not isinstance(status, str) or status not in KNOWN_LOOP_STATUSES:
        raise EventParseError(f"detail.humanLoopStatus is not a known status: {_short(status)}")
    output = detail.get("humanLoopOutput")
    output_uri: str | None = None
    if isinstance(output, dict):
        uri = output.get("outputS3Uri")
        output_uri = uri if isinstance(uri, str) and uri else None
    event_time = parse_timestamp(envelope.get("time")) or datetime.now(UTC)
    update = LoopUpdate(
        loop_name=name,
        status=str(status),
        observed_at=event_time,
        failure_code=_optional_str(detail, "failureCode"),
        failure_reason=_optional_str(detail, "failureReason"),
        output_uri=output_uri,
        loop_arn=_optional_str(detail, "humanLoopArn"),
        loop_created_at=parse_timestamp(detail.get("creationTime")),
    )
    return LoopStatusEvent(
        event_id=event_id,
        event_time=event_time,
        update=update,
        flow_definition_arn=_optional_str(detail, "flowDefinitionArn"),
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
