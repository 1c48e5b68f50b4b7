"""Positivity and overlap across the back-door estimators (ols, ipw, aipw, stratification):
a covariate level present in one arm only is named before any fit fails on it, every
estimator reports the arms' overlap — checked against statsmodels Logit and a plain numpy
linear discriminant on the same rows — and warns where overlap is poor."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.estimators.propensity import fit_logistic
from causal_core.estimators.weighting import PropensityWarning
from causal_core.moments import UNIT, PandasMomentEngine
from tests.causal_core.counting import CountingEngine
from tests.causal_core.propensity_reference import logit_fit
from tests.causal_core.propensity_sims import simulate

NOBOOT = BootstrapOptions(replicates=0)
BACKDOOR = ("ols", "ipw", "aipw", "stratification")
LOGISTIC = ("ipw", "aipw", "stratification")
COVS = ("x1", "x2")


def fit(name, frame, design, n_buckets=64, **options):
    options.setdefault("bootstrap", NOBOOT)
    return get_estimator(name)(**options).fit(PandasMomentEngine(frame, n_buckets=n_buckets), design).result_


def categorical(n=4000, seed=1, level_arm=None, reference_arm=None):
    """Frame columns as ``encode: categorical`` makes them: age and the one-hot columns of
    cat (levels a (reference), b, c, d). ``level_arm`` puts every cat = d row in that
    arm; ``reference_arm`` every cat = a row."""
    rng = np.random.default_rng(seed)
    cat = rng.choice(list("abcd"), n, p=[0.4, 0.3, 0.2, 0.1])
    age = rng.normal(size=n)
    d = rng.binomial(1, 1 / (1 + np.exp(-0.5 * age))).astype(float)
    if level_arm is not None:
        d[cat == "d"] = level_arm
    if reference_arm is not None:
        d[cat == "a"] = reference_arm
    frame = pd.DataFrame({"__t": d, "__y": age + d + rng.normal(size=n), "__x0": age,
                          **{f"__x{i}": (cat == lv).astype(float) for i, lv in enumerate("bcd", start=1)}})
    labels = (("__t", "promo"), ("__y", "spend"), ("__x0", "age"), ("__x1", "cat=b"), ("__x2", "cat=c"),
              ("__x3", "cat=d"))
    return frame, ModelRoles("__t", "__y", ("__x0", "__x1", "__x2", "__x3"), labels=labels), cat


@pytest.mark.parametrize("name", BACKDOOR)
def test_a_level_with_no_untreated_rows_is_named(name):
    frame, design, cat = categorical(level_arm=1.0)
    n_d = int(np.sum(cat == "d"))
    with pytest.raises(EstimationError, match=rf"positivity fails for treatment 'promo': no untreated rows where "
                                              rf"cat = d \(all {n_d} rows where cat = d are treated\)") as err:
        fit(name, frame, design)
    message = str(err.value)
    assert "ATC" in message and "promo:" not in message and "separation" not in message


@pytest.mark.parametrize("name", BACKDOOR)
def test_a_level_with_no_treated_rows_and_a_missing_reference_level_are_named(name):
    frame, design, cat = categorical(level_arm=0.0)
    with pytest.raises(EstimationError, match=r"no treated rows where cat = d .* are untreated\).*the ATT"):
        fit(name, frame, design)
    frame, design, cat = categorical(reference_arm=1.0)  # cat = a (the reference level) only among the treated
    with pytest.raises(EstimationError, match=rf"no untreated rows where cat is none of b, c, d \(all "
                                              rf"{int(np.sum(cat == 'a'))} rows where cat is none of b, c, d"):
        fit(name, frame, design)


def test_the_positivity_error_comes_from_the_first_pass():
    frame, design, _ = categorical(level_arm=1.0)
    for name in BACKDOOR:
        engine = CountingEngine(frame, n_buckets=16)
        with pytest.raises(EstimationError, match="positivity"):
            get_estimator(name)(bootstrap=NOBOOT).fit(engine, design)
        assert engine.calls == 1  # before any Newton step, recentring or variance pass


def test_the_additive_ols_model_warns_and_extrapolates():
    frame, design, _ = categorical(level_arm=1.0)
    with pytest.warns(PropensityWarning, match="no untreated rows where cat = d") as caught:
        res = fit("ols", frame, design, interactions=False)
    assert "the additive model extrapolates" in res.diagnostics["warnings"][0]
    assert [str(w.message) for w in caught] == res.diagnostics["warnings"]
    assert np.isfinite(res.estimate)


def lda_overlap(frame, covariates, treatment="d"):
    """Plain numpy linear discriminant (Efron 1975): the arms' means, the pooled within-arm
    covariance (divisor n - 2), the log-odds score; and what the overlap reports."""
    x = frame[list(covariates)].to_numpy(float)
    d = frame[treatment].to_numpy() == 1
    m1, m0 = x[d].mean(axis=0), x[~d].mean(axis=0)
    within = ((x[d] - m1).T @ (x[d] - m1) + (x[~d] - m0).T @ (x[~d] - m0)) / (len(x) - 2)
    slope = np.linalg.solve(within, m1 - m0)
    eta = np.log(d.sum() / (~d).sum()) - 0.5 * (m1 + m0) @ slope + x @ slope
    want = expected_overlap(1 / (1 + np.exp(-eta)), d)
    v1, v0 = eta[d].var(ddof=1), eta[~d].var(ddof=1)
    want["standardized_difference"] = (eta[d].mean() - eta[~d].mean()) / np.sqrt((v1 + v0) / 2)
    want["variance_ratio"] = v1 / v0
    return want


def expected_overlap(e, d):
    return {"range": {"treated": [e[d].min(), e[d].max()], "control": [e[~d].min(), e[~d].max()]},
            "arms_overlap": bool(e[d].min() <= e[~d].max() and e[~d].min() <= e[d].max()),
            "share_outside": float(np.mean((e <= 0.05) | (e > 0.95))),
            "share_outside_crump": float(np.mean((e <= 0.1) | (e > 0.9)))}


def assert_overlap(got, want, rel):
    for arm in ("treated", "control"):
        assert got["range"][arm] == pytest.approx(want["range"][arm], rel=rel)
    assert got["arms_overlap"] == want["arms_overlap"]
    for key in ("share_outside", "share_outside_crump"):
        assert got[key] == pytest.approx(want[key], abs=1e-12)
    for key in ("standardized_difference", "variance_ratio"):
        if key in want:
            assert got[key] == pytest.approx(want[key], rel=rel)


def test_complete_separation_makes_ols_warn_and_shows_disjoint_ranges():
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=3000)
    frame = pd.DataFrame({"d": (x1 > 0.3).astype(float), "x1": x1, "x2": rng.normal(size=3000)})
    frame["y"] = frame.x1 + frame.d + rng.normal(size=3000)
    with pytest.warns(PropensityWarning, match="do not overlap in their linear discriminant propensity.*"
                                               "extrapolated from the outcome model") as caught:
        res = fit("ols", frame, ModelRoles("d", "y", ("x1",)))
    overlap = res.diagnostics["overlap"]
    assert overlap["propensity"] == "linear discriminant" and overlap["arms_overlap"] is False
    assert overlap["range"]["treated"][0] > overlap["range"]["control"][1]
    assert_overlap(overlap, lda_overlap(frame, ("x1",)), rel=1e-9)
    assert [str(w.message) for w in caught] == res.diagnostics["warnings"]
    # with a second covariate the discriminant mixes in some noise and the ranges touch;
    # most rows still lie beyond [0.05, 0.95], which warns too
    with pytest.warns(PropensityWarning, match=r"of the rows have a linear discriminant propensity below 0.05 "
                                               r"or above 0.95: the effect is extrapolated"):
        res = fit("ols", frame, ModelRoles("d", "y", COVS))
    assert_overlap(res.diagnostics["overlap"], lda_overlap(frame, COVS), rel=1e-9)
    assert res.diagnostics["overlap"]["share_outside"] > 0.4


@pytest.mark.parametrize("options", [{}, {"cov_type": "nonrobust", "interactions": False}])
def test_ols_overlap_equals_numpy_discriminant(options):
    df = simulate(6000, seed=21, alpha=(-0.3, 1.6, 1.0))
    res = fit("ols", df, ModelRoles("d", "y", COVS), **options)
    want = lda_overlap(df, COVS)
    assert want["share_outside"] > 0.01  # the comparison is not vacuous
    assert_overlap(res.diagnostics["overlap"], want, rel=1e-9)


def test_ols_bucket_sandwich_reports_what_the_gram_gives():
    df = simulate(6000, seed=21)
    res = fit("ols", df, ModelRoles("d", "y", COVS), cov_type="buckets")
    overlap, want = res.diagnostics["overlap"], lda_overlap(df, COVS)
    assert overlap["range"] is None and overlap["share_outside"] is None
    assert overlap["standardized_difference"] == pytest.approx(want["standardized_difference"], rel=1e-9)
    assert overlap["variance_ratio"] == pytest.approx(want["variance_ratio"], rel=1e-9)


def test_ols_overlap_rides_on_the_variance_pass():
    df = simulate(3000, seed=22)
    passes = {}
    for cov_type, clustered in (("HC1", False), ("nonrobust", False), ("buckets", False), ("HC1", True)):
        engine = CountingEngine(df, n_buckets=32)
        get_estimator("ols")(cov_type=cov_type, interactions=cov_type != "nonrobust", bootstrap=NOBOOT).fit(
            engine, ModelRoles("d", "y", COVS, clustered=clustered))
        passes[cov_type, clustered] = engine.calls
    # the Gram pass and the variance's totals pass; no pass after the Gram for buckets;
    # clustered, the meat is summed per unit (not counted here) and the overlap takes a totals pass
    assert passes == {("HC1", False): 2, ("nonrobust", False): 2, ("buckets", False): 1, ("HC1", True): 2}


@pytest.mark.parametrize("name", LOGISTIC)
@pytest.mark.parametrize("target", ["ate", "att"])
def test_logistic_overlap_equals_statsmodels(name, target):
    df = simulate(6000, seed=23, alpha=(-0.3, 1.6, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PropensityWarning)
        res = fit(name, df, ModelRoles("d", "y", COVS, target=target))
    _, _, e = logit_fit(df, COVS)
    want = expected_overlap(e, df.d.to_numpy() == 1)
    assert want["share_outside"] > 0.01
    overlap = res.diagnostics["overlap"]
    assert overlap["propensity"] == "logistic"
    assert_overlap(overlap, want, rel=1e-6)
    assert overlap["trim_suggestion"].startswith("Crump et al. (2009): keeping the rows with 0.1 <= e <= 0.9")


def test_the_logistic_overlap_rides_on_the_last_newton_pass():
    df = simulate(6000, seed=24)
    plain, riding = CountingEngine(df, n_buckets=16), CountingEngine(df, n_buckets=16)
    fit_logistic(plain, "d", COVS)
    fitted = fit_logistic(riding, "d", COVS, overlap=True)
    assert riding.calls == plain.calls  # the last Newton pass was foreseen and carried it
    # convergence that was not foreseen (a loose tolerance): one totals pass at the fit
    loose, loose_riding = CountingEngine(df, n_buckets=16), CountingEngine(df, n_buckets=16)
    fit_logistic(loose, "d", COVS, tol=1e-3)
    unforeseen = fit_logistic(loose_riding, "d", COVS, tol=1e-3, overlap=True)
    assert loose_riding.calls == loose.calls + 1
    eta = np.column_stack([np.ones(len(df)), df.x1, df.x2]) @ unforeseen.coef
    d = df.d.to_numpy() == 1
    assert unforeseen.overlap.eta_low.tolist() == pytest.approx([eta[d].min(), eta[~d].min()], rel=1e-12)
    np.testing.assert_allclose(unforeseen.overlap.eta_high, fitted.overlap.eta_high, rtol=1e-3)


def low_propensity_frame(slope, n=8000, seed=25):
    """x uniform on [-1, 1] and logit e = slope * x: slope 3.4 puts the smallest and
    largest propensities near 0.03 and 0.97, slope 1 keeps them within 0.27 .. 0.73."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, n), rng.binomial(1, 0.5, n).astype(float)
    d = rng.binomial(1, 1 / (1 + np.exp(-slope * x1))).astype(float)
    return pd.DataFrame({"d": d, "y": 1 + x1 + d * (1 + x1) + rng.normal(size=n), "x1": x1, "x2": x2})


