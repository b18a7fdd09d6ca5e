"""Form key-value pairs out of a Textract ``AnalyzeDocument`` (FORMS) response (pure).

A pair is a ``KEY_VALUE_SET`` block whose ``EntityTypes`` holds ``KEY``. Its key text is
the ``Text`` of its ``CHILD`` ``WORD`` blocks joined by single spaces; its value is the
``KEY_VALUE_SET`` (``VALUE``) block(s) named by its ``VALUE`` relationship, whose own
``CHILD`` ``WORD`` blocks are the value's words. ``SELECTION_ELEMENT`` children are not
word blocks and are ignored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from a2i_worker.rules.params import is_number

__all__ = ["FormPair", "form_pairs", "normalize_key"]

Number = int | float

_SPACE = re.compile(r"\s+")
_TRAILING = ":\uff1a"  # ASCII and full-width colon


def normalize_key(text: str) -> str:
    """The comparable form of a form key: NFKC, case-folded, whitespace runs collapsed to one
    space, surrounding whitespace and trailing colons removed (``"Total :"`` → ``"total"``)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SPACE.sub(" ", text).strip()
    while text and text[-1] in _TRAILING:
        text = text[:-1].rstrip()
    return text


@dataclass(frozen=True, slots=True)
class FormPair:
    """One detected key-value pair, reduced to what the conditions need.

    ``key`` is the normalized key text. ``kv_confidences`` holds the ``Confidence`` of the
    KEY block and of each linked VALUE block; ``word_confidences`` those of the WORD blocks
    of key and value. A block whose confidence is missing or not a number is counted in
    ``missing_confidences`` instead.
    """

    key: str
    kv_confidences: tuple[Number, ...]
    word_confidences: tuple[Number, ...]
    missing_kv: int
    missing_words: int


def _ids(block: Mapping[str, Any], relationship: str) -> list[str]:
    rels = block.get("Relationships")
    out: list[str] = []
    if not isinstance(rels, list):
        return out
    for rel in rels:
        if isinstance(rel, Mapping) and rel.get("Type") == relationship:
            ids = rel.get("Ids")
            if isinstance(ids, list):
                out.extend(i for i in ids if isinstance(i, str))
    return out


def _words(block: Mapping[str, Any], by_id: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    words: list[Any] = []
    for child_id in _ids(block, "CHILD"):
        child = by_id.get(child_id)
        if child is not None and child.get("BlockType") == "WORD":
            words.append(child)
    return words


def _numbers(values: list[Any]) -> tuple[Number, ...]:
    return tuple(v for v in values if is_number(v))


def form_pairs(response: Any) -> tuple[FormPair, ...]:
    """Every KEY of ``Blocks`` with its confidences, in response order; never raises on
    malformed input (anything unrecognised is skipped)."""
    if not isinstance(response, Mapping):
        return ()
    blocks = response.get("Blocks")
    if not isinstance(blocks, list):
        return ()
    by_id: dict[str, Mapping[str, Any]] = {}
    for block in blocks:
        if isinstance(block, Mapping):
            block_id = block.get("Id")
            if isinstance(block_id, str):
                by_id.setdefault(block_id, block)
    pairs: list[FormPair] = []
    for block in blocks:
        if not isinstance(block, Mapping) or block.get("BlockType") != "KEY_VALUE_SET":
            continue
        entity_types = block.get("EntityTypes")
        if not isinstance(entity_types, list) or "KEY" not in entity_types:
            continue
        key_words = _words(block, by_id)
        key_text = " ".join(w["Text"] for w in key_words if isinstance(w.get("Text"), str))
        kv_blocks: list[Mapping[str, Any]] = [block]
        value_words: list[Any] = []
        for value_id in _ids(block, "VALUE"):
            value = by_id.get(value_id)
            if value is not None and value.get("BlockType") == "KEY_VALUE_SET":
                kv_blocks.append(value)
                value_words.extend(_words(value, by_id))
        kv = [b.get("Confidence") for b in kv_blocks]
        words = [w.get("Confidence") for w in (*key_words, *value_words)]
        kv_ok = _numbers(kv)
        words_ok = _numbers(words)
        pairs.append(
            FormPair(
                normalize_key(key_text),
                kv_ok,
                words_ok,
                len(kv) - len(kv_ok),
                len(words) - len(words_ok),
            )
        )
    return tuple(pairs)
