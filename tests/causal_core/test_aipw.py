"""AIPW: against a statsmodels / numpy reimplementation, known truths, double robustness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from causal_core.moments.bootstrap import bucket_weights
from tests.causal_core.propensity_reference import aipw, logit_fit
from tests.causal_core.propensity_sims import naive, simulate, truths

COVS = ("x1", "x2")
NOBOOT = BootstrapOptions(replicates=0)


def fit(df, target="ate", n_buckets=200, clustered=False, **options):
    design = ModelRoles(treatment="d", outcome="y", covariates=COVS, target=target, clustered=clustered)
    return get_estimator("aipw")(**options).fit(PandasMomentEngine(df, n_buckets=n_buckets), design)


@pytest.fixture(scope="module")
def data():
    return simulate(20_000, seed=5)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_matches_row_level_reference(data, target):
    res = fit(data, target, bootstrap=NOBOOT).result_
    est, se = aipw(data, COVS, target)
    assert res.estimate == pytest.approx(est, rel=1e-6)
    assert res.se == pytest.approx(se, rel=1e-6)


def test_clustered_influence_function_se():
    df = simulate(5_000, seed=6)
    df = pd.concat([df, df.assign(y=df.y + np.random.default_rng(2).normal(size=len(df)))], ignore_index=True)
    res = fit(df, clustered=True, bootstrap=NOBOOT).result_
    est, se = aipw(df, COVS, "ate", units=df["__unit"])
    assert res.estimate == pytest.approx(est, rel=1e-6)
    assert res.se == pytest.approx(se, rel=1e-6)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_recovers_each_target_and_naive_does_not(data, target):
    truth = truths()[target]
    res = fit(data, target).result_
    se = res.diagnostics["analytic_se"]
    assert abs(res.estimate - truth) < 4 * se
    assert abs(naive(data) - truth) > 10 * se
    assert res.diagnostics["bootstrap_se"] == pytest.approx(se, rel=0.2)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_wrong_outcome_model_right_propensity(target):
    df = simulate(20_000, seed=7, y0_square=1.0)
    d, y = df.d.to_numpy(), df.y.to_numpy()
    _, x, _ = logit_fit(df, COVS)
    reg = {a: sm.OLS(y[d == a], x[d == a]).fit().predict(x) for a in (0, 1)}
    h = {"ate": np.ones_like(d), "att": d, "atc": 1 - d}[target]
    regression_only = np.sum(h * (reg[1] - reg[0])) / h.sum()
    truth = truths()[target]
    res = fit(df, target, bootstrap=NOBOOT).result_
    assert abs(res.estimate - truth) < 4 * res.se
    if target != "ate":  # the misspecified regression alone is biased for ATT / ATC
        assert abs(regression_only - truth) > 4 * res.se


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_wrong_propensity_model_right_outcome_model(target):
    df = simulate(20_000, seed=8, e_square=0.8)
    truth = truths(e_square=0.8)[target]
    assert abs(truth - truths()[target]) > 0.05 or target == "ate"
    res = fit(df, target, bootstrap=NOBOOT).result_
    assert abs(res.estimate - truth) < 4 * res.se


def test_replicates_are_close_to_exact_refits(data):
    eng = PandasMomentEngine(data, n_buckets=200)
    design = ModelRoles(treatment="d", outcome="y", covariates=COVS)
    res = get_estimator("aipw")(bootstrap=BootstrapOptions(replicates=4, seed=4)).fit(eng, design).result_
    w = bucket_weights(4, 200, seed=np.random.SeedSequence(4))[:, eng._buckets]
    _, x, _ = logit_fit(data, COVS)
    d, y = data.d.to_numpy(), data.y.to_numpy()
    for r in range(4):
        b = sm.GLM(d, x, family=sm.families.Binomial(), freq_weights=w[r]).fit(tol=1e-12).params
        e = 1 / (1 + np.exp(-x @ b))
        m = {a: x @ sm.WLS(y[d == a], x[d == a], weights=w[r][d == a]).fit().params for a in (0, 1)}
        g = m[1] - m[0] + d * (y - m[1]) / e - (1 - d) * (y - m[0]) / (1 - e)
        exact = np.sum(w[r] * g) / np.sum(w[r])
        assert abs(res.replicates[r] - exact) < 0.1 * res.diagnostics["analytic_se"]


def test_collinear_outcome_model_names_the_arm():
    df = simulate(3_000, seed=9)
    df["x3"] = np.where(df.d == 1, 1.0, df.x1)  # constant on the treated rows only
    design = ModelRoles(treatment="d", outcome="y", covariates=("x1", "x3"))
    with pytest.raises(EstimationError, match="outcome model on the treated rows"):
        get_estimator("aipw")(bootstrap=NOBOOT).fit(PandasMomentEngine(df, n_buckets=10), design)


def test_trimming_reported(data):
    res = fit(data, "ate", trim=0.1, bootstrap=NOBOOT).result_
    trimmed = sum(res.diagnostics["n_trimmed"].values())
    _, _, e = logit_fit(data, COVS)
    assert trimmed == int(np.sum((e < 0.1) | (e > 0.9))) and res.n == len(data) - trimmed