@pytest.mark.parametrize("name", ["ipw", "aipw"])
def test_propensities_down_to_003_warn(name):
    df = low_propensity_frame(3.4)
    _, _, e = logit_fit(df, COVS)
    assert 0.01 < e.min() < 0.04  # beyond 0.05, yet within the 0.01 bound
    near = int(np.sum((e < 0.05) | (e > 0.95)))
    with pytest.warns(PropensityWarning, match=rf"^{near} of {len(df)} rows have an estimated propensity below "
                                               r"0.05 or above 0.95") as caught:
        res = fit(name, df, ModelRoles("d", "y", COVS))
    assert res.diagnostics["n_near_bounds"] == near and res.diagnostics["near_bound"] == 0.05
    assert [str(w.message) for w in caught] == res.diagnostics["warnings"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # trimming at Crump et al.'s 0.1 leaves none near the bounds
        trimmed = fit(name, df, ModelRoles("d", "y", COVS), trim=0.1)
    assert trimmed.diagnostics["n_near_bounds"] == 0
    assert trimmed.diagnostics["overlap"] == res.diagnostics["overlap"]  # the fit's overlap, before trimming


@pytest.mark.parametrize("name", BACKDOOR)
def test_well_overlapped_data_do_not_warn(name):
    df = low_propensity_frame(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit(name, df, ModelRoles("d", "y", COVS))
    assert res.diagnostics["warnings"] == []
    overlap = res.diagnostics["overlap"]
    assert overlap["arms_overlap"] and overlap["share_outside"] == 0.0 and overlap["trim_suggestion"] is None


@pytest.mark.parametrize("name", ["ols", "stratification"])
def test_many_rows_beyond_the_bounds_warn_the_unweighted_estimators(name):
    df = low_propensity_frame(6.0, n=4000)
    with pytest.warns(PropensityWarning, match=r"% of the rows have a .* propensity below 0.05 or above 0.95"):
        res = fit(name, df, ModelRoles("d", "y", COVS))
    assert res.diagnostics["overlap"]["share_outside"] > 0.1


def test_clustered_ols_overlap_matches_the_row_level_one():
    df = simulate(3000, seed=26)
    df[UNIT] = np.random.default_rng(4).integers(0, 300, len(df))
    want = lda_overlap(df, COVS)
    for design in (ModelRoles("d", "y", COVS), ModelRoles("d", "y", COVS, clustered=True)):
        assert_overlap(fit("ols", df, design).diagnostics["overlap"], want, rel=1e-9)


@pytest.mark.parametrize("name", ["ipw", "aipw"])
def test_one_row_with_a_huge_weight_warns_unless_trimmed_or_clipped(name):
    """One row in 8,001 beyond [0.05, 0.95] is under the 1% share that warns, but its
    propensity is beyond 0.99 (a weight above 100): that alone warns."""
    df = low_propensity_frame(1.0)
    df = pd.concat([df, pd.DataFrame({"d": [0.0], "y": [1.0], "x1": [8.0], "x2": [0.0]})], ignore_index=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(name, df, ModelRoles("d", "y", COVS))
    extreme = r"the fitted propensity ranges from 0\.\d+ to (0\.99\d*|1): some row's inverse weight reaches"
    assert any(re.match(extreme, str(w.message)) for w in caught if w.category is PropensityWarning)
    assert [str(w.message) for w in caught if w.category is PropensityWarning] == res.diagnostics["warnings"]
    assert res.diagnostics["n_near_bounds"] == 1
    assert max(r[1] for r in res.diagnostics["overlap"]["range"].values()) > 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clipped = fit(name, df, ModelRoles("d", "y", COVS), clip=0.05)
    assert clipped.diagnostics["warnings"] == []
