"""Routes: named (flow definition, rules, options) bundles, read from a TOML file.

::

    allow_unrouted_flow_definitions = true   # optional, default true

    [routes.invoices]
    flow_definition_arn = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/invoices"
    rules = "rules/invoices.json"             # relative to this file; or an inline table
    content_classifiers = ["FreeOfPersonallyIdentifiableInformation"]
    mode = "active"                           # or "shadow"

    [routes.invoices.agreement]               # optional
    model = "predicted_total"                 # JMESPath into the prediction
    human = "total"                           # JMESPath into the first answer's answerContent
    tolerance = 0.01                          # optional; absent -> equality

    [routes.invoices.budget]                  # optional; enforced by the request handler
    per_hour = 500
    per_day = 5000
    policy = "defer"                          # defer | sample | reject
    always = ["/Conditions/1"]                # sample: these conditions still start loops

Decisions (also in ``docs/messages.md``):

- A route without ``rules`` reviews every request (A2I's own behaviour for custom task
  types).
- ``mode = "shadow"``: rules are evaluated and the decision recorded and published
  (``shadow: true``), but no human loop is started.
- Agreement compares the model's value with the first reviewer's: ``human`` is
  evaluated against ``humanAnswers[0].answerContent`` (one reviewer per loop is the
  common case; results.py implements the comparison).
- :meth:`Routes.resolve`: a request naming ``route`` gets that route (unknown name:
  ``unknown_route``). A request naming ``flow_definition_arn`` gets the first route (in
  file order) with that ARN; an ARN no route has gets an *unrouted* route (name ``None``,
  no rules so every request is reviewed, active), unless the file sets
  ``allow_unrouted_flow_definitions = false`` (then ``unknown_flow_definition``).
  Inline ``rules`` in the request replace the route's; ``content_classifiers`` in the
  request replace the route's when the request lists any.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from a2i_worker.errors import ConfigError, PermanentError
from a2i_worker.messages import (
    CONTENT_CLASSIFIERS,
    ContentClassifiers,
    FlowDefinitionArn,
    ReviewRequest,
    RouteName,
)
from a2i_worker.rules import RulesError, RuleSet, load_rules, load_rules_file

__all__ = [
    "Agreement",
    "Budget",
    "BudgetPolicy",
    "Route",
    "RouteMode",
    "Routes",
    "load_routes",
    "parse_routes",
]


class RouteMode(enum.StrEnum):
    ACTIVE = "active"
    SHADOW = "shadow"


class BudgetPolicy(enum.StrEnum):
    DEFER = "defer"
    SAMPLE = "sample"
    REJECT = "reject"


_FILE_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _jmespath(expr: str) -> str:
    if not expr.strip():
        raise PydanticCustomError("jmespath", "is required: a JMESPath expression")
    try:
        jmespath.compile(expr)
    except JMESPathError as exc:
        raise PydanticCustomError(
            "jmespath", "is not valid JMESPath: {e}", {"e": str(exc)}
        ) from None
    return expr


_JMESPath = Annotated[str, AfterValidator(_jmespath)]


class Agreement(BaseModel):
    """How to compare the model's answer with the reviewers'.

    ``model`` is evaluated against the prediction, ``human`` against the first human
    answer's ``answerContent``. Numbers agree within ``tolerance`` (absolute) when it is set;
    otherwise values agree when equal.
    """

    model_config = _FILE_CONFIG
    model: _JMESPath
    human: _JMESPath
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @functools.cached_property
    def model_expr(self) -> ParsedResult:
        return jmespath.compile(self.model)

    @functools.cached_property
    def human_expr(self) -> ParsedResult:
        return jmespath.compile(self.human)


@dataclass(frozen=True)
class Budget:
    """Review budget of a route (at least one of ``per_hour``/``per_day``).

    ``always``: JSON pointers to conditions of the route's rules (``/Conditions/1``,
    ``/Conditions/0/And/1``); under the ``sample`` policy a request on which one of them
    fired still starts a loop when the budget is spent. See :mod:`a2i_worker.budget`.
    """

    per_hour: int | None
    per_day: int | None
    policy: BudgetPolicy
    always: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where and how requests of one kind are reviewed. ``name`` is None when unrouted."""

    name: str | None
    flow_definition_arn: str
    rules: RuleSet | None = None
    content_classifiers: tuple[str, ...] = ()
    mode: RouteMode = RouteMode.ACTIVE
    agreement: Agreement | None = None
    budget: Budget | None = None

    @property
    def shadow(self) -> bool:
        return self.mode is RouteMode.SHADOW


