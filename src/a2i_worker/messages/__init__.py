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

from a2i_worker.messages._fields import (
    CONTENT_CLASSIFIERS,
    FLOW_DEFINITION_ARN_PATTERN,
    MAX_ARN_LENGTH,
    MAX_DEPTH,
    MAX_INPUT_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_METADATA_CHARS,
    MAX_REQUEST_ID_LENGTH,
    ROUTE_NAME_PATTERN,
    ContentClassifier,
    ContentClassifiers,
    FlowDefinitionArn,
    MessageRejected,
    RouteName,
    is_valid_request_id,
    serialize_input,
)
from a2i_worker.messages._models import (
    Activation,
    ActivationReason,
    CancelRequest,
    Outcome,
    ReviewRequest,
    ReviewResult,
    Timings,
    request_fingerprint,
    result_id,
)
from a2i_worker.messages._parse import parse_message

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
