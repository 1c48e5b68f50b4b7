"""The refuter registry: names to classes, the estimator contract, and the pure sensitivity refuter."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from causal_core.errors import SpecError
from causal_core.refuters.ovb_refuter import LinearModelGram, gram_names
from causal_core.refuters.registry import get_refuter, refuter_names
from causal_core.spec.types import REFUTERS


def test_an_unknown_refuter_lists_the_valid_names():
    with pytest.raises(SpecError, match="valid names: data_subset, dummy_outcome, graph_validation, "
                                        "marginal_sensitivity, placebo_treatment, random_common_cause, "
                                        "sensitivity, unobserved_common_cause"):
        get_refuter("placebo")


@pytest.mark.parametrize("name", refuter_names())
def test_every_refuter_is_a_spec_name_with_a_keyword_only_init_that_only_stores(name):
    cls = get_refuter(name)
    assert name in REFUTERS and cls.name == name
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    assert params and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    refuter = cls()
    assert {p.name: getattr(refuter, p.name) for p in params} == {p.name: p.default for p in params}


def test_a_benchmark_groups_all_terms_of_its_variable_and_a_missing_one_is_a_reason():
    rng = np.random.default_rng(0)
    n = 500
    age = rng.normal(size=n)
    d = 0.3 * age + rng.normal(size=n)
    y = 0.2 * d + 0.2 * age + 0.1 * age ** 2 + rng.normal(size=n)
    v = np.column_stack([np.ones(n), d, age, age ** 2, y])
    names = gram_names("__t", ("__x0", "__x1"), "__y")
    model = LinearModelGram(v.T @ v, names, "__t", "__y", ("__x0", "__x1"),
                            sources=(("__x0", "age"), ("__x1", "age")))
    assert model.terms_of("age") == ("__x0", "__x1")
    ref = get_refuter("sensitivity")(benchmarks=["age"], kd=[1]).refute(model, estimator="ols", metric="y",
                                                                        segment="all")
    assert [b["benchmark"] for b in ref.details["bounds"]] == ["age"]
    assert ref.new_effect == ref.details["bounds"][0]["estimate"] and isinstance(ref.passed, bool)
    with pytest.raises(Exception, match="'region' has no term"):
        get_refuter("sensitivity")(benchmarks=["region"]).refute(model, estimator="ols", metric="y", segment="all")


def test_a_benchmark_too_strong_for_any_bound_is_reported_and_fails():
    rng = np.random.default_rng(1)
    n = 400
    x = rng.normal(size=n)
    d = 0.5 * x + rng.normal(size=n)
    y = 0.3 * d + 5.0 * x + rng.normal(size=n)
    v = np.column_stack([np.ones(n), d, x, y])
    model = LinearModelGram(v.T @ v, gram_names("d", ("x",), "y"), "d", "y", ("x",))
    ref = get_refuter("sensitivity")(benchmarks=["x"]).refute(model, estimator="ols", metric="y", segment="all")
    assert ref.details["bounds"] == [] and [b["kd"] for b in ref.details["infeasible_bounds"]] == [1.0, 2.0, 3.0]
    assert ref.passed is False and ref.new_effect is None
    assert get_refuter("sensitivity")().refute(model, estimator="ols", metric="y", segment="all").passed is None
