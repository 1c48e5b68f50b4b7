"""The marginal-sensitivity bounds of weighting estimates: against the sharp bounds computed
by sorting the rows (Zhao, Small & Bhattacharya 2019, Proposition 2), at Λ = 1 against the
Hajek estimate, and on simulated data with a hidden confounder of known strength."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments.pandas_engine import PandasMomentEngine
from tests.causal_core.msm_reference import exact_bounds
from causal_core.refuters.registry import FittedEstimate, get_refuter

K = 100


def simulate(rng, n=4000, effect=0.5, hidden=0.0, binary_outcome=False):
    """x -> d, x -> y, d -> y and a hidden binary u: logit P(d | x, u) = 0.6 x0 - 0.4 x1 + hidden·(u - ½),
    so the odds of treatment given (x, u) and given x differ by at most exp(hidden / 2)·… ≤ exp(hidden)."""
    x = rng.normal(size=(n, 2))
    u = (rng.random(n) < 0.5).astype(float)
    score = 0.6 * x[:, 0] - 0.4 * x[:, 1] + hidden * (u - 0.5)
    d = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(float)
    mean = effect * d + x @ np.array([1.0, 0.5]) + 1.5 * hidden * (u - 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-mean))).astype(float) if binary_outcome else mean + rng.normal(size=n)
    frame = pd.DataFrame({"d": d, "y": y, "x0": x[:, 0], "x1": x[:, 1], "u": u})
    frame["__bucket"] = rng.integers(0, K, n)
    return frame


def fitted(frame, estimator="ipw", target="ate", seed=0, **options):
    engine = PandasMomentEngine(frame, n_buckets=K)
    design = ModelRoles("d", "y", ("x0", "x1"), target=target)
    est = get_estimator(estimator)(bootstrap=BootstrapOptions(replicates=0), **options)
    est.fit(engine, design)
    return FittedEstimate(estimator, "y", "all", est.result_.estimate, est, None, np.random.SeedSequence(seed),
                          engine, design)


def refute(fit, **options):
    return get_refuter("marginal_sensitivity")(**options).refute_fit(fit)


def propensity(fit, frame):
    coef = fit.fitted.propensity_.coef
    eta = coef[0] + frame["x0"].to_numpy() * coef[1] + frame["x1"].to_numpy() * coef[2]
    return 1 / (1 + np.exp(-eta))


@pytest.mark.parametrize("target", ["ate", "att", "atc"])
def test_binned_bounds_enclose_the_sharp_bounds_and_equal_them_for_a_binary_outcome(target):
    for binary in (False, True):
        frame = simulate(np.random.default_rng(1), binary_outcome=binary)
        fit = fitted(frame, target=target)
        out = refute(fit, lambdas=[1.0, 1.5, 2.0], bins=400)
        e = propensity(fit, frame)
        for row in out.details["bounds"]:
            lo, hi = exact_bounds(frame["y"].to_numpy(), frame["d"].to_numpy(), e, row["lambda"], target)
            if binary:
                assert (row["lower"], row["upper"]) == pytest.approx((lo, hi), abs=1e-12)
            else:
                assert row["lower"] <= lo + 1e-12 and row["upper"] >= hi - 1e-12
                assert row["inner_lower"] >= lo - 1e-12 and row["inner_upper"] <= hi + 1e-12
                width = out.details["bin_width"]
                assert row["lower"] > lo - width and row["upper"] < hi + width
        # at Λ = 1 the weights are the fitted ones: the bounds collapse to the Hajek estimate
        assert out.details["hajek_at_1"] == pytest.approx(fit.estimate, abs=1e-10)


def test_aipw_is_bounded_through_its_own_propensity_fit():
    frame = simulate(np.random.default_rng(2))
    fit = fitted(frame, "aipw")
    out = refute(fit, lambdas=[1.3], bins=400)
    lo, hi = exact_bounds(frame["y"].to_numpy(), frame["d"].to_numpy(), propensity(fit, frame), 1.3)
    (row,) = out.details["bounds"]
    assert row["lower"] <= lo and row["upper"] >= hi and row["upper"] - row["lower"] < hi - lo + 2 * out.details["bin_width"]


def test_trimming_bounds_the_kept_rows_only():
    frame = simulate(np.random.default_rng(3))
    fit = fitted(frame, trim=0.1)
    e = propensity(fit, frame)
    keep = (e >= 0.1) & (e <= 0.9)
    out = refute(fit, lambdas=[1.5], bins=400)
    lo, hi = exact_bounds(frame["y"].to_numpy()[keep], frame["d"].to_numpy()[keep], e[keep], 1.5)
    (row,) = out.details["bounds"]
    assert row["inner_lower"] >= lo - 1e-12 and row["lower"] <= lo + 1e-12 and row["upper"] >= hi - 1e-12


def test_a_hidden_confounder_within_lambda_is_caught_and_clean_data_pass():
    """With no effect, a hidden u whose odds ratio is at most Λ0 = e² fakes an effect that the
    IPW interval calls significant; the bounds at Λ0 contain the truth (0) and the refuter fails.
    Without u and with a real effect, the estimate survives a plausible Λ of 1.25."""
    lam0 = float(np.exp(2.0))
    confounded = simulate(np.random.default_rng(4), n=20000, effect=0.0, hidden=2.0)
    fit = fitted(confounded)
    assert fit.estimate > 0.3  # the hidden confounder's bias
    out = refute(fit, lambdas=[1.0, lam0], plausible=lam0)
    assert out.passed is False and out.details["bounds"][-1]["lower"] < 0 < out.details["bounds"][-1]["upper"]
    assert 1.0 < out.details["breakdown_lambda_ci"] <= out.details["breakdown_lambda"] < lam0

    clean = fitted(simulate(np.random.default_rng(5), n=20000, effect=0.5))
    ok = refute(clean, plausible=1.25)
    assert ok.passed is True and ok.details["breakdown_lambda_ci"] > 1.25
    assert ok.new_effect == pytest.approx([r for r in ok.details["bounds"] if r["lambda"] == 1.25][0]["lower"])


def test_bad_options_say_what_is_wrong():
    fit = fitted(simulate(np.random.default_rng(6), n=500))
    with pytest.raises(EstimationError, match="Λ must be >= 1"):
        refute(fit, lambdas=[0.5])
    with pytest.raises(EstimationError, match="bins >= 2"):
        refute(fit, bins=1)
