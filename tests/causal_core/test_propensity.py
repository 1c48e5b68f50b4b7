"""The moment-based logistic propensity fit against statsmodels, and its failure modes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.errors import EstimationError
from causal_core.estimators.propensity import fit_logistic
from causal_core.moments.engine import unpack_symmetric
from causal_core.moments import PandasMomentEngine
from causal_core.moments.bootstrap import bucket_weights
from tests.causal_core.counting import CountingEngine
from tests.causal_core.propensity_reference import logit_fit
from tests.causal_core.propensity_sims import simulate


@pytest.fixture(scope="module")
def data():
    return simulate(20_000, seed=11)


def test_matches_statsmodels_logit(data):
    eng = CountingEngine(data, n_buckets=200)
    fit = fit_logistic(eng, "d", ["x1", "x2"])
    ref, _, _ = logit_fit(data, ["x1", "x2"])
    np.testing.assert_allclose(fit.coef, ref, rtol=1e-6, atol=0)
    assert fit.names == ("intercept", "x1", "x2")
    # one coefficient-free pass, then one per Newton iteration; the discriminant start
    # leaves few (from b = 0 this data takes 5)
    assert eng.calls == fit.n_iter + 1 and 2 <= fit.n_iter <= 4
    assert fit.n == 20_000 and fit.n_treated == int(data.d.sum())


def test_discriminant_start_and_its_fallback(data, monkeypatch):
    """Skewed covariates (LDA's normal model is wrong) still reach the MLE, and a start
    that fits worse than the intercept-only model is replaced by the Newton-from-zero point."""
    import causal_core.estimators.propensity as prop

    skewed = data.assign(x1=np.exp(data.x1), x2=data.x2 + data.x2 ** 2)
    ref, _, _ = logit_fit(skewed, ["x1", "x2"])
    fit = fit_logistic(PandasMomentEngine(skewed, n_buckets=50), "d", ["x1", "x2"])
    np.testing.assert_allclose(fit.coef, ref, rtol=1e-6, atol=0)
    assert fit.start == "discriminant"

    real = prop._starts
    monkeypatch.setattr(prop, "_starts", lambda *a: (-40.0 * real(*a)[0], real(*a)[1]))
    eng = CountingEngine(data, n_buckets=50)
    fit = fit_logistic(eng, "d", ["x1", "x2"])
    np.testing.assert_allclose(fit.coef, logit_fit(data, ["x1", "x2"])[0], rtol=1e-6, atol=0)
    assert fit.start == "zero-step" and eng.calls == fit.n_iter + 1  # n_iter counts the rejected start


def _bucket_scores(eng, fit):
    """Per-bucket score and information at the fitted coefficients: (K, p), (K, p, p)."""
    sums = eng.bucket_sums(fit.score_exprs())
    return sums[:, :fit.p], unpack_symmetric(sums[:, fit.p:], fit.p), sums


def test_score_exprs_are_score_and_information(data):
    eng = PandasMomentEngine(data, n_buckets=50)
    fit = fit_logistic(eng, "d", ["x1", "x2"])
    _, x, _ = logit_fit(data, ["x1", "x2"])
    e = 1 / (1 + np.exp(-x @ fit.eval_coef))
    np.testing.assert_allclose(fit.hessian, (x * (e * (1 - e))[:, None]).T @ x, rtol=1e-10)
    grad, hess, _ = _bucket_scores(eng, fit)
    assert grad.shape == (50, 3) and hess.shape == (50, 3, 3) and fit.n_scores == 9
    e = 1 / (1 + np.exp(-x @ fit.coef))
    np.testing.assert_allclose(hess.sum(axis=0), (x * (e * (1 - e))[:, None]).T @ x, rtol=1e-10)
    assert np.abs(grad.sum(axis=0)).max() < 1e-6  # the score vanishes at the MLE
    assert np.abs(grad).max() > 1.0  # ...but not bucket by bucket


def test_one_step_bootstrap_is_close_to_exact_weighted_refit(data):
    eng = PandasMomentEngine(data, n_buckets=100)
    fit = fit_logistic(eng, "d", ["x1", "x2"])
    grad, _, scores = _bucket_scores(eng, fit)
    w = bucket_weights(3, 100, seed=5)
    shifts = fit.shifts_from_totals(w @ scores)
    _, x, _ = logit_fit(data, ["x1", "x2"])
    buckets = eng._buckets
    for r in range(3):
        exact = sm.GLM(data.d.to_numpy(), x, family=sm.families.Binomial(),
                       freq_weights=w[r][buckets]).fit(tol=1e-12).params
        # one Newton step from the MLE: error is second order, far below the SE (~0.02)
        assert np.max(np.abs(fit.coef + shifts[r] - exact)) < 2e-3
    reps = fit.coef + fit.shifts_from_totals(bucket_weights(400, 100, seed=1) @ scores)
    # the Poisson bucket bootstrap targets the bucket-level sandwich H^-1 (sum_k g_k g_k') H^-1
    hinv = np.linalg.inv(fit.hessian)
    se = np.sqrt(np.diag(hinv @ grad.T @ grad @ hinv))
    np.testing.assert_allclose(reps.std(axis=0), se, rtol=0.12)


def test_arm_grams_of_the_first_pass(data):
    """The first pass's per-arm Gram matrices of (1, x, y), per bucket and in total."""
    eng = CountingEngine(data, n_buckets=20)
    fit = fit_logistic(eng, "d", ["x1"], outcome="y", first_by_bucket=True)
    for arm in (1, 0):
        rows = data[data.d == arm]
        v = np.column_stack([np.ones(len(rows)), rows.x1, rows.y])
        want = (v.T @ v)[np.triu_indices(3)]
        np.testing.assert_allclose(fit.arm_gram(arm), want, rtol=1e-10)
        np.testing.assert_allclose(fit.arm_gram(arm, buckets=True).sum(axis=0), want, rtol=1e-10)
    assert fit.arm_gram(1, buckets=True).shape == (20, 6)
    totals_only = fit_logistic(eng, "d", ["x1"], outcome="y")
    np.testing.assert_allclose(totals_only.arm_gram(1), fit.arm_gram(1), rtol=1e-12)
    with pytest.raises(ValueError, match="first_by_bucket"):
        totals_only.arm_gram(1, buckets=True)


def test_complete_separation_is_reported():
    x = np.linspace(-1, 1, 400)
    df = pd.DataFrame({"d": (x > 0).astype(float), "x": x})
    with pytest.raises(EstimationError, match="separation"):
        fit_logistic(PandasMomentEngine(df, n_buckets=10), "d", ["x"])


def test_a_level_in_one_arm_only_is_named_before_newton():
    """A 0/1 covariate whose level 1 is always treated (quasi-complete separation) is a
    positivity failure, named from the first pass before Newton diverges."""
    rng = np.random.default_rng(0)
    z = rng.binomial(1, 0.3, 2000).astype(float)
    d = np.where(z == 1, 1.0, rng.binomial(1, 0.4, 2000))  # z = 1 always treated
    df = pd.DataFrame({"d": d, "z": z, "x": rng.normal(size=2000)})
    eng = CountingEngine(df, n_buckets=10)
    with pytest.raises(EstimationError, match=rf"positivity fails for treatment 'd': no untreated rows where z = 1 "
                                              rf"\(all {int(z.sum())} rows where z = 1 are treated\)"):
        fit_logistic(eng, "d", ["z", "x"])
    assert eng.calls == 1


def test_collinear_and_constant_covariates_are_named(data):
    df = data.assign(x3=2 * data.x1 - 1, c=3.0)
    eng = PandasMomentEngine(df, n_buckets=10)
    with pytest.raises(EstimationError, match=r"propensity model: collinear columns: 'x1', 'x3' are linearly"):
        fit_logistic(eng, "d", ["x1", "x2", "x3"])
    with pytest.raises(EstimationError, match=r"propensity model: constant columns cannot be estimated: 'c'"):
        fit_logistic(eng, "d", ["x1", "c"])


def test_bad_treatments_are_rejected(data):
    with pytest.raises(EstimationError, match="constant"):
        fit_logistic(PandasMomentEngine(data.assign(d=1.0), n_buckets=10), "d", ["x1"])
    with pytest.raises(EstimationError, match="coded 0/1"):
        fit_logistic(PandasMomentEngine(data.assign(d=data.d * 2), n_buckets=10), "d", ["x1"])


def test_non_convergence_is_reported(data):
    with pytest.raises(EstimationError, match="did not converge in 2"):
        fit_logistic(PandasMomentEngine(data, n_buckets=10), "d", ["x1"], max_iter=2)
