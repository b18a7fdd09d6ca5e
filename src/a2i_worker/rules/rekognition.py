"""Moderation labels out of a Rekognition ``DetectModerationLabels`` response (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from a2i_worker.rules.params import is_number

__all__ = ["ModerationLabel", "moderation_labels"]


@dataclass(frozen=True, slots=True)
class ModerationLabel:
    """One detected label; ``name``/``confidence`` are ``None`` when absent or malformed."""

    name: str | None
    confidence: int | float | None


def moderation_labels(response: Any) -> tuple[ModerationLabel, ...]:
    """Every entry of ``ModerationLabels``, in response order.

    Reads ``DetectModerationLabels`` (``ModerationLabels[].{Name, Confidence}``) and also
    the video form of ``GetContentModeration`` (``ModerationLabels[].ModerationLabel``).
    Parent labels are separate entries in Rekognition's response and are matched by their
    own ``Name``; ``ParentName`` is not used. Anything malformed yields no label, never an
    exception.
    """
    if not isinstance(response, Mapping):
        return ()
    items = response.get("ModerationLabels")
    if not isinstance(items, list):
        return ()
    labels: list[ModerationLabel] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        inner = item.get("ModerationLabel")
        if isinstance(inner, Mapping) and "Name" not in item:
            item = inner
        name = item.get("Name")
        confidence = item.get("Confidence")
        labels.append(
            ModerationLabel(
                name if isinstance(name, str) else None,
                confidence if is_number(confidence) else None,
            )
        )
    return tuple(labels)
