"""Regression adjustment (``ols``) on the pandas engine: statsmodels and plain numpy as
independent implementations, simulated data with known effects, and published values."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.datasets import confounded_binary
from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.estimators.inference import bootstrap_replicates
from causal_core.estimators.ols import OLS
from causal_core.moments import UNIT, PandasMomentEngine

NO_BOOT = BootstrapOptions(replicates=0)
RTOL = 1e-6


@pytest.fixture(scope="module")
def sim():
    return confounded_binary(3000, np.random.default_rng(7))


@pytest.fixture(scope="module")
def clustered(sim):
    frame = sim.frame.copy()
    frame[UNIT] = np.random.default_rng(3).integers(0, 150, len(frame))
    return frame


def fit(frame, design, **options):
    options.setdefault("bootstrap", NO_BOOT)
    return get_estimator("ols")(**options).fit(PandasMomentEngine(frame, n_buckets=64), design).result_


def reference_effect(frame, target, groups=None):
    """Plain numpy: per-arm regressions via interactions, standardised over the target
    population, with the stacked (regression + covariate mean) influence functions."""
    d, y = frame.d.to_numpy(), frame.y.to_numpy()
    x = frame[["x1", "x2"]].to_numpy()
    n, p = x.shape
    X = np.column_stack([np.ones(n), d, x, d[:, None] * x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    e = y - X @ beta
    w = {"ate": np.ones(n), "att": d, "atc": 1 - d}[target]
    mu = (w[:, None] * x).sum(0) / w.sum()
    c = np.r_[0, 1, np.zeros(p), mu]
    scores = np.column_stack([X * e[:, None], w[:, None] * (x - mu)])
    lin = np.r_[c @ np.linalg.inv(X.T @ X), beta[2 + p:] / w.sum()]
    q = X.shape[1]
    if groups is None:
        factor = n / (n - q)
    else:
        scores = pd.DataFrame(scores).groupby(groups).sum().to_numpy()
        g = len(scores)
        factor = g / (g - 1) * (n - 1) / (n - q)
    return beta[1] + beta[2 + p:] @ mu, np.sqrt(factor * lin @ scores.T @ scores @ lin)


def test_additive_model_matches_statsmodels_hc1(sim):
    f = sim.frame
    res = fit(f, sim.make_design(), interactions=False)
    ref = sm.OLS(f.y, sm.add_constant(f[["d", "x1", "x2"]])).fit(cov_type="HC1")
    assert res.estimate == pytest.approx(ref.params["d"], rel=RTOL)
    assert res.se == pytest.approx(ref.bse["d"], rel=RTOL)
    assert res.diagnostics["r2"] == pytest.approx(ref.rsquared, rel=RTOL)
    assert res.ci_method == "analytic" and res.n == len(f)


def test_nonrobust_matches_statsmodels(sim):
    f = sim.frame
    res = fit(f, sim.make_design(), interactions=False, cov_type="nonrobust")
    ref = sm.OLS(f.y, sm.add_constant(f[["d", "x1", "x2"]])).fit()
    assert res.se == pytest.approx(ref.bse["d"], rel=RTOL)


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_standardised_effect_matches_centred_statsmodels(sim, target):
    """Centring the covariates at the target means makes the treatment coefficient the
    standardised effect; statsmodels' HC1 SE of it is our SE with the means held fixed."""
    f = sim.frame
    res = fit(f, sim.make_design(target))
    w = {"ate": np.ones(len(f)), "att": f.d, "atc": 1 - f.d}[target]
    xc = f[["x1", "x2"]] - np.average(f[["x1", "x2"]], axis=0, weights=w)
    exog = sm.add_constant(pd.concat([f.d, xc, xc.mul(f.d, axis=0).add_prefix("d:")], axis=1))
    ref = sm.OLS(f.y, exog).fit(cov_type="HC1")
    assert res.estimate == pytest.approx(ref.params["d"], rel=RTOL)
    assert res.diagnostics["se_fixed_covariates"] == pytest.approx(ref.bse["d"], rel=RTOL)
    assert res.diagnostics["interactions"] is True


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_delta_method_se_matches_numpy_influence_functions(sim, target):
    est, se = reference_effect(sim.frame, target)
    res = fit(sim.frame, sim.make_design(target))
    assert res.estimate == pytest.approx(est, rel=RTOL)
    assert res.se == pytest.approx(se, rel=RTOL)
    assert res.se > res.diagnostics["se_fixed_covariates"]  # the means' sampling error adds


