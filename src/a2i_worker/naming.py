"""Deterministic human loop names.

A redelivered request must map to the *same* A2I human loop, so a loop's name is a
pure function of ``(flow definition ARN, request_id, attempt)``::

    <flow-slug>-<26 base32 chars>-<attempt>      e.g. invoices-7qk2m4d9x1c3v5b7n8p0r2t4w6-1

- ``flow-slug``: the flow definition's name (the ARN part after ``flow-definition/``),
  lower-cased, every run of characters outside ``[a-z0-9]`` turned into one ``-``,
  trimmed, cut to :data:`MAX_SLUG_LENGTH` characters (``loop`` if nothing is left).
  It is for people reading the console; it carries no identity.
- the digest: the first 130 bits of SHA-256 over the *length-prefixed* UTF-8 encoding
  of the full flow definition ARN and the request_id (8-byte big-endian length before
  each part, so ``("ab", "c")`` and ``("a", "bc")`` can never encode alike), written in
  lower-case Crockford base32 (``0-9a-z`` without ``i l o u``): 26 characters.
- ``attempt``: 1 … :data:`MAX_ATTEMPT` in decimal, so an expired loop's resubmission
  gets a fresh name (A2I never lets a finished loop's name be reused).

The result always matches A2I's ``^[a-z0-9](-*[a-z0-9])*$`` and is at most 63 characters:
32 (slug) + 1 + 26 + 1 + 3 (attempt) = 63.

Collisions. Two different (ARN, request_id) pairs share a name only if their 130-bit
digests collide. For n requests the birthday bound gives p ≈ n² / 2¹³¹; for n = 10⁹
that is 10¹⁸ / 2.7·10³⁹ ≈ 3.7·10⁻²², i.e. never in practice. The slug only narrows
the space further (two flows with the same slug still differ in the digest because the
full ARN is hashed).
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

__all__ = [
    "DIGEST_LENGTH",
    "LOOP_NAME_PATTERN",
    "MAX_ATTEMPT",
    "MAX_LOOP_NAME_LENGTH",
    "MAX_SLUG_LENGTH",
    "ParsedLoopName",
    "flow_definition_name",
    "flow_slug",
    "loop_name",
    "parse_loop_name",
    "stable_digest",
]

#: A2I's HumanLoopName rule (botocore model ``sagemaker-a2i-runtime``).
LOOP_NAME_PATTERN = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
MAX_LOOP_NAME_LENGTH = 63
#: Highest attempt number a name can carry (three digits).
MAX_ATTEMPT = 999
#: Characters of base32 digest: 26 * 5 = 130 bits.
DIGEST_LENGTH = 26
MAX_SLUG_LENGTH = MAX_LOOP_NAME_LENGTH - DIGEST_LENGTH - len(str(MAX_ATTEMPT)) - 2

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_PARSE = re.compile(
    r"(?P<slug>[a-z0-9](?:-*[a-z0-9])*)"
    r"-(?P<digest>[0-9a-hjkmnp-tv-z]{26})"
    r"-(?P<attempt>[1-9][0-9]{0,2})"
)
_FLOW_MARKER = ":flow-definition/"


class ParsedLoopName(NamedTuple):
    """The parts of a name made by :func:`loop_name`."""

    slug: str
    digest: str
    attempt: int


def stable_digest(*parts: str, chars: int = DIGEST_LENGTH) -> str:
    """Lower-case Crockford base32 of SHA-256 over length-prefixed UTF-8 ``parts``.

    Stable across processes and versions (no salted ``hash()``); unambiguous for any
    number of parts. ``chars`` * 5 bits are kept (at most 51 characters). Lone
    surrogates are encoded with ``surrogatepass`` so no str can make this raise.
    """
    if not 1 <= chars <= 51:
        raise ValueError("chars must be between 1 and 51")
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    value = int.from_bytes(h.digest(), "big") >> (256 - chars * 5)
    out = []
    for _ in range(chars):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def flow_definition_name(flow_definition_arn: str) -> str:
    """The name part of a flow definition ARN (the whole string if it has none)."""
    _, marker, name = flow_definition_arn.partition(_FLOW_MARKER)
    return name if marker else flow_definition_arn


def flow_slug(flow_definition_arn: str) -> str:
    """The sanitized, truncated flow definition name used as a loop name prefix."""
    slug = _NOT_SLUG.sub("-", flow_definition_name(flow_definition_arn).lower()).strip("-")
    slug = slug[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or "loop"


def loop_name(flow_definition_arn: str, request_id: str, attempt: int) -> str:
    """The A2I human loop name for ``attempt`` of ``request_id`` on a flow definition.

    Deterministic: the same arguments give the same name in every process. Raises
    ``ValueError`` if ``attempt`` is outside 1 … :data:`MAX_ATTEMPT`.
    """
    if isinstance(attempt, bool) or not 1 <= attempt <= MAX_ATTEMPT:
        raise ValueError(f"attempt must be between 1 and {MAX_ATTEMPT}")
    digest = stable_digest(flow_definition_arn, request_id)
    return f"{flow_slug(flow_definition_arn)}-{digest}-{attempt}"


def parse_loop_name(name: str) -> ParsedLoopName | None:
    """Split a name made by :func:`loop_name`; ``None`` for any other string."""
    if len(name) > MAX_LOOP_NAME_LENGTH:
        return None
    m = _PARSE.fullmatch(name)
    if m is None:
        return None
    return ParsedLoopName(m["slug"], m["digest"], int(m["attempt"]))
