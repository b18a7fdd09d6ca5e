"""Every ``rejection_code`` a ``rejected`` result can carry, with what causes it.

A rejected result says ``rejection_code`` (stable, for programs and the
``a2i_worker_rejections_total{code}`` metric) and ``reason`` (a sentence for a person);
``failure_code`` is always ``null`` on it (that field is A2I's code for a ``failed`` loop).
docs/messages.md's table is generated from :data:`REJECTION_CODES` (``make docs``), and
tests/unit/test_rejection_codes.py checks that every code the source can raise is here and
that every code here is raised somewhere.

What a ``reason`` may say: it names fields and the rule broken, and never repeats a
value from the message's ``input``, ``prediction``, ``metadata`` or ``request_id``, nor a
human answer (they may hold personal data). It may name the deployment's own resources
when that is what the operator must fix: the bucket of an ``input_s3_uri``
(``input_not_found``) and A2I's own error message, which can quote the flow definition
ARN or the loop name the worker sent (``a2i_validation``, ``a2i_access_denied``,
``loop_name_unavailable``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["REJECTION_CODES", "RejectionCode", "Stage"]


class Stage(enum.StrEnum):
    """Where a rejection is decided, in the order a message meets them."""

    PARSE = "parse"
    ROUTE = "route"
    INPUT = "input"
    LEDGER = "ledger"
    BUDGET = "budget"
    A2I = "A2I"
    RETRIES = "retries"


@dataclass(frozen=True)
class RejectionCode:
    code: str
    stage: Stage
    cause: str


_CODES = [
    RejectionCode(
        "invalid_encoding", Stage.PARSE, "the body is not UTF-8 (UTF-16, Latin-1, binary)"
    ),
    RejectionCode("empty_body", Stage.PARSE, "empty or only whitespace"),
    RejectionCode("message_too_large", Stage.PARSE, "body over 4 MiB characters"),
    RejectionCode(
        "not_json",
        Stage.PARSE,
        "not JSON, trailing data after it, raw control characters in strings",
    ),
    RejectionCode(
        "invalid_number",
        Stage.PARSE,
        "`NaN`, `Infinity`, a number too large for a double, an integer over 4,300 digits",
    ),
    RejectionCode(
        "duplicate_key", Stage.PARSE, "an object has the same key twice (anywhere in the message)"
    ),
    RejectionCode("too_deep", Stage.PARSE, "nesting deeper than 64 levels"),
    RejectionCode(
        "invalid_unicode",
        Stage.PARSE,
        "a string (or key) holds an unpaired surrogate such as `\\ud800`",
    ),
    RejectionCode(
        "not_an_object", Stage.PARSE, "the body is an array, string, number, boolean or null"
    ),
    RejectionCode("unsupported_version", Stage.PARSE, "`version` is an integer other than 1"),
    RejectionCode("unknown_type", Stage.PARSE, "`type` is not `review` or `cancel`"),
    RejectionCode(
        "missing_field",
        Stage.PARSE,
        "`request_id` missing, or neither `route` nor `flow_definition_arn`, or neither `input` "
        "nor `input_s3_uri`",
    ),
    RejectionCode(
        "conflicting_fields",
        Stage.PARSE,
        "both `route` and `flow_definition_arn`, or both `input` and `input_s3_uri`",
    ),
    RejectionCode(
        "unknown_field", Stage.PARSE, "a top-level field that is not in the request's field table"
    ),
    RejectionCode(
        "invalid_field",
        Stage.PARSE,
        "a field breaks its rule (type, pattern, length, classifier, duplicate classifier, "
        "`version` not an integer)",
    ),
    RejectionCode(
        "input_too_large",
        Stage.PARSE,
        "`input` over 3,145,728 characters (use `input_s3_uri`), or the object at "
        "`input_s3_uri` is larger than A2I accepts",
    ),
    RejectionCode("metadata_too_large", Stage.PARSE, "`metadata` over 65,536 characters"),
    RejectionCode("unknown_route", Stage.ROUTE, "`route` names no configured route"),
    RejectionCode(
        "unknown_flow_definition",
        Stage.ROUTE,
        "`flow_definition_arn` is in no route and the routes file sets "
        "`allow_unrouted_flow_definitions = false`",
    ),
    RejectionCode("invalid_rules", Stage.ROUTE, "inline `rules` are not a valid rules document"),
    RejectionCode(
        "input_not_found", Stage.INPUT, "no object at `input_s3_uri` (the reason names the bucket)"
    ),
    RejectionCode(
        "input_access_denied",
        Stage.INPUT,
        "the worker's role may not read `input_s3_uri` (grant `s3:GetObject`, InputBucketName)",
    ),
    RejectionCode("input_not_json", Stage.INPUT, "the object at `input_s3_uri` is not UTF-8 JSON"),
    RejectionCode(
        "input_not_object", Stage.INPUT, "the object at `input_s3_uri` is JSON but not an object"
    ),
    RejectionCode(
        "duplicate_request_id",
        Stage.LEDGER,
        "the `request_id` was already used for different content (another fingerprint)",
    ),
    RejectionCode(
        "ledger_item_too_large",
        Stage.LEDGER,
        "the request does not fit a DynamoDB ledger item even compressed: send the input as "
        "`input_s3_uri`",
    ),
    RejectionCode(
        "budget_exhausted",
        Stage.BUDGET,
        "the route's review budget is spent and its policy is `reject`",
    ),
    RejectionCode(
        "a2i_validation",
        Stage.A2I,
        "A2I refused StartHumanLoop as invalid (ValidationException, e.g. a flow definition "
        "that does not exist or is not active); the reason quotes A2I's message",
    ),
    RejectionCode(
        "a2i_access_denied",
        Stage.A2I,
        "the worker's role may not start loops on the flow definition (AccessDeniedException: "
        "check FlowDefinitionArns)",
    ),
    RejectionCode(
        "loop_name_unavailable",
        Stage.A2I,
        "A2I refused the request's deterministic loop name and no loop of that name exists",
    ),
    RejectionCode(
        "retries_exhausted",
        Stage.RETRIES,
        "transient errors on every receive up to the message's last (the queue's "
        "`maxReceiveCount`, else `A2I_WORKER_MAX_RECEIVES`); the reason names the last error",
    ),
    RejectionCode(
        "internal_error",
        Stage.RETRIES,
        "an unexpected error (a bug, logged with its traceback) on every receive up to the last",
    ),
]

#: code -> :class:`RejectionCode`, in the order a message meets the checks.
REJECTION_CODES = MappingProxyType({c.code: c for c in _CODES})
