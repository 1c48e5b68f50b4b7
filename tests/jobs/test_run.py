"""estimate_study on real Spark: estimators that share a model frame, in the spec's order."""

from __future__ import annotations

import numpy as np
import pytest

from causal_core.spec import parse_spec
from jobs.estimate import estimate_study

pytestmark = pytest.mark.spark

SPEC = """
name: dose
data: {path: PATH, format: parquet}
graph: |
  x -> t -> y
  x -> y
treatment: t
outcome: y
estimators: [ols, ipw, {ols: {interactions: false}}]
bootstrap: {replicates: 50, seed: 1}
"""


def test_a_numeric_treatment_fits_ols_and_names_why_ipw_cannot(spark, tmp_path):
    """One model frame serves all three estimators; ipw needs a binary treatment and says
    so with the values it saw; the results keep the spec's order; the dose effect (2) is
    recovered and equals a numpy least-squares fit."""
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.normal(size=n)
    t = np.round(rng.normal(size=n) + x, 1)
    y = 2.0 * t + 1.5 * x + rng.normal(size=n)
    spark.createDataFrame([(float(a), float(b), float(c)) for a, b, c in zip(x, t, y)], "x double, t double, y double") \
        .write.mode("overwrite").parquet(str(tmp_path / "dose"))
    result = estimate_study(spark, parse_spec(SPEC.replace("PATH", str(tmp_path / "dose"))))
    names = [e.estimator for e in result.estimates]
    assert names == ["ols", "ipw", "ols"]
    ols, ipw, additive = result.estimates
    assert not ipw.estimated and "treatment 't' is not binary" in ipw.reason
    assert ipw.strategy == "backdoor.optimal" and result.failed == (ipw,)
    beta = np.linalg.lstsq(np.column_stack([np.ones(n), t, x]), y, rcond=None)[0]
    for e in (ols, additive):
        assert e.estimate == pytest.approx(beta[1], rel=1e-9)
        assert abs(e.estimate - 2.0) < 4 * e.se
        assert e.diagnostics["buckets_keyed_on"] == "row values"
        assert (e.strategy, e.contrast, e.segment) == ("backdoor.optimal", "t: +1 unit", "all")


def test_disagreeing_estimators_are_reported_from_paired_replicates(spark, tmp_path):
    """ols (a wrong outcome model) and ipw (the right propensity model) on one frame draw the
    same bootstrap weights: the difference's SE is far below that of independent estimates,
    and the run warns that they disagree."""
    from tests.causal_core.test_estimator_agreement import simulate

    simulate(30000, misspecified=True, seed=1).to_parquet(tmp_path / "mis.parquet")
    spec = parse_spec(SPEC.replace("PATH", str(tmp_path / "mis.parquet"))
                      .replace("x -> t -> y\n  x -> y", "x -> d -> y\n  x -> d\n  x -> y")
                      .replace("treatment: t", "treatment: d")
                      .replace("estimators: [ols, ipw, {ols: {interactions: false}}]", "estimators: [ols, ipw]")
                      .replace("replicates: 50", "replicates: 400"))
    result = estimate_study(spark, spec)
    ols, ipw = result.estimates
    (c,) = result.comparisons
    assert (c.first, c.second) == ("ols", "ipw")
    assert c.difference == pytest.approx(ols.estimate - ipw.estimate, rel=1e-12)
    assert c.se < 0.7 * np.hypot(ols.se, ipw.se)
    assert c.disagree and any(w.startswith("ols and ipw disagree") for w in result.warnings)
