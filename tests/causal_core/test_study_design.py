"""The study's engine-free decisions: one admissibility table read by the plan, by
``check_design`` and by ``auto``; the frame each estimator needs and the design it fits;
the one place that says a treatment is not binary."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

import causal_core.identification.admissible as admissible_table
from causal_core.errors import EstimationError
from causal_core.estimators import ESTIMATORS, BootstrapOptions, Estimator, get_estimator, register
from causal_core.identification.admissible import ADMISSIBLE, Admissible
from causal_core.identification.plan import identify
from causal_core.moments.pandas_engine import PandasMomentEngine
from causal_core.spec import parse_spec
from causal_core.study import (
    FrameColumns, ModelRequest, auto_estimators, build_design, choose_estimators, model_request, plan_study,
    treatment_obstacle,
)

SPEC = """
name: toy
data: {path: /nowhere, format: parquet}
graph: |
  x1 -> d -> y
  x1 -> y
  x2 -> d
  x2 -> y
treatment: d
outcome: y
"""
BACKDOOR = "x1 -> d -> y; x1 -> y; x2 -> d; x2 -> y"


def _spec(extra: str = ""):
    return parse_spec(SPEC + extra)


def test_every_name_in_the_table_is_a_registered_estimator_and_the_plan_lists_its_row():
    assert {n for row in ADMISSIBLE.values() for n in row.estimators} == set(ESTIMATORS)
    plan = identify("z -> d -> m -> y; z -> y; d <-> y", "d", "y")
    for s in plan.strategies:
        assert plan.estimators_for(s.name) == ADMISSIBLE[s.kind].estimators
    assert get_estimator("id_plugin").admitted_kinds() == {"backdoor", "frontdoor", "id"}


def test_the_plan_check_design_and_auto_read_the_same_table(monkeypatch):
    """Taking ols out of the back-door row takes it out of the plan, out of what ols fits
    and out of auto, at once."""
    edited = dict(ADMISSIBLE, backdoor=Admissible(("ipw", "aipw"), auto=("aipw",)))
    monkeypatch.setattr(admissible_table, "ADMISSIBLE", MappingProxyType(edited))
    plan = identify(BACKDOOR, "d", "y")
    assert plan.estimators_for(plan.default) == ("ipw", "aipw")
    with pytest.raises(EstimationError, match=r"'ols' does not support the 'backdoor' strategy \(it supports \[\]\)"):
        get_estimator("ols")().check_design(build_design(plan.strategy(), get_estimator("ols"),
                                                         FrameColumns("d", "y"), _spec(), metric="y"))
    assert auto_estimators(_spec("treatment_values: {treated: 1, control: 0}\n"), plan) == ("aipw",)


def test_a_class_attribute_that_disagrees_with_the_table_is_refused():
    class Toy(Estimator):
        name = "toy_estimator"
        strategies = frozenset({"iv"})

    with pytest.raises(TypeError, match=r"declares strategies \['iv'\].*admits it for \[\]"):
        register(Toy)
    assert "toy_estimator" not in ESTIMATORS


def test_auto_leaves_out_binary_treatment_estimators_unless_the_treatment_is_binary():
    natural = _spec()
    plan = plan_study(natural)["y"]
    assert auto_estimators(natural, plan) == ("ols",)
    assert auto_estimators(_spec("treatment_values: {treated: 1, control: 0}\n"), plan) == ("ols", "aipw")
    assert auto_estimators(_spec("design: experiment\n"), plan) == ("ols", "aipw")


def test_each_estimator_runs_on_the_default_or_the_first_strategy_that_admits_it():
    spec = _spec("estimators: [iv, auto, ols, id_plugin]\n")
    chosen = choose_estimators(spec, plan_study(spec)["y"])
    assert [(c.name, c.strategy.name if c.strategy else None) for c in chosen] == [
        ("iv", None), ("ols", "backdoor.optimal"), ("id_plugin", "backdoor.optimal")]
    assert chosen[0].reason.startswith("no strategy in the plan admits iv; strategies: ['backdoor.optimal'")


def test_raw_variable_estimators_ask_for_the_estimands_variables_and_fit_raw_columns():
    spec = _spec("estimators: [ols, id_plugin]\n")
    strategy = plan_study(spec)["y"].strategy()
    assert model_request(strategy, get_estimator("ols")) == ModelRequest(covariates=("x1", "x2"))
    assert model_request(strategy, get_estimator("id_plugin")) == ModelRequest(discrete=("d", "x1", "x2", "y"))
    frame = FrameColumns("__t", "__y", covariates=("__x0", "__x1"), discrete=("d", "x1", "x2", "y"),
                         labels=(("__t", "d"), ("__y", "y")), binary_treatment=True)
    raw = build_design(strategy, get_estimator("id_plugin"), frame, spec, metric="y", segment="x1=1")
    coded = build_design(strategy, get_estimator("ols"), frame, spec, metric="y")
    assert (raw.treatment, raw.outcome, raw.variables) == ("d", "y", ("d", "x1", "x2", "y"))
    assert (coded.treatment, coded.outcome, coded.covariates) == ("__t", "__y", ("__x0", "__x1"))
    assert (raw.strategy, raw.kind, raw.contrast, raw.segment) == ("backdoor.optimal", "backdoor", "d: 1 vs 0",
                                                                   "x1=1")


def test_the_estimator_names_strategy_contrast_and_segment_from_the_design():
    """Nothing rewrites a result after the fit: the design carries the study's words."""
    from causal_core.datasets import confounded_binary

    sim = confounded_binary(2000, np.random.default_rng(2))
    spec = _spec("treatment_values: {treated: 1, control: 0}\nestimators: [ols, ipw]\n")
    strategy = plan_study(spec)["y"].strategy()
    frame = FrameColumns("d", "y", covariates=("x1", "x2"), treated_value=1, control_value=0)
    for name in ("ols", "ipw"):
        cls = get_estimator(name)
        design = build_design(strategy, cls, frame, spec, metric="y", segment="region=north")
        result = cls(bootstrap=BootstrapOptions(replicates=20)).fit(PandasMomentEngine(sim.frame, n_buckets=50),
                                                                    design).result_
        assert (result.strategy, result.contrast, result.segment) == ("backdoor.optimal", "d: 1 vs 0",
                                                                      "region=north")


def test_only_binary_treatment_estimators_meet_a_non_binary_treatment_and_the_reason_lists_values():
    frame = FrameColumns("__t", "__y", labels=(("__t", "dose"),), binary_treatment=False,
                         treatment_seen=(0.0, 0.5, 1.0, 2.0, 3.0, 4.5))
    assert treatment_obstacle(get_estimator("ols"), frame) is None
    assert treatment_obstacle(get_estimator("ipw"), frame) == (
        "treatment 'dose' is not binary (values {0, 0.5, 1, 2, 3, ...}); "
        "set treatment_values to choose a treated and a control value")
    assert treatment_obstacle(get_estimator("ipw"), FrameColumns("__t", "__y")) is None
