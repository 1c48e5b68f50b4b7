"""The linear front-door estimator (``frontdoor``) against statsmodels per stage and a
numpy delta method over the stacked influence functions; recovery under a confounder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.datasets import linear_frontdoor
from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import UNIT, PandasMomentEngine

NO_BOOT = BootstrapOptions(replicates=0)
RTOL = 1e-6


@pytest.fixture(scope="module")
def frame():
    """Two mediators and a covariate, heteroskedastic, with an unobserved confounder u."""
    rng = np.random.default_rng(0)
    n = 4000
    u, w = rng.normal(size=n), rng.normal(size=n)
    d = u + 0.5 * w + rng.normal(size=n)
    m1 = 0.8 * d + 0.2 * w + rng.normal(size=n) * (1 + 0.5 * np.abs(d))
    m2 = -0.5 * d + rng.normal(size=n)
    y = 1.2 * m1 + 0.5 * m2 + 1.5 * u + 0.3 * w + rng.normal(size=n)
    return pd.DataFrame({"d": d, "y": y, "w": w, "m1": m1, "m2": m2, UNIT: rng.integers(0, 250, n)})


DESIGN = ModelRoles("d", "y", ("w",), mediators=("m1", "m2"), strategy="frontdoor")


def fit(frame, design=DESIGN, **options):
    options.setdefault("bootstrap", NO_BOOT)
    return get_estimator("frontdoor")(**options).fit(PandasMomentEngine(frame, n_buckets=64), design).result_


def numpy_delta_method(f, groups=None):
    n = len(f)
    xa = np.column_stack([np.ones(n), f.d, f.w])
    xb = np.column_stack([np.ones(n), f.m1, f.m2, f.d, f.w])
    fits_a = [np.linalg.lstsq(xa, f[m], rcond=None)[0] for m in ("m1", "m2")]
    fit_b = np.linalg.lstsq(xb, f.y, rcond=None)[0]
    a = np.array([fa[1] for fa in fits_a])
    b = fit_b[1:3]
    scores = np.column_stack([xa * (f[m].to_numpy() - xa @ fa)[:, None] for m, fa in zip(("m1", "m2"), fits_a)]
                             + [xb * (f.y.to_numpy() - xb @ fit_b)[:, None]])
    if groups is None:
        fa_, fb_ = n / (n - 3), n / (n - 5)
    else:
        scores = pd.DataFrame(scores).groupby(groups).sum().to_numpy()
        g = len(scores)
        fa_, fb_ = g / (g - 1) * (n - 1) / (n - 3), g / (g - 1) * (n - 1) / (n - 5)
    ai, bi = np.linalg.inv(xa.T @ xa), np.linalg.inv(xb.T @ xb)
    grad = np.r_[np.sqrt(fa_) * b[0] * ai[1], np.sqrt(fa_) * b[1] * ai[1], np.sqrt(fb_) * (a @ bi[1:3])]
    return a @ b, np.sqrt(grad @ scores.T @ scores @ grad)


def test_stage_coefficients_and_ses_match_statsmodels(frame):
    res = fit(frame)
    fa = {m: sm.OLS(frame[m], sm.add_constant(frame[["d", "w"]])).fit(cov_type="HC1") for m in ("m1", "m2")}
    fb = sm.OLS(frame.y, sm.add_constant(frame[["m1", "m2", "d", "w"]])).fit(cov_type="HC1")
    assert res.estimate == pytest.approx(sum(fa[m].params["d"] * fb.params[m] for m in fa), rel=RTOL)
    for m in fa:
        a = res.diagnostics["treatment_to_mediator"][m]
        b = res.diagnostics["mediator_to_outcome"][m]
        assert (a["coef"], a["se"]) == (pytest.approx(fa[m].params["d"], rel=RTOL), pytest.approx(fa[m].bse["d"], rel=RTOL))
        assert (b["coef"], b["se"]) == (pytest.approx(fb.params[m], rel=RTOL), pytest.approx(fb.bse[m], rel=RTOL))


def test_delta_method_se_matches_numpy(frame):
    est, se = numpy_delta_method(frame)
    res = fit(frame)
    assert res.estimate == pytest.approx(est, rel=RTOL)
    assert res.se == pytest.approx(se, rel=RTOL)


def test_cluster_robust_delta_method_matches_numpy(frame):
    est, se = numpy_delta_method(frame, groups=frame[UNIT].to_numpy())
    res = fit(frame, ModelRoles("d", "y", ("w",), mediators=("m1", "m2"), strategy="frontdoor", clustered=True))
    assert res.se == pytest.approx(se, rel=RTOL)
    assert res.diagnostics["cov_type"] == "cluster"


def test_recovers_the_effect_where_backdoor_regression_is_confounded():
    s = linear_frontdoor(20_000, np.random.default_rng(5))
    res = fit(s.frame, s.make_design())
    assert abs(res.estimate - s.truth["ate"]) < 4 * res.se
    naive = sm.OLS(s.frame.y, sm.add_constant(s.frame[["d"]])).fit().params["d"]
    assert abs(naive - s.truth["ate"]) > 10 * res.se


def test_bootstrap_agrees_with_delta_method(frame):
    res = fit(frame, bootstrap=BootstrapOptions(replicates=400, seed=2))
    assert res.se == pytest.approx(res.diagnostics["analytic_se"], rel=0.2)
    assert res.ci_low < res.estimate < res.ci_high


@pytest.mark.parametrize("design, message", [
    (ModelRoles("d", "y", strategy="frontdoor"), "no mediators"),
    (ModelRoles("d", "y", ("w",), mediators=("w",), strategy="frontdoor"), r"mediators \['w'\] are also"),
    (ModelRoles("d", "y", mediators=("m1",), strategy="backdoor"), "does not support the 'backdoor'"),
])
def test_bad_designs_are_named(frame, design, message):
    with pytest.raises(EstimationError, match=message):
        fit(frame, design)


def test_mediator_collinear_with_treatment_is_named(frame):
    f = frame.assign(m2=2 * frame.d + 1)
    with pytest.raises(EstimationError, match=r"collinear columns: 'm2', treatment 'd'"):
        fit(f)
