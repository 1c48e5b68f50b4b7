"""Hajek IPW: against statsmodels WLS and a row-level numpy sandwich, and on known truths."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.estimators.weighting import PropensityWarning
from causal_core.moments import PandasMomentEngine
from tests.causal_core.propensity_reference import hajek, logit_fit
from tests.causal_core.propensity_sims import naive, simulate, truths

COVS = ("x1", "x2")
NOBOOT = BootstrapOptions(replicates=0)


def fit(df, target="ate", n_buckets=200, clustered=False, **options):
    design = ModelRoles(treatment="d", outcome="y", covariates=COVS, target=target, clustered=clustered)
    return get_estimator("ipw")(**options).fit(PandasMomentEngine(df, n_buckets=n_buckets), design)


@pytest.fixture(scope="module")
def data():
    return simulate(20_000, seed=3)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
@pytest.mark.parametrize("option", [{}, {"trim": 0.1}, {"clip": 0.1}])
def test_point_and_sandwich_match_row_level_reference(data, target, option):
    res = fit(data, target, bootstrap=NOBOOT, **option).result_
    est, se, _ = hajek(data, COVS, target, **option)
    assert res.estimate == pytest.approx(est, rel=1e-6)
    assert res.se == pytest.approx(se, rel=1e-6)
    assert res.ci_method == "analytic"


def test_reference_bread_matches_finite_differences(data):
    """Check the independent reference itself: its analytic bread is d(sum psi)/d(theta)."""
    small = data.iloc[:3000]
    _, _, ref = hajek(small, COVS, "ate")
    d, y = small.d.to_numpy(), small.y.to_numpy()
    _, x, _ = logit_fit(small, COVS)

    def psi_sum(theta):
        mu1, mu0, b = theta[0], theta[1], theta[2:]
        e = 1 / (1 + np.exp(-x @ b))
        return np.r_[np.sum(d / e * (y - mu1)), np.sum((1 - d) / (1 - e) * (y - mu0)), (d - e) @ x]

    theta = np.r_[ref["mu1"], ref["mu0"], ref["b"]]
    h = 1e-6
    num = np.column_stack([(psi_sum(theta + h * u) - psi_sum(theta - h * u)) / (2 * h) for u in np.eye(len(theta))])
    np.testing.assert_allclose(num, ref["g"], rtol=1e-5, atol=1e-3)


def test_clustered_sandwich_matches_reference():
    df = simulate(6_000, seed=8)
    df = pd.concat([df, df.assign(y=df.y + np.random.default_rng(1).normal(size=len(df)))], ignore_index=True)
    res = fit(df, "ate", clustered=True, bootstrap=NOBOOT).result_
    est, se, _ = hajek(df, COVS, "ate", units=df["__unit"])
    assert res.estimate == pytest.approx(est, rel=1e-6)
    assert res.se == pytest.approx(se, rel=1e-6)
    _, se_rows, _ = hajek(df, COVS, "ate")
    assert se > 1.2 * se_rows  # duplicated units: ignoring the clustering understates the SE


def test_hajek_equals_wls_on_arm_indicator(data):
    """Weighted least squares of y on (1, d) with the IPW weights is the Hajek contrast."""
    _, _, e = logit_fit(data, COVS)
    w = np.where(data.d == 1, 1 / e, 1 / (1 - e))
    wls = sm.WLS(data.y, sm.add_constant(data.d), weights=w).fit().params["d"]
    assert fit(data, bootstrap=NOBOOT).result_.estimate == pytest.approx(wls, rel=1e-9)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_recovers_each_target_and_naive_does_not(data, target):
    truth = truths()
    res = fit(data, target).result_
    se = res.diagnostics["analytic_se"]
    assert abs(res.estimate - truth[target]) < 4 * se
    assert abs(naive(data) - truth[target]) > 10 * se
    assert res.ci_method == "bootstrap-percentile"
    # the one-step bucket bootstrap agrees with the sandwich
    assert res.se == res.diagnostics["bootstrap_se"] == pytest.approx(se, rel=0.2)
    assert len(res.replicates) == 1000


def test_trimming_targets_the_overlap_population():
    alpha = (-1.5, 1.6, 0.5)  # low x1 (small effects) has propensity below 0.1 and is dropped
    df = simulate(20_000, seed=4, alpha=alpha)
    full, trimmed = truths(alpha), truths(alpha, trim=0.1)
    assert trimmed["ate"] - full["ate"] > 0.3  # the estimands differ
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the extreme propensities are trimmed away
        res = fit(df, "ate", trim=0.1, bootstrap=NOBOOT).result_
    assert abs(res.estimate - trimmed["ate"]) < 4 * res.se
    assert abs(res.estimate - full["ate"]) > 4 * res.se
    n_trim = res.diagnostics["n_trimmed"]
    assert res.n == 20_000 - n_trim["treated"] - n_trim["control"] and res.n < 18_000


def test_diagnostics(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 10 rows of 20,000 near the bounds: counted, not warned about
        res = fit(data, "ate", bootstrap=NOBOOT).result_
    diag = res.diagnostics
    _, _, e = logit_fit(data, COVS)
    d = data.d.to_numpy() == 1
    for arm, m in (("treated", d), ("control", ~d)):
        # the exact range: the arm's smallest and largest fitted propensity
        assert diag["propensity_range"][arm] == pytest.approx([e[m].min(), e[m].max()], rel=1e-9)
        hist = diag["propensity_histogram"][arm]
        assert hist == np.histogram(e[m], bins=diag["propensity_histogram"]["edges"])[0].tolist()
        w = 1 / e[m] if arm == "treated" else 1 / (1 - e[m])
        assert diag["effective_sample_size"][arm] == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-9)
    x1 = data.x1.to_numpy()
    sd = np.sqrt((x1[d].var(ddof=1) + x1[~d].var(ddof=1)) / 2)
    assert diag["smd_before"]["x1"] == pytest.approx((x1[d].mean() - x1[~d].mean()) / sd, rel=1e-9)
    w = np.where(d, 1 / e, 1 / (1 - e))
    after = (np.average(x1[d], weights=w[d]) - np.average(x1[~d], weights=w[~d])) / sd
    assert diag["smd_after"]["x1"] == pytest.approx(after, rel=1e-6, abs=1e-9)
    assert abs(diag["smd_before"]["x1"]) > 0.5 and diag["max_abs_smd_after"] < 0.05
    # propensities reach 0.033: the rows beyond [0.05, 0.95] are counted; 0.05% of the rows
    # is below the 1% that warns (test_positivity holds a case above it)
    near = int(np.sum((e < 0.05) | (e > 0.95)))
    assert near == 10 and diag["n_near_bounds"] == near and diag["near_bound"] == 0.05
    assert diag["warnings"] == []


def test_extreme_propensities_warn_and_clip_counts():
    df = simulate(5_000, seed=2, alpha=(0.0, 3.0, 0.0))
    with pytest.warns(PropensityWarning, match="extreme"):
        res = fit(df, "ate", bootstrap=NOBOOT).result_
    assert res.diagnostics["n_near_bounds"] > 0
    with pytest.warns(PropensityWarning) as caught:
        clipped = fit(df, "ate", clip=0.05, bootstrap=NOBOOT).result_
    # clipping removes the extreme weights, at the price of balance (the estimate is biased)
    assert clipped.diagnostics["n_near_bounds"] == 0
    assert [str(w.message) for w in caught] == clipped.diagnostics["warnings"]
    assert "standardized mean difference" in clipped.diagnostics["warnings"][0]
    _, _, e = logit_fit(df, COVS)
    n = clipped.diagnostics["n_clipped"]
    assert n["treated"] + n["control"] == int(np.sum((e < 0.05) | (e > 0.95)))


def test_options_are_validated(data):
    with pytest.raises(EstimationError, match="either trim or clip"):
        fit(data, trim=0.1, clip=0.1)
    with pytest.raises(EstimationError, match=r"trim must lie in \(0, 0.5\)"):
        fit(data, trim=0.7)
    with pytest.raises(EstimationError, match="does not support the 'frontdoor'"):
        get_estimator("ipw")().fit(PandasMomentEngine(data, n_buckets=10),
                                   ModelRoles(treatment="d", outcome="y", covariates=COVS, strategy="frontdoor"))


def test_bootstrap_is_seeded_and_normal_interval(data):
    a = fit(data, bootstrap=BootstrapOptions(replicates=200, seed=1)).result_
    b = fit(data, bootstrap=BootstrapOptions(replicates=200, seed=1)).result_
    c = fit(data, bootstrap=BootstrapOptions(replicates=200, seed=2)).result_
    assert a.replicates == b.replicates and a.replicates != c.replicates
    n = fit(data, bootstrap=BootstrapOptions(replicates=200, seed=1, interval="normal")).result_
    assert n.ci_method == "bootstrap-normal"
    half = (n.ci_high - n.ci_low) / 2
    assert half == pytest.approx(1.959964 * n.diagnostics["bootstrap_se"], rel=1e-5)


def test_linearized_replicates_match_exact_weighted_refits(data):
    """Each bootstrap replicate (one-step logistic update + first-order moments) is close to
    refitting the propensity and the Hajek means with the replicate's row weights."""
    from causal_core.moments.bootstrap import bucket_weights
    eng = PandasMomentEngine(data, n_buckets=200)
    design = ModelRoles(treatment="d", outcome="y", covariates=COVS, target="ate")
    res = get_estimator("ipw")(bootstrap=BootstrapOptions(replicates=5, seed=9)).fit(eng, design).result_
    w = bucket_weights(5, 200, seed=np.random.SeedSequence(9))[:, eng._buckets]
    _, x, _ = logit_fit(data, COVS)
    d, y = data.d.to_numpy(), data.y.to_numpy()
    for r in range(5):
        b = sm.GLM(d, x, family=sm.families.Binomial(), freq_weights=w[r]).fit(tol=1e-12).params
        e = 1 / (1 + np.exp(-x @ b))
        exact = np.average(y, weights=w[r] * d / e) - np.average(y, weights=w[r] * (1 - d) / (1 - e))
        # the error is second order in the coefficient shift: O(1/n) against an O(1/sqrt(n)) SE
        assert abs(res.replicates[r] - exact) < 0.1 * res.diagnostics["analytic_se"]


