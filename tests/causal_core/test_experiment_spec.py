"""The experiment part of a study spec: metrics, split, multiple testing, sequential,
readout; CUPED covariates read off the graph's optimal adjustment set."""

from __future__ import annotations

import pytest

from causal_core.errors import SpecError
from causal_core.experiments import GaussianPrior, Metric
from causal_core.spec import parse_spec
from causal_core.spec.experiment import readout_metric
from causal_core.study import plan_study

BASE = """name: ab
design: experiment
data: {table: t, unit_id: user_id}
graph: |
  variant -> revenue
  variant -> sessions
  variant -> purchased
  pre_revenue -> revenue
  pre_sessions -> sessions
treatment: variant
treatment_values: {arms: [control, b, c], control: control}
"""

METRICS = """metrics:
  - {name: revenue, kind: mean, column: revenue}
  - {name: conversion, kind: proportion, column: purchased}
  - {name: rps, kind: ratio, numerator: revenue, denominator: sessions}
  - {name: p90, kind: quantile, column: revenue, quantile: 0.9, inverse: true}
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    return dict(info.value.problems)


def test_a_study_with_metrics_parses_and_takes_its_cuped_covariates_from_the_graph():
    spec = parse_spec(BASE + METRICS + "expected_split: [2, 1, 1]\nmultiple_testing: fdr_bh\n"
                      "sequential: {planned_n: 20000}\nreadout: {kind: both, prior: {mean: 0, sd: 0.05, proper: true}}\n")
    exp = spec.experiment
    assert spec.outcome == ("revenue", "purchased", "sessions")  # filled from the metrics
    assert [m.name for m in exp.metrics] == ["revenue", "conversion", "rps", "p90"]
    assert exp.arms == ("control", "b", "c") and exp.control == "control"
    assert exp.split() == {"control": 2.0, "b": 1.0, "c": 1.0}
    assert (exp.multiple_testing, exp.sequential_planned_n, exp.readout) == ("fdr_bh", 20000.0, "both")
    assert exp.prior == GaussianPrior(mean=0.0, variance=0.05 ** 2, proper=True)
    plans = plan_study(spec)
    got = [readout_metric(m, plans) for m in exp.metrics]
    assert got == [
        Metric("revenue", "revenue", covariate="pre_revenue"),
        Metric("conversion", "purchased", kind="proportion"),
        # each column's optimal set: pre_revenue for revenue, pre_sessions for sessions
        Metric("rps", "revenue", "sessions", kind="ratio", covariate="pre_revenue",
               covariate_denominator="pre_sessions"),
        Metric("p90", "revenue", kind="quantile", level=0.9, inverse=True)]


def test_defaults_are_an_equal_split_holm_no_sequential_and_a_frequentist_readout():
    exp = parse_spec(BASE + METRICS).experiment
    assert exp.split() == {a: pytest.approx(1 / 3) for a in ("control", "b", "c")}
    assert (exp.multiple_testing, exp.sequential_planned_n, exp.readout) == ("holm", None, "frequentist")
    assert exp.prior == GaussianPrior()  # GrowthBook's: N(0, 0.1²) on the relative lift, flat unless proper


@pytest.mark.parametrize("metric, field, words", [
    ("{name: m, kind: median, column: revenue}", "metrics.m.kind", "expected one of mean, proportion"),
    ("{name: m, kind: ratio, column: revenue}", "metrics.m.column", "numerator and denominator"),
    ("{name: m, kind: ratio, numerator: revenue}", "metrics.m.denominator", "needs a denominator"),
    ("{name: m, kind: mean}", "metrics.m.column", "needs a column"),
    ("{name: m, kind: mean, column: revenue, quantile: 0.5}", "metrics.m.quantile", "only a quantile"),
    ("{name: m, kind: quantile, column: revenue, quantile: 1.5}", "metrics.m.quantile", "in (0, 1)"),
    ("{name: m, kind: mean, column: revenue, inverse: maybe}", "metrics.m.inverse", "true or false"),
    ("{name: m, kind: mean, column: revenue, colour: red}", "metrics.m.colour", "unknown field"),
    ("{name: m, kind: mean, column: spend}", "metrics.m.column", "'spend' is not a variable of the graph"),
    ("{kind: mean, column: revenue}", "metrics[0].name", "expected the metric's name"),
])
def test_a_bad_metric_names_its_field(metric, field, words):
    found = problems(BASE + f"metrics:\n  - {metric}\n")
    assert field in found, found
    assert words in found[field]


@pytest.mark.parametrize("extra, field, words", [
    ("expected_split: {control: 1, b: 1, d: 1}", "expected_split", "unknown arms ['d']"),
    ("expected_split: {control: 1, b: -1, c: 1}", "expected_split", "non-negative share"),
    ("multiple_testing: sidak", "multiple_testing", "holm"),
    ("sequential: {planned_n: 0}", "sequential", "planned_n: N"),
    ("readout: bayes", "readout", "frequentist, bayesian, both"),
    ("readout: {kind: bayesian, prior: {sd: -1}}", "readout.prior", "sd > 0"),
])
def test_bad_experiment_settings_name_their_field(extra, field, words):
    found = problems(BASE + METRICS + extra + "\n")
    assert words in found[field], found


def test_an_experiment_needs_a_unit_id_arms_and_a_randomized_assignment():
    text = (BASE + METRICS).replace("data: {table: t, unit_id: user_id}", "data: {table: t}")
    assert "unit id" in problems(text)["data.unit_id"]
    text = (BASE + METRICS).replace("treatment_values: {arms: [control, b, c], control: control}\n", "")
    assert "arms" in problems(text)["treatment_values"]
    text = (BASE + METRICS).replace("  pre_revenue -> revenue\n", "  pre_revenue -> revenue\n  region -> variant\n")
    assert "has no parents" in problems(text)["graph"] and "region" in problems(text)["graph"]
    text = BASE.replace("design: experiment", "design: observational") + METRICS
    assert "design: experiment" in problems(text)["metrics"]
    assert "add metrics" in problems(BASE + "multiple_testing: holm\n")["multiple_testing"]


def test_two_precision_variables_of_one_column_are_named_before_spark():
    text = (BASE + METRICS).replace("  pre_revenue -> revenue\n", "  pre_revenue -> revenue\n  tenure -> revenue\n")
    found = problems(text)
    assert "{pre_revenue, tenure}" in found["metrics.revenue"] and "adjustment.exclude" in found["metrics.revenue"]
    # excluding one leaves the other as the CUPED covariate
    spec = parse_spec(text + "adjustment: {exclude: [tenure]}\n")
    assert readout_metric(spec.experiment.metrics[0], plan_study(spec)).covariate == "pre_revenue"


def test_a_study_without_metrics_keeps_the_estimators_path():
    spec = parse_spec(BASE + "outcome: revenue\n")
    assert spec.experiment is None and spec.outcome == ("revenue",)
