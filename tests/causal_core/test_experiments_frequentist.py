"""Lifts, ratio metrics, CUPED, SRM and multiple testing from per-arm sums, each checked
against an independent computation on the unit-level rows the sums were made from
(scipy, statsmodels, plain numpy)."""

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from causal_core.errors import DataCheckError, EstimationError
from causal_core.experiments import (
    ArmSums, Metric, adjust_p_values, arm_estimate, compare, cuped_arms, cuped_theta, lin_arms,
    srm_test,
)
from causal_core.experiments.cuped import variance_reduction_bound
from tests.causal_core.experiments_data import units

REL = 1e-10


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240611)
    a, b = units(rng, 1500), units(rng, 1700, lift=0.08)
    buckets = {k: rng.integers(0, 50, len(v["y"])) for k, v in (("a", a), ("b", b))}
    return a, b, buckets


def test_bucketed_sums_total_to_the_unbucketed_sums(data):
    a, _, buckets = data
    per_bucket = ArmSums.from_units(a, buckets["a"], n_buckets=50)
    assert per_bucket.n.shape == (50,) and per_bucket.per_bucket
    whole = ArmSums.from_units(a)
    np.testing.assert_allclose(per_bucket.total().cross, whole.cross, rtol=1e-12)
    np.testing.assert_allclose(per_bucket.covariance(), np.cov(np.column_stack(list(a.values())).T),
                               rtol=1e-10)


def test_from_columns_reads_warehouse_aggregates_and_names_what_is_missing():
    y = np.array([1.0, 2.0, 4.0])
    s = ArmSums.from_columns(3, {"y": y.sum()}, {("y", "y"): (y * y).sum()})
    assert arm_estimate(s, Metric("m", "y")).variance == pytest.approx(np.var(y, ddof=1), rel=REL)
    with pytest.raises(EstimationError, match=r"y\*x|x\*y"):
        ArmSums.from_columns(3, {"y": 7.0, "x": 3.0}, {("y", "y"): 21.0, ("x", "x"): 3.0})


@pytest.mark.parametrize("test", ["welch", "student"])
def test_absolute_lift_matches_scipy_ttest(data, test):
    a, b, _ = data
    ea = arm_estimate(ArmSums.from_units(a), Metric("y", "y"))
    eb = arm_estimate(ArmSums.from_units(b), Metric("y", "y"))
    res = compare(ea, eb, test=test)
    ref = stats.ttest_ind(b["y"], a["y"], equal_var=test == "student")
    assert res.estimate == pytest.approx(b["y"].mean() - a["y"].mean(), rel=REL)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert res.df == pytest.approx(ref.df, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (res.ci_low, res.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_relative_lift_se_is_the_delta_method_on_the_two_means(data):
    """Independent check: the delta method by numerical gradient of (mb - ma)/ma."""
    a, b, _ = data
    ea = arm_estimate(ArmSums.from_units(a), Metric("y", "y"))
    eb = arm_estimate(ArmSums.from_units(b), Metric("y", "y"))
    res = compare(ea, eb, relative=True, test="z")
    ma, mb = a["y"].mean(), b["y"].mean()
    va, vb = a["y"].var(ddof=1) / len(a["y"]), b["y"].var(ddof=1) / len(b["y"])
    f = lambda u, v: (v - u) / u  # noqa: E731
    h = 1e-6
    ga, gb = (f(ma + h, mb) - f(ma - h, mb)) / (2 * h), (f(ma, mb + h) - f(ma, mb - h)) / (2 * h)
    assert res.estimate == pytest.approx(mb / ma - 1, rel=REL)
    assert res.se == pytest.approx(np.sqrt(ga ** 2 * va + gb ** 2 * vb), rel=1e-6)
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(res.estimate / res.se)), rel=1e-12)