def test_row_level_poisson_bootstrap_agrees(data):
    small = data.iloc[:4000]
    row = fit(small, bootstrap=BootstrapOptions(replicates=200, kind="row-poisson", seed=3)).result_
    assert row.diagnostics["bootstrap_kind"] == "row-poisson"
    assert row.diagnostics["bootstrap_se"] == pytest.approx(row.diagnostics["analytic_se"], rel=0.2)


@pytest.mark.parametrize("target", ["ate", "att"])
def test_main_pass_rides_on_the_last_newton_pass(data, target, monkeypatch):
    """When Newton's quadratic convergence foresees the last step, the post-fit totals are
    summed on that Newton pass: one pass fewer, the same numbers to the fit's tolerance. A
    wrong forecast (forced here) only costs the extra sums: the results do not move."""
    from causal_core.estimators import propensity
    from tests.causal_core.counting import CountingEngine

    design = ModelRoles(treatment="d", outcome="y", covariates=COVS, target=target)
    boot = BootstrapOptions(replicates=200, seed=4)
    runs = {}
    for label, margin in (("fused", propensity.FUSE_MARGIN), ("never", float("inf")), ("always", 1.0)):
        monkeypatch.setattr(propensity, "FUSE_MARGIN", margin)
        if label == "always":  # forecast convergence from the second iteration on
            monkeypatch.setattr(propensity, "_next_step_below", lambda steps, limit: len(steps) >= 1)
        engine = CountingEngine(data, n_buckets=200)
        est = get_estimator("ipw")(bootstrap=boot).fit(engine, design)
        runs[label] = (est.result_, est.propensity_, engine.calls)
    fused, never, always = runs["fused"], runs["never"], runs["always"]
    n_iter = never[1].n_iter
    assert never[2] == 1 + n_iter + 1 + 1  # first pass, Newton, main, per-bucket
    assert fused[2] == never[2] - 1 and fused[1].n_iter == n_iter
    assert always[2] == never[2] - 1 and always[1].n_iter == n_iter  # the wasted sums rode along
    for other in (fused, always):
        np.testing.assert_allclose(other[1].coef, never[1].coef, rtol=1e-9, atol=1e-12)
        assert other[0].estimate == pytest.approx(never[0].estimate, rel=1e-9)
        assert other[0].se == pytest.approx(never[0].se, rel=1e-8)
        np.testing.assert_allclose(other[0].replicates, never[0].replicates, rtol=1e-8)
        for arm, ends in never[0].diagnostics["propensity_range"].items():
            assert other[0].diagnostics["propensity_range"][arm] == pytest.approx(ends, rel=1e-9)


