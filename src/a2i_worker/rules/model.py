"""Values the rules engine hands out, and the seam every condition type implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from a2i_worker.rules.rekognition import ModerationLabel, moderation_labels
from a2i_worker.rules.textract import FormPair, form_pairs

__all__ = ["Condition", "Decision", "EvalContext", "FiredCondition"]


@dataclass(frozen=True)
class FiredCondition:
    """A simple condition that held and contributed to the decision.

    ``path`` locates it in the document (``"Conditions[0].And[1]"``); ``explanation``
    names the operator, threshold and what was observed (numbers, and label or key
    names written in the rule), never free text taken from the prediction.
    """

    path: str
    condition_type: str
    explanation: str

    def to_json(self) -> dict[str, str]:
        """``{"path", "condition_type", "explanation"}``."""
        return {
            "path": self.path,
            "condition_type": self.condition_type,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class Decision:
    """Whether to start a human loop, and the simple conditions that made it so."""

    activated: bool
    fired: tuple[FiredCondition, ...]

    def to_json(self) -> dict[str, Any]:
        """``{"activated": bool, "fired": [FiredCondition.to_json(), ...]}``."""
        return {"activated": self.activated, "fired": [f.to_json() for f in self.fired]}


class EvalContext:
    """One evaluation: the prediction, the request id, and views computed at most once."""

    __slots__ = ("_labels", "_pairs", "prediction", "request_id")

    def __init__(self, prediction: Any, request_id: str) -> None:
        self.prediction = prediction
        self.request_id = request_id
        self._labels: tuple[ModerationLabel, ...] | None = None
        self._pairs: tuple[FormPair, ...] | None = None

    @property
    def labels(self) -> tuple[ModerationLabel, ...]:
        """The Rekognition moderation labels of the prediction."""
        if self._labels is None:
            self._labels = moderation_labels(self.prediction)
        return self._labels

    @property
    def pairs(self) -> tuple[FormPair, ...]:
        """The Textract form key-value pairs of the prediction."""
        if self._pairs is None:
            self._pairs = form_pairs(self.prediction)
        return self._pairs


class Condition(Protocol):
    """A compiled simple condition: parsed and validated once, evaluated many times."""

    @property
    def condition_type(self) -> str:
        """The ConditionType name this condition was written with."""
        ...

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        """``(held, explanation)``: why it held, or (only when ``verbose``) why not.

        Without ``verbose`` a condition that does not hold may return ``""`` to save work.
        Must not raise on any JSON prediction.
        """
        ...
