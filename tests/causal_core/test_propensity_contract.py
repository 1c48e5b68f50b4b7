"""What the propensity estimators share beyond every estimator's contract
(``test_estimator_contract.py``): the fitted propensity model, the difference in means
without covariates, user labels in errors, and a 0/1 treatment."""

from __future__ import annotations

import pytest

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from causal_core.estimators.results import EstimateResult
from tests.causal_core.propensity_sims import simulate

NAMES = ("ipw", "aipw", "stratification")


@pytest.fixture(scope="module")
def engine():
    return PandasMomentEngine(simulate(3_000, seed=31), n_buckets=50)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_with_a_result(engine, name):
    est = get_estimator(name)(bootstrap=BootstrapOptions(replicates=20, seed=1))
    assert not hasattr(est, "result_")  # __init__ only stores
    assert est.fit(engine, ModelRoles(treatment="d", outcome="y", covariates=("x1", "x2"), target="att")) is est
    res = est.result_
    assert isinstance(res, EstimateResult) and res.estimator == name and res.target == "att"
    assert res.ci_low < res.estimate < res.ci_high and res.n == 3_000 and len(res.replicates) == 20
    assert est.propensity_.names == ("intercept", "x1", "x2")
    res.to_dict()  # JSON-safe


@pytest.mark.parametrize("name", NAMES)
def test_without_covariates_it_is_the_difference_in_means(engine, name):
    df = simulate(3_000, seed=31)
    res = get_estimator(name)(bootstrap=BootstrapOptions(replicates=0)).fit(
        engine, ModelRoles(treatment="d", outcome="y")).result_
    assert res.estimate == pytest.approx(df.y[df.d == 1].mean() - df.y[df.d == 0].mean(), rel=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_labels_name_columns_in_errors_and_diagnostics(name):
    df = simulate(2_000, seed=32).rename(columns={"x1": "__x0"})
    df["__x1"] = 2 * df["__x0"]
    design = ModelRoles(treatment="d", outcome="y", covariates=("__x0", "__x1"),
                    labels=(("__x0", "age"), ("__x1", "age2")))
    with pytest.raises(EstimationError, match=r"collinear columns: 'age', 'age2'"):
        get_estimator(name)().fit(PandasMomentEngine(df, n_buckets=10), design)


@pytest.mark.parametrize("name", NAMES)
def test_a_treatment_not_coded_0_1_is_refused(engine, name):
    with pytest.raises(EstimationError, match="coded 0/1"):
        get_estimator(name)().fit(engine, ModelRoles(treatment="y", outcome="d", covariates=("x1",)))