NHEFS_LEVELS = {"education": ("2", "3", "4", "5"), "exercise": ("1", "2"), "active": ("1", "2")}
NHEFS_COVARIATES = ("sex", "race", *[f"{v}{s}" for v in ("age", "smokeintensity", "smokeyrs", "wt71") for s in ("", "2")],
                    *[f"{v}{level}" for v, levels in NHEFS_LEVELS.items() for level in levels])
NHEFS_DESIGN = ModelRoles("a", "y", NHEFS_COVARIATES)


def nhefs_frame() -> pd.DataFrame:
    """NHEFS, the 1566 smokers with both weights (Hernan & Robins, *Causal Inference: What
    If*, ch. 12), with the book's propensity covariates: sex, race, age, education,
    smoking intensity and years, exercise, activity and 1971 weight, squares of the
    continuous ones, the categorical ones as indicators (lowest level left out)."""
    from causaldata import nhefs_complete

    d = nhefs_complete.load_pandas().data
    f = pd.DataFrame({"y": d.wt82_71, "a": d.qsmk, "sex": d.sex.astype(float), "race": d.race.astype(float)})
    for v in ("age", "smokeintensity", "smokeyrs", "wt71"):
        f[v], f[f"{v}2"] = d[v], d[v] ** 2
    for v, levels in NHEFS_LEVELS.items():
        for level in levels:
            f[f"{v}{level}"] = (d[v].astype(str) == level).astype(float)
    return f.astype(float)