def test_ratio_metric_se_is_the_variance_of_the_unit_linearisation(data):
    """Deng et al. 2018, §3.1: var(ȳ/x̄) = var((y - R x)/x̄) / n."""
    a, b, _ = data
    m = Metric("orders_per_session", "y", "x", kind="ratio")
    est = {k: arm_estimate(ArmSums.from_units(d), m) for k, d in (("a", a), ("b", b))}
    for k, d in (("a", a), ("b", b)):
        r = d["y"].sum() / d["x"].sum()
        lin = (d["y"] - r * d["x"]) / d["x"].mean()
        assert est[k].mean == pytest.approx(r, rel=REL)
        assert est[k].se == pytest.approx(np.sqrt(lin.var(ddof=1) / len(lin)), rel=1e-10)
    res = compare(est["a"], est["b"])
    lin = {k: (d["y"] - est[k].mean * d["x"]) / d["x"].mean() for k, d in (("a", a), ("b", b))}
    ref = stats.ttest_ind(lin["b"] + est["b"].mean, lin["a"] + est["a"].mean, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert res.df == pytest.approx(ref.df, rel=1e-10)


def _design(a, b, interact=False):
    y = np.concatenate([a["y"], b["y"]])
    z = np.concatenate([a["z"], b["z"]])
    t = np.r_[np.zeros(len(a["y"])), np.ones(len(b["y"]))]
    zc = z - z.mean()
    cols = [np.ones_like(y), t, zc] + ([t * zc] if interact else [])
    return y, np.column_stack(cols)


def test_cuped_within_theta_is_ols_of_y_on_treatment_and_centred_z(data):
    a, b, _ = data
    m = Metric("y", "y", covariate="z")
    sa, sb = ArmSums.from_units(a), ArmSums.from_units(b)
    res = cuped_arms(sa, sb, m, theta="within")
    y, X = _design(a, b)
    ols = sm.OLS(y, X).fit()
    assert res.treatment.mean - res.control.mean == pytest.approx(ols.params[1], rel=REL)
    assert res.theta == pytest.approx(ols.params[2], rel=REL)


def test_cuped_pooled_theta_is_the_total_sample_regression_slope_deng_2013(data):
    """Deng et al. 2013, §3.3: θ = cov(Y, X)/var(X) over all units; it differs from the
    ANCOVA slope by O(1/n) (the arms' means differ), so the two lifts agree to 1e-3."""
    a, b, _ = data
    m = Metric("y", "y", covariate="z")
    sa, sb = ArmSums.from_units(a), ArmSums.from_units(b)
    y = np.concatenate([a["y"], b["y"]])
    z = np.concatenate([a["z"], b["z"]])
    theta = np.cov(y, z)[0, 1] / z.var(ddof=1)
    assert cuped_theta(sa, sb, m, "pooled") == pytest.approx(theta, rel=REL)
    res = cuped_arms(sa, sb, m)
    adj = {k: d["y"] - theta * (d["z"] - z.mean()) for k, d in (("a", a), ("b", b))}
    assert res.treatment.mean == pytest.approx(adj["b"].mean(), rel=REL)
    assert res.control.variance == pytest.approx(adj["a"].var(ddof=1), rel=1e-10)
    within = cuped_arms(sa, sb, m, theta="within")
    lift = res.treatment.mean - res.control.mean
    assert lift == pytest.approx(within.treatment.mean - within.control.mean, rel=1e-3)
    assert lift != pytest.approx(within.treatment.mean - within.control.mean, rel=1e-9)
    rho2 = np.corrcoef(y, z)[0, 1] ** 2
    assert variance_reduction_bound(sa, sb, m) == pytest.approx(rho2, rel=1e-10)
    assert res.variance_reduction == pytest.approx(rho2, abs=0.03)


def test_lin_interacted_matches_the_interacted_ols_and_per_arm_fitted_value_ses(data):
    a, b, _ = data
    m = Metric("y", "y", covariate="z")
    res = lin_arms(ArmSums.from_units(a), ArmSums.from_units(b), m)
    y, X = _design(a, b, interact=True)
    ols = sm.OLS(y, X).fit()
    assert res.treatment.mean - res.control.mean == pytest.approx(ols.params[1], rel=REL)
    assert res.theta_control == pytest.approx(ols.params[2], rel=1e-9)
    assert res.theta_treatment == pytest.approx(ols.params[2] + ols.params[3], rel=1e-9)
    zbar = np.concatenate([a["z"], b["z"]]).mean()
    for arm, d in ((res.control, a), (res.treatment, b)):
        fit = sm.OLS(d["y"], sm.add_constant(d["z"])).fit()
        pred = fit.get_prediction(np.array([[1.0, zbar]]))
        assert arm.mean == pytest.approx(pred.predicted_mean[0], rel=REL)
        assert arm.se == pytest.approx(pred.se_mean[0], rel=1e-9)


def test_ratio_cuped_equals_cuped_on_the_linearised_units(data):
    """Deng et al. 2018 §3.3: ratio CUPED is CUPED on the delta-method linearisations."""
    a, b, _ = data
    m = Metric("r", "y", "x", kind="ratio", covariate="z", covariate_denominator="w")
    sa, sb = ArmSums.from_units(a), ArmSums.from_units(b)
    res = cuped_arms(sa, sb, m)
    pool = {k: np.concatenate([a[k], b[k]]) for k in a}
    r, q = pool["y"].sum() / pool["x"].sum(), pool["z"].sum() / pool["w"].sum()
    lg = (pool["y"] - r * pool["x"]) / pool["x"].mean()
    lh = (pool["z"] - q * pool["w"]) / pool["w"].mean()
    theta = np.cov(lg, lh)[0, 1] / lh.var(ddof=1)
    assert res.theta == pytest.approx(theta, rel=1e-10)
    for arm, d in ((res.control, a), (res.treatment, b)):
        rk, qk = d["y"].sum() / d["x"].sum(), d["z"].sum() / d["w"].sum()
        lin = (d["y"] - rk * d["x"]) / d["x"].mean() - theta * (d["z"] - qk * d["w"]) / d["w"].mean()
        assert arm.mean == pytest.approx(rk - theta * (qk - q), rel=REL)
        assert arm.variance == pytest.approx(lin.var(ddof=1), rel=1e-10)
    assert 0 < res.variance_reduction < 1


def test_srm_p_value_is_scipy_chisquare_and_flags_a_mismatch():
    res = srm_test([5120, 4880], [0.5, 0.5], arms=["control", "treatment"])
    ref = stats.chisquare([5120, 4880], [5000, 5000])
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12) and res.statistic == pytest.approx(5.76)
    assert not res.mismatch and res.alpha == 0.001
    three = srm_test({"a": 3400, "b": 3300, "c": 3000}, {"a": 1, "b": 1, "c": 1})
    assert three.p_value == pytest.approx(stats.chisquare([3400, 3300, 3000]).pvalue, rel=1e-12)
    assert three.mismatch and three.to_dict()["mismatch"] is True
    with pytest.raises(DataCheckError, match="expected share of 0"):
        srm_test([10, 5], [1, 0])


