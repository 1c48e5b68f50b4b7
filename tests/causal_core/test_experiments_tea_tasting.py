"""whybatch's experiment statistics against tea-tasting 1.14, fed the same simulated units:
means, ratio metrics (delta method) and CUPED (mean and ratio), Holm and BH.

Documented differences, asserted below:
- Relative lift interval. whybatch's default, like GrowthBook, is symmetric: the delta
  method on ``(m_b - m_a)/m_a``. tea-tasting applies the delta method to
  ``log(m_b/m_a)`` and exponentiates (whybatch's :func:`log_ratio_interval` gives it);
  its relative p-value is the absolute lift's.
- CUPED relative lift. whybatch, like GrowthBook, divides the adjusted difference by the
  *unadjusted* control value; tea-tasting reports ``adj_b/adj_a - 1``, its adjusted means
  centred at the pooled covariate value. Absolute lifts, intervals and p-values agree.
- Holm. tea-tasting's ``adjust_fwer`` defaults to Šidák's per-step level (Holm–Šidák);
  with ``method="bonferroni"`` it is Holm's procedure, as statsmodels' ``holm``.
"""

import numpy as np
import pandas as pd
import pytest

from causal_core.experiments import (
    ArmSums, Metric, adjust_p_values, arm_estimate, compare, cuped_arms, log_ratio_interval,
)
from tests.causal_core.experiments_data import two_arms

tt = pytest.importorskip("tea_tasting")

REL = 1e-9


@pytest.fixture(scope="module")
def data():
    return two_arms()



def frame(a, b):
    da, db = pd.DataFrame(a), pd.DataFrame(b)
    return pd.concat([da.assign(variant=0), db.assign(variant=1)], ignore_index=True)


@pytest.mark.parametrize("numer,denom,cov,cov_denom", [("y", None, None, None), ("y", "x", None, None),
                                                      ("y", None, "z", None), ("y", "x", "z", "w")])
def test_absolute_lift_ratio_and_cuped_equal_tea_tasting(data, numer, denom, cov, cov_denom):
    a, b = data
    metric = Metric("m", numer, denom, kind="ratio" if denom else "mean", covariate=cov,
                    covariate_denominator=cov_denom)
    exp = tt.Experiment(m=tt.RatioOfMeans(numer, denom, cov, cov_denom))
    ref = exp.analyze(frame(a, b), control=0)["m"]
    sa, sb = ArmSums.from_units(a), ArmSums.from_units(b)
    if cov:
        adj = cuped_arms(sa, sb, metric)
        ea, eb = adj.control, adj.treatment
    else:
        ea, eb = arm_estimate(sa, metric), arm_estimate(sb, metric)
    res = compare(ea, eb)
    assert (ea.mean, eb.mean) == pytest.approx((ref.control, ref.treatment), rel=REL)
    assert res.estimate == pytest.approx(ref.effect_size, rel=REL)
    assert (res.ci_low, res.ci_high) == pytest.approx((ref.effect_size_ci_lower, ref.effect_size_ci_upper), rel=REL)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    # tea-tasting's relative interval is the log-ratio one; its point is adj_b/adj_a - 1.
    lo, hi = log_ratio_interval(ea, eb)
    assert (lo, hi) == pytest.approx((ref.rel_effect_size_ci_lower, ref.rel_effect_size_ci_upper), rel=1e-8)
    assert eb.mean / ea.mean - 1 == pytest.approx(ref.rel_effect_size, rel=REL)
    ours_rel = compare(ea, eb, relative=True)
    if cov:  # gbstats' denominator (unadjusted control) differs from tea-tasting's (adjusted)
        assert ours_rel.estimate != pytest.approx(ref.rel_effect_size, rel=1e-6)
        assert ours_rel.estimate == pytest.approx((eb.mean - ea.mean) / ea.baseline, rel=REL)
    else:  # same point; the symmetric delta interval differs from the log one
        assert ours_rel.estimate == pytest.approx(ref.rel_effect_size, rel=REL)
        assert ours_rel.ci_low != pytest.approx(lo, rel=1e-4)


def test_holm_and_bh_equal_tea_tasting_adjustments():
    p = [0.001, 0.012, 0.03, 0.04, 0.2]
    results = {f"m{i}": {"pvalue": v} for i, v in enumerate(p)}
    fwer = tt.adjust_fwer({"b-a": results}, arbitrary_dependence=True, method="bonferroni")["b-a"]
    fdr = tt.adjust_fdr({"b-a": results}, arbitrary_dependence=False)["b-a"]
    holm, bh = adjust_p_values(p, "holm"), adjust_p_values(p, "bh")
    np.testing.assert_allclose(holm.adjusted, [fwer[f"m{i}"]["pvalue_adj"] for i in range(5)], rtol=1e-12)
    np.testing.assert_allclose(bh.adjusted, [fdr[f"m{i}"]["pvalue_adj"] for i in range(5)], rtol=1e-12)
