"""Strict reading of a ``ConditionParameters`` object, with the JSON location of every fault.

Pure helpers shared by the condition modules: each accessor either returns a clean,
typed value or raises :class:`Invalid` naming the member (as a tuple of JSON-pointer
parts) and the reason in words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "DuplicateKeyDict",
    "Invalid",
    "NonFinite",
    "ParamReader",
    "Parts",
    "check_object",
    "is_number",
    "number_problem",
]

Parts = tuple[str | int, ...]


class Invalid(Exception):  # noqa: N818 - internal signal, converted to RulesError by the loader
    """A fault at JSON location ``at`` (pointer parts), described by ``reason``."""

    def __init__(self, at: Parts, reason: str) -> None:
        super().__init__(reason)
        self.at = at
        self.reason = reason


class DuplicateKeyDict(dict[str, Any]):
    """A parsed JSON object that remembers keys which appeared more than once."""

    duplicates: tuple[str, ...] = ()


class NonFinite:
    """Stands in for ``NaN``/``Infinity``/``-Infinity`` read from a JSON text."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


def is_number(value: object) -> bool:
    """True for a finite JSON number (``bool`` is not a number here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def number_problem(value: object) -> str | None:
    """Why ``value`` is not an acceptable number, or ``None`` when it is."""
    if isinstance(value, NonFinite):
        return f"{value.literal} is not a number JSON allows; use a finite number"
    if isinstance(value, bool):
        return f"expected a number, got the boolean {str(value).lower()}"
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number, got NaN or Infinity"
    if not isinstance(value, int | float):
        return f"expected a number, got {type_name(value)}"
    return None


def type_name(value: object) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | NonFinite):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return f"a non-JSON value ({type(value).__name__})"


def check_object(value: object, at: Parts, what: str) -> Mapping[str, Any]:
    """``value`` as a JSON object with string keys and no duplicate keys, else :class:`Invalid`."""
    if not isinstance(value, Mapping):
        raise Invalid(at, f"{what} must be an object, got {type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise Invalid(at, f"{what} has a non-string key {key!r}")
    duplicates = getattr(value, "duplicates", ())
    if duplicates:
        raise Invalid((*at, duplicates[0]), f"key '{duplicates[0]}' appears more than once")
    return value


class ParamReader:
    """Reads the members of one ``ConditionParameters`` object and rejects the rest.

    Construct with the set of allowed names; any other member is an error. Accessors
    record what they consumed; nothing else is checked implicitly.
    """

    def __init__(
        self, value: object, at: Parts, condition_type: str, allowed: Iterable[str]
    ) -> None:
        self.at = at
        self.condition_type = condition_type
        self.params = check_object(value, at, f"ConditionParameters of {condition_type}")
        self.allowed: Final = tuple(allowed)
        for key in self.params:
            if key not in self.allowed:
                raise Invalid(
                    (*at, key),
                    f"unknown parameter '{key}' for {condition_type}; "
                    f"allowed: {', '.join(self.allowed)}",
                )

    def has(self, name: str) -> bool:
        """True when the parameter is present (even if null)."""
        return name in self.params

    def _missing(self, name: str) -> Invalid:
        return Invalid(self.at, f"{self.condition_type} needs the parameter '{name}'")

    def number(
        self,
        name: str,
        *,
        low: float | None = None,
        high: float | None = None,
        required: bool = False,
    ) -> int | float | None:
        """A finite number within ``[low, high]`` (inclusive), or ``None`` when absent."""
        if name not in self.params:
            if required:
                raise self._missing(name)
            return None
        value = self.params[name]
        problem = number_problem(value)
        if problem is not None:
            raise Invalid((*self.at, name), problem)
        if (low is not None and value < low) or (high is not None and value > high):
            raise Invalid(
                (*self.at, name),
                f"{value} is out of range; {name} must be between {low:g} and {high:g}"
                if low is not None and high is not None
                else f"{value} is out of range; {name} must be at least {low:g}"
                if low is not None
                else f"{value} is out of range; {name} must be at most {high:g}",
            )
        assert isinstance(value, int | float)
        return value

    def string(self, name: str, *, required: bool = False) -> str | None:
        """A non-empty string, or ``None`` when absent."""
        if name not in self.params:
            if required:
                raise self._missing(name)
            return None
        value = self.params[name]
        if not isinstance(value, str):
            raise Invalid((*self.at, name), f"expected a string, got {type_name(value)}")
        if not value.strip():
            raise Invalid((*self.at, name), f"{name} must not be empty")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices`` (exact spelling), ``default`` when absent."""
        if name not in self.params:
            return default
        value = self.params[name]
        if not isinstance(value, str) or value not in choices:
            shown = repr(value) if isinstance(value, str) else type_name(value)
            raise Invalid(
                (*self.at, name),
                f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {shown}",
            )
        return value

    def array(self, name: str, *, min_items: int = 0, required: bool = False) -> list[Any] | None:
        """A JSON array with at least ``min_items`` members, or ``None`` when absent."""
        if name not in self.params:
            if required:
                raise self._missing(name)
            return None
        value = self.params[name]
        if not isinstance(value, list):
            raise Invalid((*self.at, name), f"expected an array, got {type_name(value)}")
        if len(value) < min_items:
            raise Invalid((*self.at, name), f"{name} needs at least {min_items} item(s)")
        return value

    def strings(self, name: str, *, min_items: int = 0, required: bool = False) -> list[str] | None:
        """An array of non-empty strings, or ``None`` when absent."""
        items = self.array(name, min_items=min_items, required=required)
        if items is None:
            return None
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise Invalid((*self.at, name, i), f"expected a string, got {type_name(item)}")
            if not item.strip():
                raise Invalid((*self.at, name, i), "must not be empty")
        return list(items)

    def one_of(self, names: Iterable[str], *, required: bool, what: str) -> str | None:
        """The single present member among mutually exclusive ``names``.

        Two present → :class:`Invalid` at the second one; none present and ``required``
        → :class:`Invalid` at the parameters object.
        """
        names = tuple(names)
        present = [n for n in self.params if n in names]
        if len(present) > 1:
            raise Invalid(
                (*self.at, present[1]),
                f"{present[0]} and {present[1]} are mutually exclusive; give one {what}",
            )
        if not present:
            if required:
                raise Invalid(
                    self.at,
                    f"{self.condition_type} needs one {what}: {', '.join(names)}",
                )
            return None
        return present[0]
