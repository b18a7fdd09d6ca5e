"""Dry runs of rules over prediction files: sweep specs, counters, CLI outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from a2i_worker.cli import app
from a2i_worker.rules import load_rules
from a2i_worker.tuning import ErrorSpec, Simulation, SimulationError, parse_line, parse_sweep
from a2i_worker.tuning.output import cooccurrence
from a2i_worker.tuning.simulate import MAX_COMBINATIONS, OTHER_COMBINATION, Tally
from a2i_worker.tuning.sweep import set_pointer, sweep_rulesets
from a2i_worker.tuning.synth import write_invoice_file

POINTER = "/Conditions/0/ConditionParameters/ConfidenceLessThan"

RULES: dict[str, Any] = {
    "Conditions": [
        {
            "ConditionType": "ConfidenceCheck",
            "ConditionParameters": {"Path": "score", "ConfidenceLessThan": 0.5},
        },
        {"ConditionType": "LabelCheck", "ConditionParameters": {"Path": "label", "LabelIn": ["x"]}},
    ]
}


# -- sweep specs -------------------------------------------------------------------------


def test_sweep_values_are_exact_decimals_and_stop_is_inclusive() -> None:
    spec = parse_sweep(f"{POINTER}=0.5:0.95:0.05")
    assert spec.pointer == POINTER
    assert spec.values == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_sweep_downwards_with_negative_step() -> None:
    assert parse_sweep("/a=10:4:-3").values == (10.0, 7.0, 4.0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("Conditions/0=1:2:1", "JSON pointer"),
        ("/a=1:2", "START:STOP:STEP"),
        ("/a=1:2:0", "non-zero"),
        ("/a=2:1:1", "lead from START to STOP"),
        ("/a=x:2:1", "is not a number"),
        ("/a=0:1000:1", "at most"),
        ("/a=nan:1:1", "finite"),
    ],
)
def test_bad_sweep_specs_say_what_is_wrong(spec: str, fragment: str) -> None:
    with pytest.raises(SimulationError, match=fragment):
        parse_sweep(spec)


def test_set_pointer_replaces_a_copy_and_keeps_integers_integral() -> None:
    doc = {"Conditions": [{"ConditionParameters": {"RandomSamplingPercentage": 5}}]}
    out = set_pointer(doc, "/Conditions/0/ConditionParameters/RandomSamplingPercentage", 10.0)
    assert out["Conditions"][0]["ConditionParameters"]["RandomSamplingPercentage"] == 10
    assert isinstance(out["Conditions"][0]["ConditionParameters"]["RandomSamplingPercentage"], int)
    assert doc["Conditions"][0]["ConditionParameters"]["RandomSamplingPercentage"] == 5


@pytest.mark.parametrize(
    ("pointer", "fragment"),
    [
        ("/Conditions/3/ConditionParameters/ConfidenceLessThan", "nothing at '3'"),
        ("/Conditions/0/ConditionParameters/Path", "must name a number"),
        ("/Conditions/0/Nope", "nothing at 'Nope'"),
    ],
)
def test_set_pointer_refuses_paths_that_are_not_numbers(pointer: str, fragment: str) -> None:
    with pytest.raises(SimulationError, match=fragment):
        set_pointer(RULES, pointer, 1.0)


def test_sweep_value_the_grammar_refuses_is_named() -> None:
    rules = load_rules(
        {
            "Conditions": [
                {
                    "ConditionType": "Sampling",
                    "ConditionParameters": {"RandomSamplingPercentage": 5},
                }
            ]
        }
    )
    spec = parse_sweep("/Conditions/0/ConditionParameters/RandomSamplingPercentage=50:150:50")
    with pytest.raises(SimulationError, match="sweep value 150"):
        sweep_rulesets(rules, spec)


# -- lines and errors --------------------------------------------------------------------


def test_record_lines_and_plain_predictions() -> None:
    rec = parse_line('{"request_id": "r1", "prediction": {"score": 1}, "truth": 2}', 1)
    assert rec is not None
    assert rec.request_id == "r1"
    assert rec.prediction == {"score": 1}
    plain = parse_line(b'{"prediction": 3, "score": 1}', 7)  # no request_id: a plain prediction
    assert plain is not None
    assert plain.request_id == "line-7"
    assert plain.prediction == {"prediction": 3, "score": 1}
    assert parse_line("  \n", 2) is None
    with pytest.raises(ValueError, match="Expecting"):
        parse_line("{nope", 3)


def test_model_error_judgement() -> None:
    exact = ErrorSpec(truth="t", model="m")
    assert exact.judge({"t": "a", "m": "a"}) is False
    assert exact.judge({"t": "a", "m": "b"}) is True
    assert exact.judge({"t": True, "m": 1}) is True  # JSON: true is not 1
    assert exact.judge({"t": 1, "m": 1.0}) is False
    assert exact.judge({"t": "a"}) is None
    loose = ErrorSpec(truth="t", model="m", tolerance=0.01)
    assert loose.judge({"t": 10.0, "m": 10.005}) is False
    assert loose.judge({"t": 10.0, "m": 10.02}) is True
    with pytest.raises(SimulationError, match="--truth"):
        ErrorSpec(truth="a[", model="m")


# -- the engine --------------------------------------------------------------------------


def _lines() -> list[str]:
    rows = [
        {"score": 0.1, "label": "x", "t": "x"},  # both fire; model right
        {"score": 0.2, "label": "y", "t": "x"},  # confidence fires; model wrong
        {"score": 0.9, "label": "x", "t": "y"},  # label fires; model wrong
        {"score": 0.9, "label": "y", "t": "y"},  # nothing; right
        {"score": 0.6, "label": "y", "t": "x"},  # nothing at 0.5; fires at 0.7; wrong
    ]
    return [json.dumps(r) for r in rows] + ["not json", ""]


def test_simulation_counts_conditions_pairs_combinations_and_errors() -> None:
    rules = load_rules(RULES)
    spec = parse_sweep(f"{POINTER}=0.3:0.7:0.2")
    variants = list(zip(["0.3", "0.5", "0.7"], sweep_rulesets(rules, spec), strict=True))
    sim = Simulation(rules, variants, errors=ErrorSpec(truth="t", model="label"))
    results = [sim.feed_text(text, i) for i, text in enumerate(_lines(), start=1)]
    assert [r.activated if r else None for r in results] == [
        True,
        True,
        True,
        False,
        False,
        None,
        None,
    ]
    t = sim.tally
    assert (t.lines, t.activated, sim.bad_lines, sim.first_bad_lines) == (5, 3, 1, [6])
    assert t.by_condition == {"Conditions[0]": 2, "Conditions[1]": 2}
    assert t.pairs == {("Conditions[0]", "Conditions[1]"): 1}
    assert t.combinations[("Conditions[0]", "Conditions[1]")] == 1
    assert (t.labelled, t.errors, t.errors_caught, t.activated_labelled) == (5, 3, 2, 3)
    assert t.errors_caught_share == pytest.approx(2 / 3)
    assert [v.activated for _, v in sim.variants] == [3, 3, 4]
    assert [v.errors_caught for _, v in sim.variants] == [2, 2, 3]
    assert cooccurrence(sim) == [[2, 1], [1, 2]]


def test_combinations_are_bounded() -> None:
    tally = Tally("x", detailed=True)
    for i in range(MAX_COMBINATIONS + 5):
        tally.add(True, (f"c{i}",), None)
    assert len(tally.combinations) == MAX_COMBINATIONS + 1
    assert tally.combinations[OTHER_COMBINATION] == 5


# -- the command ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def invoices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_invoice_file(tmp_path_factory.mktemp("sim") / "invoices.jsonl", 3_000, seed=3)


def test_rules_simulate_sweep_writes_table_csv_plot_and_reviewed(
    invoices: Path, tmp_path: Path
) -> None:
    rules_file = Path(__file__).parents[2] / "config" / "rules" / "invoice-confidence.json"
    out_csv, out_png, reviewed = tmp_path / "s.csv", tmp_path / "s.png", tmp_path / "r.jsonl"
    res = CliRunner().invoke(
        app,
        [
            "rules",
            "simulate",
            str(rules_file),
            "--predictions",
            str(invoices),
            "--sweep",
            f"{POINTER}=0.6:0.95:0.05",
            "--truth",
            "truth.total",
            "--model",
            "prediction.fields.total.value",
            "--tolerance",
            "0.005",
            "--csv",
            str(out_csv),
            "--plot",
            str(out_png),
            "--reviewed-out",
            str(reviewed),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "lines evaluated: 3,000" in res.output
    assert "Fired together" in res.output
    assert "Sweep of" in res.output
    with out_csv.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["value"]) for r in rows] == [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    rates = [float(r["activation_rate"]) for r in rows]
    caught = [float(r["errors_caught_share"]) for r in rows]
    assert rates == sorted(rates)
    assert rates[0] < rates[-1]
    assert caught == sorted(caught)
    assert caught[0] < caught[-1] <= 1.0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = reviewed.read_text(encoding="utf-8").splitlines()
    at_current = next(r for r in rows if float(r["value"]) == 0.9)  # the file's own threshold
    assert len(lines) == int(at_current["activated"])
    first = json.loads(lines[0])
    assert set(first) == {"line", "request_id", "conditions"}
    assert first["conditions"]


def test_rules_simulate_from_a_route(invoices: Path, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(RULES), encoding="utf-8")
    routes = tmp_path / "routes.toml"
    routes.write_text(
        '[routes.inv]\nflow_definition_arn = "arn:aws:sagemaker:us-east-1:123456789012:'
        'flow-definition/inv"\nrules = "r.json"\n',
        encoding="utf-8",
    )
    base = [
        "rules",
        "simulate",
        "--routes",
        str(routes),
        "--predictions",
        str(invoices),
        "--no-progress",
    ]
    ok = CliRunner().invoke(app, [*base, "--route", "inv"])
    assert ok.exit_code == 0, ok.output
    assert "lines evaluated: 3,000" in ok.output
    bad = CliRunner().invoke(app, [*base, "--route", "nope"])
    assert bad.exit_code == 2
    assert "--route must name one of: inv" in bad.output


def test_rules_simulate_option_errors_exit_2(invoices: Path, tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps(RULES), encoding="utf-8")
    base = ["rules", "simulate", str(tmp_path / "r.json"), "--predictions", str(invoices)]
    lonely = CliRunner().invoke(app, [*base, "--truth", "t"])
    assert lonely.exit_code == 2
    assert "--truth and --model go together" in lonely.output
    no_sweep = CliRunner().invoke(app, [*base, "--plot", str(tmp_path / "p.png")])
    assert no_sweep.exit_code == 2
    assert "add --sweep" in no_sweep.output
    missing = CliRunner().invoke(
        app, ["rules", "simulate", str(tmp_path / "r.json"), "--predictions", "/nonexistent"]
    )
    assert missing.exit_code == 2
    assert "cannot read" in missing.output
