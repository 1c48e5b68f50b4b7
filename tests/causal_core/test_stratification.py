"""Propensity-score stratification: numpy reference with the same cut points, truths, SE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from tests.causal_core.propensity_reference import logit_fit
from tests.causal_core.propensity_sims import naive, simulate, truths

COVS = ("x1", "x2")
NOBOOT = BootstrapOptions(replicates=0)


def fit(df, target="ate", n_buckets=200, clustered=False, **options):
    design = ModelRoles(treatment="d", outcome="y", covariates=COVS, target=target, clustered=clustered)
    return get_estimator("stratification")(**options).fit(PandasMomentEngine(df, n_buckets=n_buckets), design)


def reference(df, cuts, target, units=None):
    """Row-level stratified difference in means and its textbook variance: stratum
    variances plus the sampling of the stratum shares (ML variances, ddof=0)."""
    b, x, _ = logit_fit(df, COVS)
    stratum = np.searchsorted(np.asarray(cuts), x @ b, side="left")  # c_{j-1} < eta <= c_j
    d, y = df.d.to_numpy() == 1, df.y.to_numpy()
    tau_j, var_j, share = [], [], []
    for j in range(len(cuts) + 1):
        y1, y0 = y[(stratum == j) & d], y[(stratum == j) & ~d]
        tau_j.append(y1.mean() - y0.mean())
        var_j.append(y1.var() / len(y1) + y0.var() / len(y0))
        share.append({"ate": len(y1) + len(y0), "att": len(y1), "atc": len(y0)}[target])
    omega = np.array(share) / np.sum(share)
    tau = float(omega @ tau_j)
    var = omega ** 2 @ np.array(var_j) + omega @ (np.array(tau_j) - tau) ** 2 / np.sum(share)
    return tau, float(np.sqrt(var)), stratum


@pytest.fixture(scope="module")
def data():
    return simulate(20_000, seed=12)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
@pytest.mark.parametrize("n_strata", [5, 10])
def test_matches_numpy_with_the_same_cut_points(data, target, n_strata):
    est = get_estimator("stratification")(n_strata=n_strata, bootstrap=NOBOOT)
    res = est.fit(PandasMomentEngine(data, n_buckets=200),
                  ModelRoles(treatment="d", outcome="y", covariates=COVS, target=target)).result_
    tau, se, _ = reference(data, est.cut_points_, target)
    assert res.estimate == pytest.approx(tau, rel=1e-9)
    assert res.se == pytest.approx(se, rel=1e-9)


def test_cut_points_are_quantiles_without_collecting_rows(data):
    est = get_estimator("stratification")(n_strata=10, bootstrap=NOBOOT)
    est.fit(PandasMomentEngine(data, n_buckets=50), ModelRoles(treatment="d", outcome="y", covariates=COVS))
    b, x, _ = logit_fit(data, COVS)
    eta = x @ b
    cdf = [np.mean(eta <= c) for c in est.cut_points_]
    np.testing.assert_allclose(cdf, np.arange(1, 10) / 10, atol=0.001)
    sizes = np.bincount(np.searchsorted(est.cut_points_, eta, side="left"))
    assert sizes.min() > 0.09 * len(data)


def test_clustered_se_matches_unit_level_influence():
    df = simulate(5_000, seed=13)
    df = pd.concat([df, df.assign(y=df.y + np.random.default_rng(3).normal(size=len(df)))], ignore_index=True)
    est = get_estimator("stratification")(bootstrap=NOBOOT)
    res = est.fit(PandasMomentEngine(df, n_buckets=100),
                  ModelRoles(treatment="d", outcome="y", covariates=COVS, clustered=True)).result_
    tau, se_rows, stratum = reference(df, est.cut_points_, "ate")
    d, y = df.d.to_numpy() == 1, df.y.to_numpy()
    psi = np.zeros(len(df))
    n = len(df)
    for j in range(len(est.cut_points_) + 1):
        m1, m0 = (stratum == j) & d, (stratum == j) & ~d
        omega, tj = (m1.sum() + m0.sum()) / n, y[m1].mean() - y[m0].mean()
        psi[m1] = omega * (y[m1] - y[m1].mean()) / m1.sum() + (tj - tau) / n
        psi[m0] = -omega * (y[m0] - y[m0].mean()) / m0.sum() + (tj - tau) / n
    se = np.sqrt(np.sum(pd.Series(psi).groupby(df["__unit"]).sum() ** 2))
    assert res.estimate == pytest.approx(tau, rel=1e-9)
    assert res.se == pytest.approx(se, rel=1e-9)
    assert se > 1.2 * se_rows


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_recovers_each_target_with_ten_strata(target):
    # a weaker confounder: the within-stratum residual bias stays well below the SE
    alpha = (-0.3, 0.5, 0.5)
    df = simulate(20_000, seed=14, alpha=alpha)
    truth = truths(alpha)[target]
    res = fit(df, target, n_strata=10).result_
    se = res.diagnostics["analytic_se"]
    assert abs(res.estimate - truth) < 4 * se
    assert abs(naive(df) - truth) > 8 * se
    assert res.diagnostics["bootstrap_se"] == pytest.approx(se, rel=0.2)


def test_five_strata_leave_residual_confounding():
    """Cochran's ~90%: five strata remove most, not all, of the confounding bias."""
    df = simulate(200_000, seed=15, alpha=(-0.3, 1.5, 0.5), noise=0.2)
    truth = truths((-0.3, 1.5, 0.5))["ate"]
    five, ten = (fit(df, n_strata=k, bootstrap=NOBOOT).result_ for k in (5, 10))
    bias5, bias10 = five.estimate - truth, ten.estimate - truth
    assert abs(bias5) > 5 * five.se  # residual confounding dominates the noise at this n
    assert abs(bias10) < 0.5 * abs(bias5)
    assert abs(bias5) < 0.15 * abs(naive(df) - truth)


