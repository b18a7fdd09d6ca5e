"""The message models: requests and cancels in, results out."""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from a2i_worker.messages._fields import (
    ContentClassifiers,
    FlowDefinitionArn,
    JsonObject,
    RequestId,
    RouteName,
    S3Uri,
    _check_input,
    _check_metadata,
)
from a2i_worker.naming import stable_digest

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