class Routes(Mapping[str, Route]):
    """The configured routes by name, in file order, and request resolution."""

    def __init__(self, routes: Mapping[str, Route], *, allow_unrouted: bool = True) -> None:
        self._routes = dict(routes)
        self.allow_unrouted = allow_unrouted
        self._by_arn: dict[str, Route] = {}
        for route in self._routes.values():
            self._by_arn.setdefault(route.flow_definition_arn, route)

    def __getitem__(self, name: str) -> Route:
        return self._routes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"Routes({list(self._routes)!r}, allow_unrouted={self.allow_unrouted})"

    def resolve(self, req: ReviewRequest) -> Route:
        """The route a request is handled by, with the request's overrides applied.

        Raises :class:`PermanentError` (``unknown_route``, ``unknown_flow_definition``,
        ``invalid_rules``) when the request cannot be routed.
        """
        if req.route is not None:
            route = self._routes.get(req.route)
            if route is None:
                raise PermanentError(
                    "unknown_route",
                    f"field 'route': no route of that name is configured "
                    f"(configured: {', '.join(sorted(self._routes)) or 'none'})",
                )
        else:
            arn = req.flow_definition_arn
            if arn is None:  # parse_message guarantees one of the two
                raise PermanentError("missing_field", "one of 'route' or 'flow_definition_arn'")
            found = self._by_arn.get(arn)
            if found is None and not self.allow_unrouted:
                raise PermanentError(
                    "unknown_flow_definition",
                    "field 'flow_definition_arn': no configured route uses this flow "
                    "definition and unrouted flow definitions are not allowed",
                )
            route = found or Route(name=None, flow_definition_arn=arn)
        changes: dict[str, Any] = {}
        if req.rules is not None:
            try:
                changes["rules"] = load_rules(req.rules, source="request rules")
            except RulesError as exc:
                raise PermanentError(
                    "invalid_rules", f"field 'rules': at '{exc.pointer}': {exc.reason}"
                ) from None
        if req.content_classifiers:
            changes["content_classifiers"] = tuple(req.content_classifiers)
        return dataclasses.replace(route, **changes) if changes else route


# --------------------------------------------------------------------------- loading
# The file's schema is pydantic models (as for messages and settings); their errors are
# rewritten into sentences that name the file, the route and the field.

_CONDITION_POINTER = r"/Conditions/\d+(/(And|Or)/\d+){0,2}"
_Limit = Annotated[int, Field(ge=1)]


class _BudgetTable(BaseModel):
    model_config = _FILE_CONFIG
    per_hour: _Limit | None = None
    per_day: _Limit | None = None
    policy: Literal["defer", "sample", "reject"] = "defer"
    always: list[Annotated[str, StringConstraints(pattern=_CONDITION_POINTER)]] = []

    @model_validator(mode="after")
    def _some_limit(self) -> _BudgetTable:
        if self.per_hour is None and self.per_day is None:
            raise PydanticCustomError("budget", "needs 'per_hour', 'per_day' or both")
        return self


class _RouteTable(BaseModel):
    model_config = _FILE_CONFIG
    flow_definition_arn: FlowDefinitionArn
    rules: RuleSet | None = None
    content_classifiers: ContentClassifiers = []
    mode: Literal["active", "shadow"] = "active"
    agreement: Agreement | None = None
    budget: _BudgetTable | None = None

    @field_validator("rules", mode="plain")
    @classmethod
    def _load_rules(cls, value: Any, info: ValidationInfo) -> RuleSet:
        try:
            if isinstance(value, str):
                path = Path(value)
                return load_rules_file(
                    path if path.is_absolute() else cast(Path, info.context) / path
                )
            if isinstance(value, dict):
                return load_rules(value)
        except RulesError as exc:
            text = str(exc) if exc.source != "inline" else f"at '{exc.pointer}': {exc.reason}"
            raise PydanticCustomError("rules", "{e}", {"e": text}) from None
        raise PydanticCustomError("rules", "must be a path to a JSON rules file or an inline table")

    @model_validator(mode="after")
    def _always_names_conditions(self) -> _RouteTable:
        for pointer in self.budget.always if self.budget else ():
            node: Any = self.rules.document if self.rules is not None else None
            try:
                for token in pointer.split("/")[1:]:
                    node = node[int(token) if isinstance(node, list) else token]
            except (KeyError, IndexError, TypeError):
                node = None
            if not isinstance(node, dict):
                raise PydanticCustomError(
                    "always",
                    "field 'budget.always': {p} names no condition of the rules",
                    {"p": repr(pointer)},
                )
        return self