def test_cluster_robust_matches_statsmodels_and_numpy(sim, clustered):
    groups = clustered[UNIT].to_numpy()
    design = sim.make_design(clustered=True)
    res = fit(clustered, design, interactions=False)
    ref = sm.OLS(clustered.y, sm.add_constant(clustered[["d", "x1", "x2"]])).fit(
        cov_type="cluster", cov_kwds={"groups": groups})
    assert res.estimate == pytest.approx(ref.params["d"], rel=RTOL)
    assert res.se == pytest.approx(ref.bse["d"], rel=RTOL)
    assert res.diagnostics["n_clusters"] == 150
    est, se = reference_effect(clustered, "att", groups=groups)
    res = fit(clustered, sim.make_design("att", clustered=True))
    assert (res.estimate, res.se) == (pytest.approx(est, rel=RTOL), pytest.approx(se, rel=RTOL))


def test_continuous_treatment_is_a_slope(sim):
    f = sim.frame.assign(dose=sim.frame.x2 * 2 + np.random.default_rng(1).normal(size=len(sim.frame)))
    res = fit(f, ModelRoles("dose", "y", ("x1",)))
    ref = sm.OLS(f.y, sm.add_constant(f[["dose", "x1"]])).fit(cov_type="HC1")
    assert res.estimate == pytest.approx(ref.params["dose"], rel=RTOL)
    assert res.se == pytest.approx(ref.bse["dose"], rel=RTOL)
    assert res.diagnostics["interactions"] is False and "dose" in res.contrast
    with pytest.raises(EstimationError, match="binary"):
        fit(f, ModelRoles("dose", "y", ("x1",), target="att"))


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_recovers_each_target_where_the_naive_difference_fails(target):
    """Heterogeneous effect x confounder: ATE = 2, ATT ~ 2.51, ATC ~ 1.49."""
    s = confounded_binary(20_000, np.random.default_rng(11))
    res = fit(s.frame, s.make_design(target))
    truth = s.truth[target]
    assert abs(res.estimate - truth) < 4 * res.se
    f = s.frame
    naive = f.y[f.d == 1].mean() - f.y[f.d == 0].mean()
    assert abs(naive - truth) > 10 * res.se
    assert s.truth["att"] - s.truth["ate"] > 10 * res.se  # the targets really differ


def test_longley_reproduces_nist_certified_values():
    """NIST StRD "Longley" (Longley 1967, JASA 62:819), certified values at
    https://www.itl.nist.gov/div898/strd/lls/data/Longley.shtml: each coefficient and
    standard deviation, and R^2 = 0.995479004577296. Data ship with statsmodels. The
    regression is ill-conditioned (cond(X'X) ~ 1e19); the re-centred second pass gets
    11+ of the 15 printed digits (LRE >= 11), where raw normal equations get 7."""
    from statsmodels.datasets import longley

    data = longley.load_pandas()
    frame = pd.concat([data.endog, data.exog], axis=1)
    certified = {  # coefficient, standard deviation
        "GNPDEFL": (15.0618722713733, 84.9149257747669), "GNP": (-0.358191792925910e-01, 0.334910077722432e-01),
        "UNEMP": (-2.02022980381683, 0.488399681651699), "ARMED": (-1.03322686717359, 0.214274163161675),
        "POP": (-0.511041056535807e-01, 0.226073200069370), "YEAR": (1829.15146461355, 455.478499142212),
    }
    for name, (coef, sd) in certified.items():
        others = tuple(c for c in certified if c != name)
        res = fit(frame, ModelRoles(name, "TOTEMP", others), cov_type="nonrobust")
        assert res.estimate == pytest.approx(coef, rel=1e-11)
        assert res.se == pytest.approx(sd, rel=1e-11)
        assert res.diagnostics["r2"] == pytest.approx(0.995479004577296, rel=1e-13)
        assert res.diagnostics["recentred"] is True


