"""whybatch's experiment statistics against GrowthBook's engine (gbstats 0.8), fed the
same simulated units: frequentist lifts (mean, ratio, CUPED), sequential intervals,
Bayesian chance to win / risk / credible interval, SRM. They agree to 1e-9 relative.

gbstats 0.8 pins numpy<2 and pandas<2, which its statistics modules do not need, so it
cannot sit in the project's dev extra: ``make install`` installs it with ``--no-deps``.
"""

import numpy as np
import pytest

from causal_core.experiments import ArmSums, Metric, arm_estimate, compare, cuped_arms, srm_test
from causal_core.experiments.bayesian import GaussianPrior, bayesian_compare
from causal_core.experiments.sequential import sequential_lift
from tests.causal_core.experiments_data import two_arms

import gbstats.bayesian.tests as gb_bayes  # noqa: E402
import gbstats.frequentist.tests as gb_freq  # noqa: E402
import gbstats.models.statistics as gb_stats  # noqa: E402
import gbstats.utils as gb_utils  # noqa: E402

REL = 1e-9


@pytest.fixture(scope="module")
def data():
    return two_arms()


def gb_mean(d, v="y"):
    return gb_stats.SampleMeanStatistic(n=len(d[v]), sum=float(d[v].sum()),
                                        sum_squares=float((d[v] ** 2).sum()))


def ours(d, metric):
    return arm_estimate(ArmSums.from_units(d), metric)


@pytest.mark.parametrize("difference", ["absolute", "relative"])
def test_frequentist_lift_ci_p_equal_gbstats(data, difference):
    a, b = data
    m = Metric("y", "y")
    gb = gb_freq.TwoSidedTTest(gb_mean(a), gb_mean(b),
                               gb_freq.FrequentistConfig(difference_type=difference)).compute_result()
    res = compare(ours(a, m), ours(b, m), relative=difference == "relative")
    assert res.estimate == pytest.approx(gb.expected, rel=REL)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(gb.ci), rel=REL)
    assert res.p_value == pytest.approx(gb.p_value, rel=1e-7)
    assert res.se == pytest.approx(gb.uplift.stddev, rel=REL)


def test_ratio_metric_equals_gbstats_ratio_statistic(data):
    a, b = data
    m = Metric("r", "y", "x", kind="ratio")

    def gb_ratio(d):
        return gb_stats.RatioStatistic(n=len(d["y"]), m_statistic=gb_mean(d, "y"),
                                       d_statistic=gb_mean(d, "x"),
                                       m_d_sum_of_products=float((d["y"] * d["x"]).sum()))
    gb = gb_freq.TwoSidedTTest(gb_ratio(a), gb_ratio(b)).compute_result()
    res = compare(ours(a, m), ours(b, m), relative=True)
    assert (res.estimate, res.ci_low, res.ci_high) == pytest.approx((gb.expected, *gb.ci), rel=REL)
    assert res.p_value == pytest.approx(gb.p_value, rel=1e-7)


def test_cuped_equals_gbstats_regression_adjusted_statistic(data):
    a, b = data
    m = Metric("y", "y", covariate="z")

    def gb_ra(d):
        return gb_stats.RegressionAdjustedStatistic(
            n=len(d["y"]), post_statistic=gb_mean(d, "y"), pre_statistic=gb_mean(d, "z"),
            post_pre_sum_of_products=float((d["y"] * d["z"]).sum()), theta=0)
    res = cuped_arms(ArmSums.from_units(a), ArmSums.from_units(b), m)
    for difference in ("absolute", "relative"):
        test = gb_freq.TwoSidedTTest(gb_ra(a), gb_ra(b), gb_freq.FrequentistConfig(difference_type=difference))
        gb = test.compute_result()
        ours_ = compare(res.control, res.treatment, relative=difference == "relative")
        assert res.theta == pytest.approx(test.stat_a.theta, rel=REL)
        assert (ours_.estimate, ours_.ci_low, ours_.ci_high) == pytest.approx((gb.expected, *gb.ci), rel=REL)
        assert ours_.p_value == pytest.approx(gb.p_value, rel=1e-6)


def test_sequential_interval_and_p_equal_gbstats(data):
    a, b = data
    m = Metric("y", "y")
    for planned in (5000, 20000):
        cfg = gb_freq.SequentialConfig(difference_type="relative", sequential_tuning_parameter=planned)
        gb = gb_freq.SequentialTwoSidedTTest(gb_mean(a), gb_mean(b), cfg).compute_result()
        lift = compare(ours(a, m), ours(b, m), relative=True)
        res = sequential_lift(lift.estimate, lift.se, len(a["y"]) + len(b["y"]), planned_n=planned)
        assert (res.ci_low, res.ci_high) == pytest.approx(tuple(gb.ci), rel=REL)
        assert res.p_value == pytest.approx(gb.p_value, rel=1e-9)
        assert res.ci_high - res.ci_low > lift.ci_high - lift.ci_low


@pytest.mark.parametrize("proper,inverse,relative", [(False, False, True), (True, False, True),
                                                     (True, True, False), (True, False, False)])
def test_bayesian_chance_to_win_risk_ci_equal_gbstats(data, proper, inverse, relative):
    a, b = data
    m = Metric("y", "y")
    gp = gb_bayes.GaussianPrior(mean=0.02, variance=0.1 ** 2, proper=proper)
    cfg = gb_bayes.EffectBayesianConfig(prior_effect=gp, inverse=inverse, prior_type="relative",
                                        difference_type="relative" if relative else "absolute")
    gb = gb_bayes.EffectBayesianABTest(gb_mean(a), gb_mean(b), cfg).compute_result()
    res = bayesian_compare(ours(a, m), ours(b, m), relative=relative, inverse=inverse,
                           prior=GaussianPrior(mean=0.02, variance=0.01, proper=proper))
    assert res.expected == pytest.approx(gb.expected, rel=REL)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(gb.ci), rel=REL)
    assert res.chance_to_win == pytest.approx(gb.chance_to_win, rel=1e-9, abs=1e-12)
    assert (res.risk_control, res.risk_treatment) == pytest.approx(tuple(gb.risk), rel=1e-7, abs=1e-12)


def test_default_prior_is_growthbooks_flat_prior(data):
    a, b = data
    m = Metric("y", "y")
    gb = gb_bayes.EffectBayesianABTest(gb_mean(a), gb_mean(b)).compute_result()
    res = bayesian_compare(ours(a, m), ours(b, m))
    freq = compare(ours(a, m), ours(b, m), relative=True, test="z")
    assert res.expected == pytest.approx(gb.expected, rel=REL) == freq.estimate
    assert res.posterior_sd == pytest.approx(freq.se, rel=REL)
    assert (res.ci_low, res.ci_high) == pytest.approx((freq.ci_low, freq.ci_high), rel=REL)


def test_srm_equals_gbstats_check_srm():
    for users, weights in (([5120, 4880], [0.5, 0.5]), ([3400, 3300, 2950], [0.34, 0.33, 0.33])):
        assert srm_test(users, weights).p_value == pytest.approx(gb_utils.check_srm(users, weights), rel=1e-10)
