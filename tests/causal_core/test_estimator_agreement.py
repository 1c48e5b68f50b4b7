"""Estimators of one target are compared through their paired bootstrap replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from causal_core.study import compare_estimates, study_warnings

BOOT = BootstrapOptions(replicates=400, seed=12)


def simulate(n: int, misspecified: bool, seed: int) -> pd.DataFrame:
    """Propensity logistic-linear in x (ipw is right); the outcome cubic in x's positive part
    when ``misspecified`` (a regression linear in x is wrong, and the arms' x differ), else linear."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, size=n)
    d = (rng.uniform(size=n) < 1 / (1 + np.exp(-1.2 * x))).astype(float)
    y = 2.0 * d + (2.0 * np.maximum(x, 0) ** 3 if misspecified else 1.5 * x) + rng.normal(size=n)
    return pd.DataFrame({"x": x, "d": d, "y": y})


def fit_both(df):
    design = ModelRoles(treatment="d", outcome="y", covariates=("x",))
    out = []
    for name in ("ols", "ipw"):
        engine = PandasMomentEngine(df, n_buckets=200)
        out.append(get_estimator(name)(bootstrap=BOOT).fit(engine, design).result_)
    return out


def test_a_misspecified_outcome_model_is_flagged_with_the_paired_bootstrap_se():
    ols, ipw = fit_both(simulate(30000, misspecified=True, seed=1))
    assert abs(ipw.estimate - 2.0) < 3 * ipw.se  # the right model covers the truth
    assert abs(ols.estimate - 2.0) > 3.5 * ols.se  # the wrong one does not
    (c,) = compare_estimates([ols, ipw])
    diff_reps = np.asarray(ols.replicates) - np.asarray(ipw.replicates)
    assert c.difference == pytest.approx(ols.estimate - ipw.estimate, rel=1e-12)
    assert c.se == pytest.approx(np.std(diff_reps, ddof=1), rel=1e-12)
    # Paired draws: the difference is far more precise than two independent estimates.
    assert c.se < 0.7 * np.hypot(ols.se, ipw.se)
    assert c.disagree and c.p_adjusted < 0.01
    warnings = study_warnings([ols, ipw], [c], {})
    assert any(w.startswith("ols and ipw disagree on the ATE") for w in warnings)


def test_agreeing_estimators_raise_no_warning():
    ols, ipw = fit_both(simulate(8000, misspecified=False, seed=2))
    (c,) = compare_estimates([ols, ipw])
    assert not c.disagree and c.p_adjusted > 0.05
    assert not any("disagree" in w for w in study_warnings([ols, ipw], [c], {}))


def test_holm_adjustment_equals_statsmodels():
    """Three estimators, three pairs: the adjusted p-values are statsmodels' Holm."""
    df = simulate(6000, misspecified=True, seed=3)
    design = ModelRoles(treatment="d", outcome="y", covariates=("x",))
    results = [get_estimator(n)(bootstrap=BOOT).fit(PandasMomentEngine(df, n_buckets=200), design).result_
               for n in ("ols", "ipw", "aipw")]
    comps = compare_estimates(results)
    assert [(c.first, c.second) for c in comps] == [("ols", "ipw"), ("ols", "aipw"), ("ipw", "aipw")]
    expected = multipletests([c.p_value for c in comps], method="holm")[1]
    np.testing.assert_allclose([c.p_adjusted for c in comps], expected, rtol=1e-12)


def test_unpaired_results_are_not_compared():
    """Different replicate counts (different weights) or no bootstrap: no comparison."""
    df = simulate(3000, misspecified=True, seed=4)
    design = ModelRoles(treatment="d", outcome="y", covariates=("x",))
    a = get_estimator("ols")(bootstrap=BOOT).fit(PandasMomentEngine(df, n_buckets=200), design).result_
    b = get_estimator("ipw")(bootstrap=BootstrapOptions(replicates=0)).fit(
        PandasMomentEngine(df, n_buckets=200), design).result_
    assert compare_estimates([a, b]) == []
