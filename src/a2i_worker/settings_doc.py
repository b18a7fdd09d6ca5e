"""The settings described for people: configuration tables and validation errors.

:func:`settings_reference` turns each field's description and bounds into a row of the
README's configuration table (``make docs``). :func:`describe_settings_errors` turns a
``ValidationError`` into one line per problem that names the variable and what is allowed,
never the value. :func:`unknown_environment_variables` finds typos.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from a2i_worker.settings import ENV_FILE_VARIABLE, ENV_PREFIX, Settings, env_var

__all__ = [
    "SettingDoc",
    "describe_settings_errors",
    "settings_reference",
    "unknown_environment_variables",
]


def _allowed(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("allowed"), str):
        return str(extra["allowed"])
    ann = info.annotation
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return ", ".join(str(m.value) for m in ann)
    if ann is bool:
        return "true or false"
    kind = "an integer" if ann is int else "a number" if ann is float else "a value"
    bounds = []
    for meta in info.metadata:
        if isinstance(meta, Ge):
            bounds.append(f">= {meta.ge}")
        elif isinstance(meta, Gt):
            bounds.append(f"> {meta.gt}")
        elif isinstance(meta, Le):
            bounds.append(f"<= {meta.le}")
        elif isinstance(meta, Lt):
            bounds.append(f"< {meta.lt}")
    return f"{kind} {' and '.join(bounds)}".strip()


_GENERIC_MESSAGES = {
    "int_parsing": "is not an integer",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is not a boolean",
    "enum": "is not one of the allowed values",
}


def describe_settings_errors(exc: ValidationError) -> list[str]:
    """One line per problem: variable, what is wrong, what is allowed. Never the value."""
    fields = Settings.model_fields
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err["loc"]
        name = str(loc[0]) if loc else ""
        if name not in fields:
            # Model-level checks name their variables themselves.
            lines.append(str(err["msg"]).removeprefix("Value error, "))
            continue
        etype = err["type"]
        msg = _GENERIC_MESSAGES.get(etype) or str(err["msg"]).removeprefix("Value error, ")
        if etype in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
            msg = "is out of range"
        if etype == "missing":
            msg = "is required"
        lines.append(f"{env_var(name)} {msg}; allowed: {_allowed(fields[name])}")
    return lines


@dataclass(frozen=True)
class SettingDoc:
    """One row of the configuration reference."""

    variable: str
    default: str
    allowed: str
    description: str


def settings_reference() -> list[SettingDoc]:
    """Rows for the README's configuration table, in declaration order."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else str(getattr(default, "value", default))
        if isinstance(default, bool):
            shown = str(default).lower()
        rows.append(SettingDoc(env_var(name), shown, _allowed(info), info.description or ""))
    return rows


def unknown_environment_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """``A2I_WORKER_*`` variables that match no setting (typos), sorted. For a warning."""
    env = os.environ if environ is None else environ
    known = {env_var(n) for n in Settings.model_fields} | {ENV_FILE_VARIABLE}
    return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)
