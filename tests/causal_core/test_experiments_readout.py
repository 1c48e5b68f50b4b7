"""Quantile metrics from histograms and the metric × arm × segment readout."""

import json

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from causal_core.errors import EstimationError, SpecError
from causal_core.experiments import (
    ArmSums, ExperimentReadout, GaussianPrior, Metric, ValueCounts, arm_estimate, bayesian_compare,
    compare, cuped_arms, quantile_estimate, quantile_lift, srm_test,
)
from causal_core.experiments.sequential import sequential_lift


def test_quantile_interval_is_the_pair_of_order_statistics_at_binomial_ranks():
    rng = np.random.default_rng(1)
    y = np.round(rng.exponential(1.0, 3001), 3)  # ties, as a coarse histogram has
    res = quantile_estimate(ValueCounts.from_units(y), 0.9)
    s = np.sort(y)
    lo, hi = stats.binom.ppf(0.025, 3001, 0.9), stats.binom.ppf(0.975, 3001, 0.9) + 1
    assert res.ranks == (int(lo), int(hi))
    assert (res.ci_low, res.ci_high) == (s[int(lo) - 1], s[int(hi) - 1])
    assert res.estimate == np.quantile(y, 0.9, method="inverted_cdf")
    merged = ValueCounts.from_units(y[:1000]) + ValueCounts.from_units(y[1000:])
    assert quantile_estimate(merged, 0.9) == res


def test_quantile_lift_interval_covers_the_true_difference_of_medians():
    """Exponential(1) vs Exponential(1.2): medians log 2 and 1.2 log 2. 1,000 runs of 400
    units per arm; the 95 % interval's coverage lies within 3 simulation s.e. of 0.95."""
    rng = np.random.default_rng(2)
    truth = 0.2 * np.log(2)
    cover = np.mean([
        (r := quantile_lift(ValueCounts.from_units(rng.exponential(1.0, 400)),
                            ValueCounts.from_units(rng.exponential(1.2, 400)), 0.5)).ci_low <= truth <= r.ci_high
        for _ in range(1000)])
    assert abs(cover - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 1000)


def test_quantile_se_differs_from_growthbooks_by_sqrt_n_minus_one_over_n():
    """gbstats' QuantileStatistic turns the same interval into a per-unit variance
    ``(n-1)(w/2z)²`` (with n* = n) and so a standard error sqrt((n-1)/n) times ours."""
    gb = pytest.importorskip("gbstats.models.statistics")
    y = np.random.default_rng(3).lognormal(size=500)
    q = quantile_estimate(ValueCounts.from_units(y), 0.5)
    g = gb.QuantileStatistic(n=500, n_star=500, nu=0.5, quantile_hat=q.estimate,
                             quantile_lower=q.ci_low, quantile_upper=q.ci_high)
    assert np.sqrt(g.variance / 500) == pytest.approx(q.se * np.sqrt(499 / 500), rel=1e-12)


def grid(seed=4):
    rng = np.random.default_rng(seed)
    sums, hists = {}, {}
    for seg, n in (("mobile", 900), ("desktop", 1100)):
        for arm, lift, share in (("control", 0.0, 1.0), ("b", 0.1, 1.0), ("c", 0.0, 1.25)):
            m = int(n * share)
            z = rng.gamma(2.0, 1.0, m)
            x = rng.poisson(3, m) + 1.0
            y = 0.5 * z + rng.gamma(2.0, 1.0, m) * (1 + lift)
            sums[seg, arm] = ArmSums.from_units({"y": y, "x": x, "z": z})
            hists[seg, arm, "p50"] = ValueCounts.from_units(np.round(y, 2))
    return sums, hists


METRICS = (Metric("revenue", "y"), Metric("per_session", "y", "x", kind="ratio"),
           Metric("revenue_cuped", "y", covariate="z"), Metric("p50", "y", kind="quantile", level=0.5))


def test_readout_rows_equal_the_building_blocks_and_holm_is_per_segment():
    sums, hists = grid()
    r = ExperimentReadout(metrics=METRICS, control="control", expected_split={"control": 1, "b": 1, "c": 1},
                          ).fit(sums, hists).result_
    assert len(r.rows) == 2 * 4 * 2
    row = r.row("per_session", "b", "mobile")
    ref = compare(arm_estimate(sums["mobile", "control"], METRICS[1]), arm_estimate(sums["mobile", "b"], METRICS[1]),
                  relative=True)
    assert (row.estimate, row.ci_low, row.p_value) == (ref.estimate, ref.ci_low, ref.p_value)
    cup = cuped_arms(sums["desktop", "control"], sums["desktop", "b"], METRICS[2])
    row = r.row("revenue_cuped", "b", "desktop")
    assert row.theta == cup.theta and row.method == "cuped" and 0 < row.variance_reduction < 1
    ql = quantile_lift(hists["mobile", "control", "p50"], hists["mobile", "c", "p50"], 0.5, relative=True)
    assert r.row("p50", "c", "mobile").estimate == ql.estimate
    mobile = [x for x in r.rows if x.segment == "mobile"]
    _, adj, _, _ = multipletests([x.p_value for x in mobile], method="holm")
    np.testing.assert_allclose([x.p_adjusted for x in mobile], adj, rtol=1e-14)
    srm = dict(r.srm)["mobile"]
    assert srm.mismatch and srm.p_value == srm_test([900, 900, 1125], [1, 1, 1]).p_value
    doc = json.loads(json.dumps(r.to_dict()))
    assert doc["srm"]["desktop"]["mismatch"] is True and len(doc["rows"]) == 16
    assert r.summary().shape[0] == 16


def test_sequential_and_bayesian_readouts_use_their_engines():
    sums, _ = grid(5)
    metrics = METRICS[:3]
    seq = ExperimentReadout(metrics=metrics, control="control", sequential_planned_n=4000).fit(sums).result_
    row = seq.row("revenue", "b", "mobile")
    plain = compare(arm_estimate(sums["mobile", "control"], metrics[0]), arm_estimate(sums["mobile", "b"], metrics[0]),
                    relative=True)
    ref = sequential_lift(plain.estimate, plain.se, 1800, planned_n=4000)
    assert (row.ci_low, row.ci_high, row.p_value) == (ref.ci_low, ref.ci_high, ref.p_value)
    prior = GaussianPrior(mean=0.0, variance=0.05 ** 2, proper=True)
    bay = ExperimentReadout(metrics=metrics, control="control", engine="bayesian", prior=prior).fit(sums).result_
    row = bay.row("revenue", "b", "desktop")
    ref = bayesian_compare(arm_estimate(sums["desktop", "control"], metrics[0]),
                           arm_estimate(sums["desktop", "b"], metrics[0]), prior=prior)
    assert (row.chance_to_win, row.risk_treatment, row.estimate) == (ref.chance_to_win, ref.risk_treatment,
                                                                    ref.expected)
    assert row.to_dict()["p_value"] is None


def test_bad_readout_settings_name_the_setting():
    sums, _ = grid()
    with pytest.raises(EstimationError, match="engine 'bayes'"):
        ExperimentReadout(metrics=METRICS[:1], control="control", engine="bayes").fit(sums)
    with pytest.raises(EstimationError, match="no control arm 'ctrl'"):
        ExperimentReadout(metrics=METRICS[:1], control="ctrl").fit(sums)
    with pytest.raises(EstimationError, match="needs histograms"):
        ExperimentReadout(metrics=METRICS[3:], control="control").fit(sums)
    with pytest.raises(SpecError, match="level"):
        Metric("p", "y", kind="quantile")