class _RoutesFile(BaseModel):
    model_config = _FILE_CONFIG
    allow_unrouted_flow_definitions: bool = True
    routes: dict[RouteName, _RouteTable] = {}


#: Sentences for a field's errors other than missing/unknown (pydantic's are generic).
_SENTENCES = {
    "flow_definition_arn": "must look like arn:aws:sagemaker:<region>:<12-digit account>:"
    "flow-definition/<name>",
    "content_classifiers": f"must be a list without repeats of: {', '.join(CONTENT_CLASSIFIERS)}",
    "mode": "must be 'active' or 'shadow'",
    "agreement": "must be a table with 'model', 'human', 'tolerance'",
    "budget.policy": "must be one of: defer, sample, reject",
    "budget.always": 'must be a list of JSON pointers to conditions, like "/Conditions/1" or '
    '"/Conditions/0/And/1"',
    "allow_unrouted_flow_definitions": "must be true or false",
    "routes": "must be a table of [routes.<name>] tables",
    "budget.per_hour": "must be a positive integer",
    "budget.per_day": "must be a positive integer",
    "agreement.model": "must be a JMESPath expression",
    "agreement.human": "must be a JMESPath expression",
    "agreement.tolerance": "must be a number >= 0 (or absent for equality)",
}
#: Error types raised by this module's and the messages' validators: their text stands.
_OWN_ERRORS = frozenset({"rules", "always", "jmespath", "budget", "invalid_arn"})
_TABLES: dict[str, type[BaseModel]] = {
    "": _RouteTable,
    "agreement": Agreement,
    "budget": _BudgetTable,
}


def _sentence(error: Mapping[str, Any]) -> str:
    """One pydantic error as "route 'a': field 'budget.per_day': must be ..."."""
    loc = list(error["loc"])
    route = str(loc[1]) if len(loc) >= 2 and loc[0] == "routes" else None
    rest = loc[2:] if route is not None else loc
    if rest == ["[key]"]:
        return f"route name {route!r}: {error['msg']}"
    head = f"route '{route}': " if route is not None else ""
    kind = error["type"]
    if route is not None and not rest and kind in {"model_type", "dict_type"}:
        return f"{head}must be a table"
    field = ".".join(str(p) for p in rest if isinstance(p, str))
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in rest[:-1])
        model = _TABLES[parent] if route is not None else _RoutesFile
        allowed = ", ".join(sorted(model.model_fields))
        at = f"field '{parent}': " if parent else ""
        return f"{head}{at}unknown key(s) '{rest[-1]}'; allowed: {allowed}"
    if kind == "missing":
        return f"{head}field '{field}': is required" + (
            f"; it {_SENTENCES[field]}" if field in _SENTENCES else ""
        )
    reason = error["msg"] if kind in _OWN_ERRORS else _SENTENCES.get(field, error["msg"])
    return f"{head}field '{field}': {reason}" if field and kind != "always" else head + reason


def parse_routes(doc: Mapping[str, Any], *, source: str, base_dir: Path) -> Routes:
    """Build :class:`Routes` from a parsed TOML document; rule paths resolve against
    ``base_dir``. Raises :class:`ConfigError` naming ``source``, the route and the field."""
    try:
        parsed = _RoutesFile.model_validate(doc, context=base_dir)
    except ValidationError as exc:
        sentences = [_sentence(e) for e in exc.errors(include_url=False)]
        raise ConfigError(f"{source}: {'; '.join(sentences)}") from None
    routes: dict[str, Route] = {}
    for name, t in parsed.routes.items():
        b = t.budget
        routes[name] = Route(
            name=name,
            flow_definition_arn=t.flow_definition_arn,
            rules=t.rules,
            content_classifiers=tuple(t.content_classifiers),
            mode=RouteMode(t.mode),
            agreement=t.agreement,
            budget=None
            if b is None
            else Budget(b.per_hour, b.per_day, BudgetPolicy(b.policy), tuple(b.always)),
        )
    return Routes(routes, allow_unrouted=parsed.allow_unrouted_flow_definitions)


def load_routes(path: str | Path) -> Routes:
    """Read and validate a routes file, loading every rules file it names.

    Raises :class:`ConfigError` naming the file, the route and the field.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the routes file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not valid TOML: the file is not UTF-8") from None
    return parse_routes(doc, source=str(p), base_dir=p.parent)