def test_grunfeld_reproduces_stata_cluster_robust_output():
    """Grunfeld (1958) investment data, the textbook panel of Greene's *Econometric
    Analysis*: Stata's ``regress invest mvalue kstock, vce(cluster company)`` prints
    b = .11556215606596, se = .01589433647768 for mvalue and b = .23067848754982,
    se = .08496711097464 for kstock (N = 200, 10 clusters; statsmodels' reference file
    results_grunfeld_ols_robust_cluster.py). The copy shipped with statsmodels differs
    from Stata's in the last digits: statsmodels' own least squares agrees only to 1e-8,
    so that is the tolerance."""
    from statsmodels.datasets import grunfeld

    g = grunfeld.load_pandas().data.iloc[:200]  # Stata's example lacks the 11th firm
    frame = pd.DataFrame({"invest": g.invest, "mvalue": g.value, "kstock": g.capital, UNIT: g.firm})
    for name, other, coef, se in (("mvalue", "kstock", .11556215606596, .01589433647768),
                                  ("kstock", "mvalue", .23067848754982, .08496711097464)):
        res = fit(frame, ModelRoles(name, "invest", (other,), clustered=True))
        assert res.estimate == pytest.approx(coef, rel=2e-8)
        assert res.se == pytest.approx(se, rel=2e-8)
        assert res.diagnostics["n_clusters"] == 10
    assert res.diagnostics["r2"] == pytest.approx(.8124080178314147, rel=2e-8)


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(x2=3.0), r"constant columns.*'x2' \(= 3\)"),
    (lambda f: f.assign(x2=2 * f.x1 - 1), r"collinear columns: 'x1', 'x2'"),
    (lambda f: f.assign(d=1.0), r"treatment 'd' is constant"),
    (lambda f: f.assign(x2=np.where(f.index == 5, np.nan, f.x2)), r"NaN or infinite.*'x2'"),
])
def test_bad_columns_are_named(sim, change, message):
    with pytest.raises(EstimationError, match=message):
        fit(change(sim.frame), sim.make_design(), interactions=False)


def test_treatment_collinear_with_covariates_is_named(sim):
    f = sim.frame.assign(x2=sim.frame.d * 2 + 1)
    with pytest.raises(EstimationError, match=r"collinear columns: treatment 'd', 'x2'"):
        fit(f, sim.make_design(), interactions=False)


def test_interaction_failures_name_user_terms_not_interaction_columns(sim):
    """A covariate constant in one arm makes the interacted model singular: the error says
    so in the user's terms, never with an internal treatment:covariate column."""
    design = ModelRoles("d", "y", ("x1", "x2"), labels=(("x2", "age"), ("d", "promo")))
    for value in (1.0, 0.0):  # age == value among the treated, spread among the untreated
        f = sim.frame.assign(x2=np.where(sim.frame.d == 1, value, sim.frame.x2))
        with pytest.raises(EstimationError, match=r"ols: positivity fails: constant among the treated rows but "
                                                  rf"varying among the untreated rows: 'age' \(= {value:g}\)") as err:
            fit(f, design)
        assert "promo:" not in str(err.value)
    # collinear within one arm only: named with the arm, in user terms
    f = sim.frame.assign(x2=np.where(sim.frame.d == 1, 2 * sim.frame.x1 + 1, sim.frame.x2))
    with pytest.raises(EstimationError, match=r"ols: among the treated rows, collinear columns: 'x1', 'age'") as err:
        fit(f, design)
    assert "promo:" not in str(err.value)
    # the additive model fits one slope for both arms: no failure
    assert np.isfinite(fit(f, design, interactions=False).estimate)


def test_bootstrap_percentile_interval_and_seeds(sim):
    design = sim.make_design("att")
    a = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=400, seed=5))
    b = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=400, seed=5))
    c = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=400, seed=6))
    assert a.ci_method == "bootstrap-percentile" and len(a.replicates) == 400
    assert a.replicates == b.replicates and a.replicates != c.replicates
    assert a.ci_low < a.estimate < a.ci_high
    assert a.se == pytest.approx(a.diagnostics["analytic_se"], rel=0.2)
    assert a.se == a.diagnostics["bootstrap_se"]
    analytic = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=100), ci_method="analytic")
    assert analytic.se == analytic.diagnostics["analytic_se"] and analytic.ci_method == "analytic"
    normal = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=100, interval="normal"))
    assert normal.ci_method == "bootstrap-normal"
    assert normal.ci_high - normal.estimate == pytest.approx(normal.estimate - normal.ci_low)


def test_row_level_poisson_bootstrap_agrees_with_bucket_bootstrap(sim):
    design = sim.make_design()
    bucket = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=300, seed=1))
    rows = fit(sim.frame, design, bootstrap=BootstrapOptions(replicates=300, seed=1, kind="row-poisson"))
    assert rows.diagnostics["bootstrap_kind"] == "row-poisson"
    assert rows.se == pytest.approx(bucket.se, rel=0.2)
    assert rows.se == pytest.approx(rows.diagnostics["analytic_se"], rel=0.2)


