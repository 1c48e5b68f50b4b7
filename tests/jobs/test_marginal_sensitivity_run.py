"""The marginal-sensitivity refuter in a Spark study: its bounds equal the sharp bounds computed
by sorting the rows, with the propensity fitted independently by statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from tests.causal_core.msm_reference import exact_bounds
from causal_core.spec import parse_spec
from jobs.estimate import estimate_study

SPEC = """
name: msm
data: {path: PATH, format: parquet, buckets: 50}
graph: |
  x1 -> d -> y
  x1 -> y
  x2 -> d
  x2 -> y
treatment: d
outcome: y
estimators: [ipw, aipw]
bootstrap: {replicates: 20, seed: 3}
refuters:
  - marginal_sensitivity: {lambdas: [1.2, 2.0], plausible: 1.2, replicates: 100}
  - data_subset: {simulations: 20}
"""


@pytest.mark.spark
def test_spark_bounds_equal_the_sorted_rows_bounds(spark, tmp_path):
    rng = np.random.default_rng(21)
    n = 5000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(0.5 * x1 - 0.5 * x2)))).astype(float)
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * d + 0.5 * x1 + 0.3 * x2 - 0.2)))).astype(float)
    spark.createDataFrame([tuple(map(float, r)) for r in zip(x1, x2, d, y)], "x1 double, x2 double, d double, y double") \
        .write.mode("overwrite").parquet(str(tmp_path / "msm"))
    result = estimate_study(spark, parse_spec(SPEC.replace("PATH", str(tmp_path / "msm"))))

    logit = sm.Logit(d, sm.add_constant(np.column_stack([x1, x2]))).fit(disp=0, tol=1e-12)
    e = logit.predict(sm.add_constant(np.column_stack([x1, x2])))
    by = {(r["refuter"], r["estimator"]): r for r in result.refutations}
    assert set(by) == {("marginal_sensitivity", "ipw"), ("marginal_sensitivity", "aipw"),
                       ("data_subset", "ipw"), ("data_subset", "aipw")}
    for estimator in ("ipw", "aipw"):
        ref = by[("marginal_sensitivity", estimator)]
        rows = ref["details"]["bounds"]
        assert [r["lambda"] for r in rows] == [1.2, 2.0]
        for r in rows:  # a 0/1 outcome: every bin holds one value, the bounds are sharp
            lo, hi = exact_bounds(y, d, e, r["lambda"])
            assert (r["lower"], r["upper"]) == pytest.approx((lo, hi), abs=1e-7)
            assert r["ci_low"] < r["lower"] < r["upper"] < r["ci_high"]
        ipw = next(x for x in result.estimates if x.estimator == "ipw")
        assert ref["details"]["hajek_at_1"] == pytest.approx(ipw.estimate, abs=1e-9)
        # a strong effect (0.8 on the logit scale) survives Λ = 1.2 and breaks down later
        assert ref["passed"] is True and 1.2 < ref["details"]["breakdown_lambda_ci"] < ref["details"]["breakdown_lambda"]
        assert ref["new_effect"] == pytest.approx(rows[0]["lower"])