def test_nhefs_smoking_cessation_reproduces_hernan_robins_program_12_2():
    """Hernan & Robins, *Causal Inference: What If* (2020), sec. 12.1-12.2 and Program
    12.2: quitters gained 4.5 kg and non-quitters 2.0 kg (unadjusted); IP weighting gives
    3.4 kg (code output 3.44). Also statsmodels' Logit then WLS of y on qsmk with weights
    1 / P(A | L), the book's own computation, to 1e-6."""
    f = nhefs_frame()
    covs = NHEFS_COVARIATES
    assert len(f) == 1566 and len(covs) == 18 and set(f.columns) == {"y", "a", *covs}
    means = f.groupby("a").y.mean()
    assert (round(means[1.0], 1), round(means[0.0], 1)) == (4.5, 2.0)
    res = get_estimator("ipw")(bootstrap=NOBOOT).fit(PandasMomentEngine(f, n_buckets=64), NHEFS_DESIGN).result_
    assert round(res.estimate, 1) == 3.4 and round(res.estimate, 2) == 3.44
    X = sm.add_constant(f[list(covs)])
    p = sm.Logit(f.a, X).fit(disp=0).predict(X)
    w = np.where(f.a == 1, 1 / p, 1 / (1 - p))
    wls = sm.WLS(f.y, sm.add_constant(f.a), weights=w).fit()
    assert res.estimate == pytest.approx(wls.params["a"], rel=1e-6)
