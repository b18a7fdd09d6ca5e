"""Routes file: loading, validation messages, and resolving requests to routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from a2i_worker.errors import ConfigError, PermanentError
from a2i_worker.messages import ReviewRequest, parse_message
from a2i_worker.routes import BudgetPolicy, RouteMode, Routes, load_routes
from a2i_worker.rules import evaluate

REPO = Path(__file__).resolve().parents[2]
ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/invoices"
OTHER_ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/other"
LOW_CONFIDENCE = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "confidence", "ConfidenceLessThan": 0.5},
        }
    ]
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return path


def request(**fields: object) -> ReviewRequest:
    base: dict[str, object] = {"request_id": "r-1", "input": {"confidence": 0.9}}
    base.update(fields)
    req = parse_message(json.dumps(base))
    assert isinstance(req, ReviewRequest)
    return req


def test_example_config_loads() -> None:
    routes = load_routes(REPO / "config" / "routes.toml")
    assert list(routes) == ["invoices", "moderation-shadow"]
    inv = routes["invoices"]
    assert inv.flow_definition_arn == ARN
    assert inv.mode is RouteMode.ACTIVE
    assert inv.rules is not None
    assert inv.agreement is not None
    assert inv.agreement.tolerance == 0.01
    assert inv.agreement.model_expr.search({"predicted_total_amount": 3}) == 3
    assert inv.budget is not None
    assert inv.budget.policy is BudgetPolicy.DEFER
    assert routes["moderation-shadow"].shadow
    assert routes["moderation-shadow"].agreement is not None
    assert routes["moderation-shadow"].agreement.tolerance is None


def test_rules_file_relative_to_routes_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "low.json").write_text(json.dumps(LOW_CONFIDENCE))
    path = write(tmp_path, f'[routes.a]\nflow_definition_arn = "{ARN}"\nrules = "rules/low.json"\n')
    route = load_routes(path)["a"]
    assert route.rules is not None
    assert evaluate(route.rules, {"confidence": 0.1}, request_id="x").activated
    assert not evaluate(route.rules, {"confidence": 0.9}, request_id="x").activated


def test_defaults(tmp_path: Path) -> None:
    routes = load_routes(write(tmp_path, f'[routes.a]\nflow_definition_arn = "{ARN}"\n'))
    route = routes["a"]
    assert (route.rules, route.agreement, route.budget) == (None, None, None)
    assert route.mode is RouteMode.ACTIVE
    assert route.content_classifiers == ()
    assert routes.allow_unrouted


def test_empty_file_has_no_routes(tmp_path: Path) -> None:
    assert len(load_routes(write(tmp_path, ""))) == 0


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ('[routes.a]\nflow_definition_arn = "nope"\n', ["route 'a'", "flow_definition_arn"]),
        ("[routes.a]\nmode = 'active'\n", ["route 'a'", "flow_definition_arn", "required"]),
        (f'[routes.a]\nflow_definition_arn = "{ARN}"\nmode = "loud"\n', ["'mode'", "shadow"]),
        (f'[routes.a]\nflow_definition_arn = "{ARN}"\nmod = "x"\n', ["unknown key", "'mod'"]),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\ncontent_classifiers = ["Nope"]\n',
            ["content_classifiers", "FreeOfAdultContent"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\nrules = "missing.json"\n',
            ["route 'a'", "field 'rules'", "missing.json", "cannot read"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.rules]\nConditions = []\n',
            ["route 'a'", "field 'rules'", "/Conditions"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.agreement]\nmodel = "a["\n'
            'human = "b"\n',
            ["agreement.model", "JMESPath"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.agreement]\nmodel = "a"\n',
            ["agreement.human", "required"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.agreement]\nmodel = "a"\n'
            'human = "b"\ntolerance = -1\n',
            ["agreement.tolerance"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.budget]\npolicy = "defer"\n',
            ["budget", "per_hour"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.budget]\nper_hour = 0\n',
            ["budget.per_hour", "positive"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.budget]\nper_day = 5\n'
            'policy = "drop"\n',
            ["budget.policy", "defer, sample, reject"],
        ),
        (
            f'[routes.a]\nflow_definition_arn = "{ARN}"\n[routes.a.budget]\nper_hour = true\n',
            ["budget.per_hour", "positive"],
        ),
        ("[routes]\na = 1\n", ["route 'a'", "must be a table"]),
        (f'[routes."bad name"]\nflow_definition_arn = "{ARN}"\n', ["'bad name'"]),
        ("allow_unrouted_flow_definitions = 'yes'\n", ["allow_unrouted_flow_definitions"]),
        ("route = 1\n", ["unknown key", "'route'"]),
        ("routes = 1\n", ["routes"]),
        ("[routes.a\n", ["not valid TOML"]),
    ],
)
def test_errors_name_file_route_and_field(tmp_path: Path, body: str, needles: list[str]) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_routes(path)
    message = str(info.value)
    assert str(path) in message
    for needle in needles:
        assert needle in message


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    body = (
        f'[routes.a]\nflow_definition_arn = "{ARN}"\nmode = "loud"\n'
        "[routes.b]\n"
        '[routes.b.rules]\nConditions = "x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_routes(write(tmp_path, body))
    message = str(info.value)
    assert "route 'a': field 'mode': must be 'active' or 'shadow'" in message
    assert "route 'b': field 'flow_definition_arn': is required" in message
    # Inline rules: the pointer and reason, without the file and route a second time.
    assert "route 'b': field 'rules': at '/Conditions': " in message
    assert message.count(str(tmp_path)) == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the routes file"):
        load_routes(tmp_path / "nope.toml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_bytes(b"x = '\xff'\n")
    with pytest.raises(ConfigError, match=r"routes\.toml"):
        load_routes(path)


# ------------------------------------------------------------------ resolve


def two_routes(tmp_path: Path, *, allow: bool = True) -> Routes:
    return load_routes(
        write(
            tmp_path,
            f"allow_unrouted_flow_definitions = {str(allow).lower()}\n"
            f'[routes.first]\nflow_definition_arn = "{ARN}"\n'
            'content_classifiers = ["FreeOfAdultContent"]\n'
            "[[routes.first.rules.Conditions]]\n"
            'ConditionType = "ConfidenceCheck"\n'
            'ConditionParameters = { Path = "confidence", ConfidenceLessThan = 0.5 }\n'
            f'[routes.second]\nflow_definition_arn = "{ARN}"\nmode = "shadow"\n',
        )
    )


def test_resolve_by_name(tmp_path: Path) -> None:
    routes = two_routes(tmp_path)
    assert routes.resolve(request(route="second")) is routes["second"]
    assert routes.resolve(request(route="first")) is routes["first"]


def test_resolve_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as info:
        two_routes(tmp_path).resolve(request(route="third"))
    assert info.value.code == "unknown_route"
    assert "first, second" in info.value.reason


def test_resolve_by_arn_takes_the_first_route_in_file_order(tmp_path: Path) -> None:
    routes = two_routes(tmp_path)
    assert routes.resolve(request(flow_definition_arn=ARN)) is routes["first"]


def test_unrouted_arn_reviews_everything(tmp_path: Path) -> None:
    route = two_routes(tmp_path).resolve(request(flow_definition_arn=OTHER_ARN))
    assert route.name is None
    assert route.flow_definition_arn == OTHER_ARN
    assert route.rules is None
    assert route.mode is RouteMode.ACTIVE


def test_unrouted_arn_refused_when_configured(tmp_path: Path) -> None:
    routes = two_routes(tmp_path, allow=False)
    with pytest.raises(PermanentError) as info:
        routes.resolve(request(flow_definition_arn=OTHER_ARN))
    assert info.value.code == "unknown_flow_definition"
    assert routes.resolve(request(flow_definition_arn=ARN)).name == "first"


def test_inline_rules_and_classifiers_override(tmp_path: Path) -> None:
    routes = two_routes(tmp_path)
    always = {
        "Conditions": [
            {"ConditionType": "Sampling", "ConditionParameters": {"RandomSamplingPercentage": 100}}
        ]
    }
    route = routes.resolve(
        request(
            route="first",
            rules=always,
            content_classifiers=["FreeOfPersonallyIdentifiableInformation"],
        )
    )
    assert route.name == "first"
    assert route.rules is not None
    assert evaluate(route.rules, {"confidence": 0.99}, request_id="r").activated
    assert route.content_classifiers == ("FreeOfPersonallyIdentifiableInformation",)
    base = routes["first"]
    assert base.rules is not None
    assert not evaluate(base.rules, {"confidence": 0.99}, request_id="r").activated
    assert base.content_classifiers == ("FreeOfAdultContent",)


def test_invalid_inline_rules_are_a_permanent_rejection(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as info:
        two_routes(tmp_path).resolve(request(route="first", rules={"Conditions": "PLANTED"}))
    assert info.value.code == "invalid_rules"
    assert "/Conditions" in info.value.reason
