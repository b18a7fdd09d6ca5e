"""The fields of a message: limits, patterns and validators (pydantic annotated types)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from a2i_worker.errors import PermanentError

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

ContentClassifier = Literal["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]
CONTENT_CLASSIFIERS: Final = ("FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent")


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
