"""A2I's own condition types, with A2I's semantics.

``ModerationLabelConfidenceCheck`` reads a Rekognition ``DetectModerationLabels`` response;
``ImportantFormKeyConfidenceCheck`` and ``MissingImportantFormKey`` read a Textract
``AnalyzeDocument`` (FORMS) response; ``Sampling`` reads only the request id.
See docs/rules.md for every semantic choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from a2i_worker.rules.compare import OPERATOR_SUFFIXES, Comparison, fmt_number, read_comparison
from a2i_worker.rules.model import Condition, EvalContext
from a2i_worker.rules.params import Invalid, ParamReader, Parts
from a2i_worker.rules.sampling import draw
from a2i_worker.rules.textract import FormPair, normalize_key

__all__ = ["A2I_PARSERS"]

Number = int | float
CATCH_ALL = "*"


def _ops(prefix: str) -> list[str]:
    return [prefix + s for s in OPERATOR_SUFFIXES]


def _span(values: tuple[Number, ...]) -> str:
    lo, hi = min(values), max(values)
    return fmt_number(lo) if lo == hi else f"{fmt_number(lo)}..{fmt_number(hi)}"


# --- ModerationLabelConfidenceCheck ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModerationLabelConfidenceCheck:
    """Holds when some label named ``label`` (any label for ``*``; exact, case-sensitive
    match of ``Name``) has a confidence satisfying ``comparison``."""

    label: str
    comparison: Comparison
    condition_type: str = "ModerationLabelConfidenceCheck"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        any_label = self.label == CATCH_ALL
        seen: list[Number] = []
        for item in ctx.labels:
            if item.confidence is None or (not any_label and item.name != self.label):
                continue
            if self.comparison.holds(item.confidence):
                what = "a label ('*')" if any_label else f"label '{self.label}'"
                return True, self.comparison.describe(
                    f"{what} confidence {fmt_number(item.confidence)}"
                )
            seen.append(item.confidence)
        if not verbose:
            return False, ""
        what = "any label" if any_label else f"label '{self.label}'"
        if not seen:
            return False, f"no {what} with a confidence in the response"
        return False, self.comparison.describe_not(f"{what} confidence {_span(tuple(seen))}")


def _moderation(reader: ParamReader, path: str) -> Condition:
    label = reader.string("ModerationLabelName", required=True)
    assert label is not None
    comparison = read_comparison(reader, "Confidence", low=0, high=100, required=True)
    assert comparison is not None
    return ModerationLabelConfidenceCheck(label, comparison)


# --- Textract form keys ------------------------------------------------------------------


def _read_key(reader: ParamReader, *, allow_catch_all: bool) -> tuple[str, frozenset[str]]:
    key = reader.string("ImportantFormKey", required=True)
    assert key is not None
    aliases = reader.strings("ImportantFormKeyAliases") or []
    if key.strip() == CATCH_ALL:
        if not allow_catch_all:
            raise Invalid(
                (*reader.at, "ImportantFormKey"),
                "the catch-all '*' is only meaningful for ImportantFormKeyConfidenceCheck; "
                "MissingImportantFormKey needs a real key",
            )
        if aliases:
            raise Invalid(
                (*reader.at, "ImportantFormKeyAliases"),
                "aliases have no meaning with the catch-all key '*'",
            )
        return CATCH_ALL, frozenset()
    names = set()
    for i, name in enumerate([key, *aliases]):
        norm = normalize_key(name)
        if not norm:
            at: Parts = (
                (*reader.at, "ImportantFormKey")
                if i == 0
                else (*reader.at, "ImportantFormKeyAliases", i - 1)
            )
            raise Invalid(at, "a form key must contain more than whitespace and colons")
        names.add(norm)
    return key, frozenset(names)


def _key_phrase(key: str, aliased: bool) -> str:
    if key == CATCH_ALL:
        return "a form key ('*')"
    return f"form key '{key}'" + (" (or an alias)" if aliased else "")


@dataclass(frozen=True, slots=True)
class ImportantFormKeyConfidenceCheck:
    """Holds when some key-value pair whose key matches (any pair for ``*``) satisfies every
    configured comparison: ``kv`` by the KEY and VALUE blocks' confidence, ``word`` by the
    confidence of *each* WORD block of its key and value."""

    key: str
    names: frozenset[str]
    aliased: bool
    kv: Comparison | None
    word: Comparison | None
    condition_type: str = "ImportantFormKeyConfidenceCheck"

    def _pair_holds(self, pair: FormPair) -> bool:
        if self.kv is not None:
            if pair.missing_kv or not pair.kv_confidences:
                return False
            if not all(self.kv.holds(c) for c in pair.kv_confidences):
                return False
        if self.word is not None:
            if pair.missing_words or not pair.word_confidences:
                return False
            if not all(self.word.holds(c) for c in pair.word_confidences):
                return False
        return True

    def _describe(self, pair: FormPair, held: bool) -> str:
        parts: list[str] = []
        for comparison, values, label in (
            (self.kv, pair.kv_confidences, "key-value block confidence"),
            (self.word, pair.word_confidences, "word block confidences"),
        ):
            if comparison is None:
                continue
            if not values:
                parts.append(f"no {label} ({comparison.parameter})")
                continue
            observed = f"{label} {_span(values)}"
            ok = all(comparison.holds(c) for c in values)
            parts.append(
                comparison.describe(observed) if ok or held else comparison.describe_not(observed)
            )
        return "; ".join(parts)

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        matched: list[FormPair] = []
        catch_all = self.key == CATCH_ALL
        for pair in ctx.pairs:
            if not catch_all and pair.key not in self.names:
                continue
            if self._pair_holds(pair):
                more = sum(
                    1
                    for p in ctx.pairs
                    if (catch_all or p.key in self.names) and self._pair_holds(p)
                )
                suffix = f" ({more} matching pairs)" if more > 1 else ""
                return True, (
                    f"{_key_phrase(self.key, self.aliased)}: {self._describe(pair, True)}{suffix}"
                )
            matched.append(pair)
        if not verbose:
            return False, ""
        phrase = _key_phrase(self.key, self.aliased)
        if not matched:
            return False, f"{phrase} not found among {len(ctx.pairs)} detected key(s)"
        return False, f"{phrase} found but no pair qualifies: {self._describe(matched[0], False)}"


def _form_confidence(reader: ParamReader, path: str) -> Condition:
    key, names = _read_key(reader, allow_catch_all=True)
    kv = read_comparison(reader, "KeyValueBlockConfidence", low=0, high=100, required=False)
    word = read_comparison(reader, "WordBlockConfidence", low=0, high=100, required=False)
    if kv is None and word is None:
        raise Invalid(
            reader.at,
            "ImportantFormKeyConfidenceCheck needs a KeyValueBlockConfidence* and/or a "
            "WordBlockConfidence* operator",
        )
    return ImportantFormKeyConfidenceCheck(key, names, len(names) > 1, kv, word)


@dataclass(frozen=True, slots=True)
class MissingImportantFormKey:
    """Holds when no detected KEY matches the key or any alias (also when the prediction
    holds no Textract blocks at all)."""

    key: str
    names: frozenset[str]
    aliased: bool
    condition_type: str = "MissingImportantFormKey"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        pairs = ctx.pairs
        for pair in pairs:
            if pair.key in self.names:
                if not verbose:
                    return False, ""
                return False, f"{_key_phrase(self.key, self.aliased)} found"
        aliases = " nor its aliases" if self.aliased else ""
        return True, f"form key '{self.key}'{aliases} not found among {len(pairs)} detected key(s)"


def _missing_key(reader: ParamReader, path: str) -> Condition:
    key, names = _read_key(reader, allow_catch_all=False)
    return MissingImportantFormKey(key, names, len(names) > 1)


# --- Sampling ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sampling:
    """Holds for ``percentage`` % of request ids: a hash of (path, request id) in
    ``[0, 100)`` below the percentage."""

    percentage: Number
    salt: str
    condition_type: str = "Sampling"

    def check(self, ctx: EvalContext, verbose: bool) -> tuple[bool, str]:
        value = draw(ctx.request_id, self.salt)
        if value < self.percentage:
            return True, (
                f"request sampled: draw {value:.4f} < {fmt_number(self.percentage)} "
                "(RandomSamplingPercentage)"
            )
        if not verbose:
            return False, ""
        return False, (
            f"request not sampled: draw {value:.4f} >= {fmt_number(self.percentage)} "
            "(RandomSamplingPercentage)"
        )


def _sampling(reader: ParamReader, path: str) -> Condition:
    pct = reader.number("RandomSamplingPercentage", low=0.01, high=100, required=True)
    assert pct is not None
    return Sampling(pct, path)


Parser = Callable[[ParamReader, str], Condition]

# condition type → (allowed parameter names, parser)
A2I_PARSERS: dict[str, tuple[tuple[str, ...], Parser]] = {
    "ModerationLabelConfidenceCheck": (("ModerationLabelName", *_ops("Confidence")), _moderation),
    "ImportantFormKeyConfidenceCheck": (
        (
            "ImportantFormKey",
            "ImportantFormKeyAliases",
            *_ops("KeyValueBlockConfidence"),
            *_ops("WordBlockConfidence"),
        ),
        _form_confidence,
    ),
    "MissingImportantFormKey": (("ImportantFormKey", "ImportantFormKeyAliases"), _missing_key),
    "Sampling": (("RandomSamplingPercentage",), _sampling),
}
