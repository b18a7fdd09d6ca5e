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
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from a2i_worker.errors import ConfigError, PermanentError
from a2i_worker.messages import (
    CONTENT_CLASSIFIERS,
    FLOW_DEFINITION_ARN_PATTERN,
    MAX_ARN_LENGTH,
    ROUTE_NAME_PATTERN,
    ReviewRequest,
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


@dataclass(frozen=True)
class Agreement:
    """How to compare the model's answer with the reviewers'.

    ``model`` is evaluated against the prediction, ``human`` against the first human
    answer's ``answerContent``. Numbers agree within ``tolerance`` (absolute) when it is set;
    otherwise values agree when equal.
    """

    model: str
    human: str
    tolerance: float | None
    model_expr: ParsedResult = dataclasses.field(compare=False, repr=False)
    human_expr: ParsedResult = dataclasses.field(compare=False, repr=False)


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

    @classmethod
    def empty(cls, *, allow_unrouted: bool = True) -> Routes:
        """No configured routes: every message must name a flow_definition_arn."""
        return cls({}, allow_unrouted=allow_unrouted)

    def __getitem__(self, name: str) -> Route:
        return self._routes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __repr__(self) -> str:
        return f"Routes({list(self._routes)!r}, allow_unrouted={self.allow_unrouted})"

    def for_arn(self, flow_definition_arn: str) -> Route | None:
        """The first configured route on this flow definition, if any."""
        return self._by_arn.get(flow_definition_arn)

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

_ROUTE_KEYS = frozenset(
    {"flow_definition_arn", "rules", "content_classifiers", "mode", "agreement", "budget"}
)
_TOP_KEYS = frozenset({"routes", "allow_unrouted_flow_definitions"})


class _Where:
    """Builds ConfigErrors that name the file, the route and the field."""

    def __init__(self, source: str, route: str | None = None) -> None:
        self.source = source
        self.route = route

    def error(self, field: str | None, reason: str) -> ConfigError:
        parts = [self.source]
        if self.route is not None:
            parts.append(f"route '{self.route}'")
        if field is not None:
            parts.append(f"field '{field}'")
        return ConfigError(f"{': '.join(parts)}: {reason}")


def _unknown_keys(
    where: _Where, table: Mapping[str, Any], allowed: frozenset[str], at: str
) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise where.error(
            at or None,
            f"unknown key(s) {', '.join(repr(k) for k in extra)}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_agreement(where: _Where, table: Any) -> Agreement:
    if not isinstance(table, dict):
        raise where.error("agreement", "must be a table with 'model', 'human', 'tolerance'")
    _unknown_keys(where, table, frozenset({"model", "human", "tolerance"}), "agreement")
    compiled: dict[str, ParsedResult] = {}
    for key in ("model", "human"):
        expr = table.get(key)
        if not isinstance(expr, str) or not expr.strip():
            raise where.error(f"agreement.{key}", "is required: a JMESPath expression")
        try:
            compiled[key] = jmespath.compile(expr)
        except JMESPathError as exc:
            raise where.error(f"agreement.{key}", f"is not valid JMESPath: {exc}") from None
    tolerance = table.get("tolerance")
    if tolerance is not None and (
        not _number(tolerance) or not math.isfinite(tolerance) or tolerance < 0
    ):
        raise where.error("agreement.tolerance", "must be a number >= 0 (or absent for equality)")
    return Agreement(
        model=table["model"],
        human=table["human"],
        tolerance=None if tolerance is None else float(tolerance),
        model_expr=compiled["model"],
        human_expr=compiled["human"],
    )


def _parse_budget(where: _Where, table: Any) -> Budget:
    if not isinstance(table, dict):
        raise where.error("budget", "must be a table with 'per_hour', 'per_day', 'policy'")
    _unknown_keys(where, table, frozenset({"per_hour", "per_day", "policy", "always"}), "budget")
    limits: dict[str, int | None] = {}
    for key in ("per_hour", "per_day"):
        value = table.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise where.error(f"budget.{key}", "must be a positive integer")
        limits[key] = value
    if limits["per_hour"] is None and limits["per_day"] is None:
        raise where.error("budget", "needs 'per_hour', 'per_day' or both")
    policy = table.get("policy", "defer")
    if policy not in {p.value for p in BudgetPolicy}:
        raise where.error("budget.policy", "must be one of: defer, sample, reject")
    always = table.get("always", [])
    if not isinstance(always, list) or not all(
        isinstance(p, str) and _CONDITION_POINTER.fullmatch(p) for p in always
    ):
        raise where.error(
            "budget.always",
            'must be a list of JSON pointers to conditions, like "/Conditions/1" or '
            '"/Conditions/0/And/1"',
        )
    return Budget(limits["per_hour"], limits["per_day"], BudgetPolicy(policy), tuple(always))


_CONDITION_POINTER = re.compile(r"/Conditions/\d+(/(And|Or)/\d+){0,2}")


def _check_always(where: _Where, budget: Budget, rules: RuleSet | None) -> None:
    """Every ``always`` pointer must name a condition of the route's rules."""
    for pointer in budget.always:
        node: Any = rules.document if rules is not None else None
        for token in pointer.split("/")[1:]:
            if isinstance(node, dict):
                node = node.get(token)
            elif isinstance(node, list) and int(token) < len(node):
                node = node[int(token)]
            else:
                node = None
        if not isinstance(node, dict):
            raise where.error("budget.always", f"{pointer!r} names no condition of the rules")


def _parse_rules(where: _Where, value: Any, base: Path) -> RuleSet:
    try:
        if isinstance(value, str):
            path = Path(value)
            return load_rules_file(path if path.is_absolute() else base / path)
        if isinstance(value, dict):
            return load_rules(value, source=f"{where.source}: route '{where.route}': rules")
    except RulesError as exc:
        raise where.error("rules", str(exc)) from None
    raise where.error("rules", "must be a path to a JSON rules file or an inline table")


def _parse_route(where: _Where, table: Any, base: Path) -> Route:
    if not isinstance(table, dict):
        raise where.error(None, "must be a table")
    _unknown_keys(where, table, _ROUTE_KEYS, "")
    arn = table.get("flow_definition_arn")
    if not isinstance(arn, str) or len(arn) > MAX_ARN_LENGTH:
        raise where.error("flow_definition_arn", "is required: a flow definition ARN")
    if not FLOW_DEFINITION_ARN_PATTERN.fullmatch(arn):
        raise where.error(
            "flow_definition_arn",
            "must look like arn:aws:sagemaker:<region>:<12-digit account>:flow-definition/<name>",
        )
    classifiers = table.get("content_classifiers", [])
    if (
        not isinstance(classifiers, list)
        or any(c not in CONTENT_CLASSIFIERS for c in classifiers)
        or len(set(classifiers)) != len(classifiers)
    ):
        raise where.error(
            "content_classifiers",
            f"must be a list without repeats of: {', '.join(CONTENT_CLASSIFIERS)}",
        )
    mode = table.get("mode", "active")
    if mode not in {m.value for m in RouteMode}:
        raise where.error("mode", "must be 'active' or 'shadow'")
    budget = _parse_budget(where, table["budget"]) if "budget" in table else None
    rules = _parse_rules(where, table["rules"], base) if "rules" in table else None
    if budget is not None:
        _check_always(where, budget, rules)
    return Route(
        name=where.route,
        flow_definition_arn=arn,
        rules=rules,
        content_classifiers=tuple(classifiers),
        mode=RouteMode(mode),
        agreement=_parse_agreement(where, table["agreement"]) if "agreement" in table else None,
        budget=budget,
    )


def parse_routes(doc: Mapping[str, Any], *, source: str, base_dir: Path) -> Routes:
    """Build :class:`Routes` from a parsed TOML document; rule paths resolve against
    ``base_dir``. Raises :class:`ConfigError` naming ``source``, the route and the field."""
    where = _Where(source)
    _unknown_keys(where, doc, _TOP_KEYS, "")
    allow = doc.get("allow_unrouted_flow_definitions", True)
    if not isinstance(allow, bool):
        raise where.error("allow_unrouted_flow_definitions", "must be true or false")
    tables = doc.get("routes", {})
    if not isinstance(tables, dict):
        raise where.error("routes", "must be a table of [routes.<name>] tables")
    routes: dict[str, Route] = {}
    for name, table in tables.items():
        if not ROUTE_NAME_PATTERN.fullmatch(name):
            raise where.error(
                None,
                f"route name {name!r} must be 1-128 letters, digits, '_', '.', '-', "
                "starting with a letter or digit",
            )
        routes[name] = _parse_route(_Where(source, name), table, base_dir)
    return Routes(routes, allow_unrouted=allow)


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