@pytest.mark.parametrize("method,sm_method", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_equal_statsmodels_over_the_metric_arm_grid(method, sm_method):
    p = np.array([[0.001, 0.04, 0.20], [0.012, 0.03, np.nan]])
    res = adjust_p_values(p, method=method)
    ok = ~np.isnan(p)
    rej, adj, _, _ = multipletests(p[ok], alpha=0.05, method=sm_method)
    np.testing.assert_allclose(res.adjusted[ok], adj, rtol=1e-14)
    assert res.adjusted.shape == p.shape and np.isnan(res.adjusted[1, 2])
    assert (res.reject[ok] == rej).all()
    assert res.adjusted[0, 0] > p[0, 0]


def test_unknown_names_and_degenerate_inputs_raise_clear_errors():
    with pytest.raises(EstimationError, match="not one of"):
        adjust_p_values([0.1], method="hochberg-ish")
    s = ArmSums.from_units({"y": np.ones(5)})
    e = arm_estimate(s, Metric("y", "y"))
    with pytest.raises(EstimationError, match="zero variance"):
        compare(e, e)
    with pytest.raises(EstimationError, match="'q' is not in these sums"):
        arm_estimate(s, Metric("q", "q"))


def test_a_bucket_bootstrap_replicate_equals_the_sums_of_the_reweighted_units(data):
    """Reweighting bucket sums (DESIGN.md, bucket bootstrap) equals summing the units with
    their bucket's weight."""
    a, _, buckets = data
    per_bucket = ArmSums.from_units(a, buckets["a"], n_buckets=50)
    w = np.random.default_rng(0).poisson(1.0, 50).astype(float)
    rep = per_bucket.weighted(w)
    uw = w[buckets["a"]]
    v = np.column_stack(list(a.values()))
    assert rep.count() == uw.sum()
    np.testing.assert_allclose(rep.sums, uw @ v, rtol=1e-12)
    np.testing.assert_allclose(rep.cross, (v * uw[:, None]).T @ v, rtol=1e-12)