def test_thousand_bucket_replicates_are_the_statistic_of_reweighted_bucket_sums(sim):
    """No pass per replicate: each of the 1000 replicates is the effect statistic of the one
    pass's bucket sums reweighted by that replicate's row of bucket weights (the batched
    solve equals a one-replicate solve), and their spread is the analytic SE's."""
    engine = PandasMomentEngine(sim.frame, n_buckets=1000)
    est = OLS(bootstrap=BootstrapOptions(replicates=1000)).fit(engine, sim.make_design())
    from causal_core.estimators.ols_gram import Layout, effect_statistic
    from causal_core.moments.bootstrap import bucket_weights

    layout = Layout(sim.make_design(), interactions=True)
    moments = engine.bucket_sums(layout.exprs())
    reps = bootstrap_replicates(engine, layout.exprs(), moments, effect_statistic(layout), BootstrapOptions(1000))
    assert np.isfinite(reps).all() and len(est.result_.replicates) == 1000
    weights = bucket_weights(1000, 1000, seed=np.random.SeedSequence(BootstrapOptions(1000).seed))
    for r in (0, 1, 499, 999):
        single = effect_statistic(layout)((weights[r] @ moments)[None, :])[0]
        assert reps[r] == pytest.approx(single, rel=1e-12)
    assert np.std(reps, ddof=1) == pytest.approx(est.result_.diagnostics["analytic_se"], rel=0.15)


def test_estimator_contract():
    boot = BootstrapOptions(replicates=7)
    est = get_estimator("ols")(interactions=False, bootstrap=boot, level=0.9)
    assert isinstance(est, OLS) and est.interactions is False and est.bootstrap is boot and est.level == 0.9
    assert not hasattr(est, "result_")
    with pytest.raises(TypeError):
        OLS(False)  # keyword-only
    with pytest.raises(EstimationError, match="cov_type"):
        OLS(cov_type="HC7").fit(PandasMomentEngine(pd.DataFrame({"d": [0.0, 1], "y": [1.0, 2]})), ModelRoles("d", "y"))
    with pytest.raises(EstimationError, match="strategy"):
        OLS().fit(None, ModelRoles("d", "y", strategy="iv"))


def test_level_sets_the_interval(sim):
    res = fit(sim.frame, sim.make_design(), level=0.9)
    assert res.level == 0.9
    assert res.ci_high - res.estimate == pytest.approx(1.6448536 * res.se, rel=1e-6)


def test_constant_column_is_named_with_its_value_when_others_are_recentred(sim):
    f = sim.frame.assign(x1=sim.frame.x1 + 1e4, x2=7.0)  # x1 forces a recentred pass
    with pytest.raises(EstimationError, match=r"constant columns.*'x2' \(= 7\)"):
        fit(f, sim.make_design())


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_bucket_sandwich_is_the_cluster_sandwich_with_buckets_as_clusters(sim, target):
    """cov_type="buckets" takes the meat from pass 1's per-bucket sums (no second pass):
    it must equal the cluster-robust sandwich with the bucket as the cluster — numpy's
    stacked influence functions for the effect, statsmodels for the additive coefficient."""
    engine = PandasMomentEngine(sim.frame, n_buckets=64)
    buckets = engine._buckets
    res = get_estimator("ols")(cov_type="buckets", bootstrap=NO_BOOT).fit(engine, sim.make_design(target)).result_
    est, se = reference_effect(sim.frame, target, groups=buckets)
    assert res.estimate == pytest.approx(est, rel=RTOL)
    assert res.se == pytest.approx(se, rel=RTOL)
    assert res.diagnostics["cov_type"] == "buckets"
    # ... and close to the row-level HC1 SE it estimates (64 buckets: within ~25%)
    assert res.se == pytest.approx(fit(sim.frame, sim.make_design(target)).se, rel=0.25)
    f = sim.frame
    additive = get_estimator("ols")(cov_type="buckets", interactions=False, bootstrap=NO_BOOT).fit(
        PandasMomentEngine(f, n_buckets=64), sim.make_design()).result_
    ref = sm.OLS(f.y, sm.add_constant(f[["d", "x1", "x2"]])).fit(cov_type="cluster", cov_kwds={"groups": buckets})
    assert additive.se == pytest.approx(ref.bse["d"], rel=RTOL)


def test_bucket_sandwich_needs_one_pass(sim):
    from tests.causal_core.counting import CountingEngine

    for cov_type, passes in (("buckets", 1), ("HC1", 2)):
        engine = CountingEngine(sim.frame, n_buckets=64)
        get_estimator("ols")(cov_type=cov_type).fit(engine, sim.make_design())
        assert engine.calls == passes