def test_no_overlap_in_a_stratum_is_reported():
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=4000)
    d = np.where(x1 > 0.7, 1.0, rng.binomial(1, 0.3, 4000))  # top stratum all treated
    df = pd.DataFrame({"d": d, "y": x1 + d + rng.normal(size=4000), "x1": x1, "x2": rng.normal(size=4000)})
    with pytest.raises(EstimationError, match="stratum 5 .* control rows"):
        fit(df, bootstrap=NOBOOT)
    with pytest.raises(EstimationError, match="n_strata must be one of"):
        fit(df, n_strata=7)


def test_tied_propensities_collapse_to_exact_strata():
    """With one 3-level confounder the propensity has 3 values: the 5 quantile strata
    collapse to the 3 levels, and stratification is exact adjustment (no residual bias)."""
    rng = np.random.default_rng(16)
    z = rng.choice(3, size=20_000, p=(0.5, 0.3, 0.2)).astype(float)
    d = rng.binomial(1, np.take((0.2, 0.5, 0.8), z.astype(int))).astype(float)
    y = 2 * z ** 2 + d * (1 + z) + rng.normal(size=len(z))
    df = pd.DataFrame({"d": d, "y": y, "z": z})
    design = ModelRoles(treatment="d", outcome="y", covariates=("z",))
    est = get_estimator("stratification")(bootstrap=NOBOOT)
    res = est.fit(PandasMomentEngine(df, n_buckets=100), design).result_
    means = df.groupby(["z", "d"]).y.mean().unstack()
    exact = float(np.sum(df.z.value_counts(normalize=True).sort_index() * (means[1.0] - means[0.0])))
    assert res.estimate == pytest.approx(exact, rel=1e-9)
    assert res.diagnostics["n_strata_used"] == 3 and "3 non-empty strata of 5" in res.diagnostics["warnings"][0]
    truth = 1 + 0.3 * 1 + 0.2 * 2
    assert abs(res.estimate - truth) < 4 * res.se
