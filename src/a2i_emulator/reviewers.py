"""Simulated reviewers: delay distributions, outcome mix, answer model (pure, seeded RNG).

A :class:`ReviewerSpec` is parsed from the control API's JSON (``ValueError`` on bad input)
and answers three questions for a new loop, using only the ``random.Random`` it is given:
how long until the loop finishes (:meth:`ReviewerSpec.sample_delay`), how it ends
(:meth:`ReviewerSpec.sample_outcome`), and what the reviewers answered
(:meth:`ReviewerSpec.human_answers`, the ``humanAnswers`` list of output.json).

JSON form::

    {"mode": "auto" | "manual",
     "delay": {"distribution": "fixed", "seconds": 2}
            | {"distribution": "uniform", "low": 1, "high": 5}
            | {"distribution": "exponential", "mean": 3}
            | {"distribution": "lognormal", "mu": 0.5, "sigma": 1.0},
     "outcomes": {"Completed": 0.9, "Expired": 0.05, "InternalError": 0.05},
     "stop_delay": 1.0,
     "answers": {"template": {...},
                 "copy": {"answer_key": "input.dotted.path"},
                 "perturb": {"answer_key": {"p": 0.1, "relative": 0.05}},
                 "flip": {"answer_key": 0.1},
                 "workers": 1}}
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from a2i_emulator.strict import check_keys

__all__ = [
    "OUTCOMES",
    "AnswerModel",
    "DelaySpec",
    "ReviewerSpec",
    "iso_ms",
]

OUTCOMES: tuple[str, ...] = ("Completed", "Expired", "InternalError")
_DELAY_PARAMS: dict[str, tuple[str, ...]] = {
    "fixed": ("seconds",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "lognormal": ("mu", "sigma"),
}
_DISTRIBUTIONS = tuple(_DELAY_PARAMS)
_MISSING = object()


def iso_ms(epoch: float) -> str:
    """``2026-03-02T10:05:12.003Z`` (UTC, millisecond precision), as A2I writes times."""
    stamp = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _number(obj: Mapping[str, Any], key: str, *, minimum: float = 0.0) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"delay.{key} must be a finite number")
    if value < minimum:
        raise ValueError(f"delay.{key} must be >= {minimum}")
    return float(value)


@dataclass(frozen=True, slots=True)
class DelaySpec:
    """A distribution of review durations in seconds."""

    distribution: str = "fixed"
    params: tuple[tuple[str, float], ...] = (("seconds", 1.0),)

    @classmethod
    def from_json(cls, obj: Any) -> DelaySpec:
        if not isinstance(obj, Mapping):
            raise TypeError("delay must be an object")
        kind = obj.get("distribution", "fixed")
        check_keys(obj, ("distribution", *_DELAY_PARAMS.get(kind, ())), f"delay ({kind})")
        if kind == "fixed":
            params = {"seconds": _number(obj, "seconds")}
        elif kind == "uniform":
            params = {"low": _number(obj, "low"), "high": _number(obj, "high")}
            if params["high"] < params["low"]:
                raise ValueError("delay.high must be >= delay.low")
        elif kind == "exponential":
            params = {"mean": _number(obj, "mean")}
        elif kind == "lognormal":
            params = {"mu": _number(obj, "mu", minimum=-50.0), "sigma": _number(obj, "sigma")}
        else:
            raise ValueError(f"delay.distribution must be one of {', '.join(_DISTRIBUTIONS)}")
        return cls(kind, tuple(params.items()))

    def to_json(self) -> dict[str, Any]:
        return {"distribution": self.distribution, **dict(self.params)}

    def sample(self, rng: random.Random) -> float:
        p = dict(self.params)
        if self.distribution == "fixed":
            return p["seconds"]
        if self.distribution == "uniform":
            return rng.uniform(p["low"], p["high"])
        if self.distribution == "exponential":
            return 0.0 if p["mean"] == 0 else rng.expovariate(1.0 / p["mean"])
        return min(rng.lognormvariate(p["mu"], p["sigma"]), 365 * 86400.0)


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, Mapping) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def _perturb_spec(obj: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(obj, Mapping):
        raise TypeError("answers.perturb must be an object")
    out: dict[str, tuple[float, float]] = {}
    for key, spec in obj.items():
        if not isinstance(spec, Mapping):
            raise TypeError(f"answers.perturb.{key} must be an object")
        check_keys(spec, ("p", "relative"), f"answers.perturb.{key}")
        p, relative = spec.get("p"), spec.get("relative", 0.1)
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            raise ValueError(f"answers.perturb.{key}.p must be a probability in [0, 1]")
        if isinstance(relative, bool) or not isinstance(relative, int | float) or relative <= 0:
            raise ValueError(f"answers.perturb.{key}.relative must be a number > 0")
        out[str(key)] = (float(p), float(relative))
    return out


def _perturbed(value: Any, relative: float, rng: random.Random) -> Any:
    """``value`` moved by a factor in ±[relative/10, relative]; non-numbers unchanged."""
    factor = 1 + rng.choice((-1, 1)) * rng.uniform(relative / 10, relative)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return round(value * factor, 2)
    if isinstance(value, str):
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            return value
        return f"{number * factor:.2f}"
    return value


@dataclass(frozen=True)
class AnswerModel:
    """Builds ``answerContent``: template, then copied input fields, then perturbed numbers
    (a reviewer correcting the model: with probability ``p`` a number, or a numeric string
    such as "1250.00", moves by up to ``relative`` of itself), then boolean flips."""

    template: Mapping[str, Any] = field(default_factory=dict)
    copy_from: Mapping[str, str] = field(default_factory=dict)
    flip: Mapping[str, float] = field(default_factory=dict)
    workers: int = 1
    perturb: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, obj: Any) -> AnswerModel:
        if not isinstance(obj, Mapping):
            raise TypeError("answers must be an object")
        check_keys(obj, ("template", "copy", "perturb", "flip", "workers"), "answers")
        template = obj.get("template", {})
        copy_from = obj.get("copy", {})
        flip = obj.get("flip", {})
        workers = obj.get("workers", 1)
        if not isinstance(template, Mapping):
            raise TypeError("answers.template must be an object")
        if not isinstance(copy_from, Mapping) or not all(
            isinstance(v, str) for v in copy_from.values()
        ):
            raise ValueError("answers.copy must map answer keys to input paths")
        if not isinstance(flip, Mapping) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1
            for v in flip.values()
        ):
            raise ValueError("answers.flip must map answer keys to probabilities in [0, 1]")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 10:
            raise ValueError("answers.workers must be an integer in 1..10")
        return cls(
            dict(template),
            dict(copy_from),
            {k: float(v) for k, v in flip.items()},
            workers,
            _perturb_spec(obj.get("perturb", {})),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "template": dict(self.template),
            "copy": dict(self.copy_from),
            "perturb": {k: {"p": p, "relative": r} for k, (p, r) in self.perturb.items()},
            "flip": dict(self.flip),
            "workers": self.workers,
        }

    def answer_content(self, input_obj: Any, rng: random.Random) -> dict[str, Any]:
        content: dict[str, Any] = copy.deepcopy(dict(self.template))
        for key, path in self.copy_from.items():
            value = _dig(input_obj, path)
            if value is not _MISSING:
                content[key] = copy.deepcopy(value)
        for key, (p, relative) in self.perturb.items():
            if key in content and rng.random() < p:
                content[key] = _perturbed(content[key], relative, rng)
        for key, p in self.flip.items():
            if isinstance(content.get(key), bool) and rng.random() < p:
                content[key] = not content[key]
        return content


@dataclass(frozen=True)
class ReviewerSpec:
    """How the reviewers of one flow definition behave."""

    mode: str = "auto"
    delay: DelaySpec = field(default_factory=DelaySpec)
    outcomes: tuple[tuple[str, float], ...] = (("Completed", 1.0),)
    answers: AnswerModel = field(default_factory=AnswerModel)
    stop_delay: float = 1.0

    @classmethod
    def from_json(cls, obj: Any, base: ReviewerSpec | None = None) -> ReviewerSpec:
        """Parse ``obj``; keys it omits keep ``base``'s values (defaults if ``base`` is None)."""
        if not isinstance(obj, Mapping):
            raise TypeError("reviewer spec must be an object")
        check_keys(obj, ("mode", "delay", "outcomes", "answers", "stop_delay"), "reviewers")
        base = base or cls()
        mode = obj.get("mode", base.mode)
        if mode not in ("auto", "manual"):
            raise ValueError("mode must be 'auto' or 'manual'")
        delay = DelaySpec.from_json(obj["delay"]) if "delay" in obj else base.delay
        outcomes = base.outcomes
        if "outcomes" in obj:
            raw = obj["outcomes"]
            if not isinstance(raw, Mapping) or not raw:
                raise ValueError("outcomes must be a non-empty object")
            parsed: list[tuple[str, float]] = []
            for key, weight in raw.items():
                if key not in OUTCOMES:
                    raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
                if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
                    raise ValueError("outcome weights must be non-negative numbers")
                parsed.append((key, float(weight)))
            if sum(w for _, w in parsed) <= 0:
                raise ValueError("outcome weights must not all be zero")
            outcomes = tuple(parsed)
        answers = AnswerModel.from_json(obj["answers"]) if "answers" in obj else base.answers
        stop_delay = base.stop_delay
        if "stop_delay" in obj:
            stop_delay = _number(obj, "stop_delay")
        return cls(mode, delay, outcomes, answers, stop_delay)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "delay": self.delay.to_json(),
            "outcomes": dict(self.outcomes),
            "answers": self.answers.to_json(),
            "stop_delay": self.stop_delay,
        }

    def sample_delay(self, rng: random.Random) -> float:
        return self.delay.sample(rng)

    def sample_outcome(self, rng: random.Random) -> str:
        names = [name for name, _ in self.outcomes]
        weights = [w for _, w in self.outcomes]
        return rng.choices(names, weights=weights, k=1)[0]

    def human_answers(
        self,
        input_obj: Any,
        *,
        created: float,
        finished: float,
        rng: random.Random,
        answer_override: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``humanAnswers`` list of output.json, one entry per simulated worker."""
        out: list[dict[str, Any]] = []
        for _ in range(self.answers.workers):
            span = max(finished - created, 0.0)
            accepted = created + span * rng.uniform(0.0, 0.5)
            submitted = max(accepted, finished - span * rng.uniform(0.0, 0.05))
            content = (
                copy.deepcopy(dict(answer_override))
                if answer_override is not None
                else self.answers.answer_content(input_obj, rng)
            )
            worker_id = f"{rng.getrandbits(64):016x}"
            out.append(
                {
                    "acceptanceTime": iso_ms(accepted),
                    "submissionTime": iso_ms(submitted),
                    "timeSpentInSeconds": round(submitted - accepted, 3),
                    "workerId": worker_id,
                    "workerMetadata": {
                        "identityData": {
                            "identityProviderType": "Cognito",
                            "issuer": "https://cognito-idp.us-east-1.amazonaws.com/"
                            "us-east-1_EMULATOR",
                            "sub": _uuid(rng),
                        }
                    },
                    "answerContent": content,
                }
            )
        return out


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
