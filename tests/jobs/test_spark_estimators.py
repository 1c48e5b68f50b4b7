"""Estimators on the Spark engine give the pandas engine's numbers: point estimates,
standard errors and bucket-bootstrap replicates (same buckets, same seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.datasets import confounded_binary, linear_frontdoor, linear_iv
from causal_core.errors import EstimationError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from jobs.spark.engine import SparkMomentEngine, with_buckets

pytestmark = pytest.mark.spark
K = 50
RTOL = 1e-6


def frames(spark, pdf, unit=None):
    """The bucketed Spark frame and the same rows, with its buckets, for the pandas oracle."""
    sdf = with_buckets(spark.createDataFrame(pdf), K, unit)
    sdf = (sdf.drop(unit) if unit else sdf).cache()
    return sdf, sdf.toPandas()


def both(name, sdf, pdf, design, **options):
    out = []
    for engine in (SparkMomentEngine(sdf, n_buckets=K), PandasMomentEngine(pdf, n_buckets=K)):
        out.append(get_estimator(name)(**options).fit(engine, design).result_)
    return out


def assert_same(spark_result, pandas_result, keys=("analytic_se",)):
    assert spark_result.estimate == pytest.approx(pandas_result.estimate, rel=RTOL)
    assert spark_result.se == pytest.approx(pandas_result.se, rel=RTOL)
    assert (spark_result.ci_low, spark_result.ci_high) == (
        pytest.approx(pandas_result.ci_low, rel=RTOL), pytest.approx(pandas_result.ci_high, rel=RTOL))
    np.testing.assert_allclose(spark_result.replicates, pandas_result.replicates, rtol=RTOL)
    for key in keys:
        assert spark_result.diagnostics[key] == pytest.approx(pandas_result.diagnostics[key], rel=RTOL)


def test_ols_att_with_clusters(spark):
    s = confounded_binary(3000, np.random.default_rng(1))
    pdf = s.frame.assign(uid=np.random.default_rng(2).integers(0, 400, len(s.frame)))
    sdf, pdf = frames(spark, pdf, "uid")
    boot = BootstrapOptions(replicates=200, seed=4)
    got, want = both("ols", sdf, pdf, s.make_design("att", clustered=True), bootstrap=boot)
    assert_same(got, want, ("analytic_se", "se_fixed_covariates", "r2"))
    assert got.diagnostics["n_clusters"] == want.diagnostics["n_clusters"] == 400
    assert abs(got.estimate - s.truth["att"]) < 4 * got.diagnostics["analytic_se"]


def test_iv(spark):
    s = linear_iv(3000, np.random.default_rng(3))
    sdf, pdf = frames(spark, s.frame)
    got, want = both("iv", sdf, pdf, s.make_design("late"), bootstrap=BootstrapOptions(replicates=200, seed=1))
    assert_same(got, want, ("analytic_se", "first_stage_f", "first_stage_f_robust"))


def test_frontdoor(spark):
    s = linear_frontdoor(3000, np.random.default_rng(4))
    sdf, pdf = frames(spark, s.frame)
    got, want = both("frontdoor", sdf, pdf, s.make_design(), bootstrap=BootstrapOptions(replicates=200, seed=2))
    assert_same(got, want)


def test_longley_nist_values_on_spark(spark):
    """The ill-conditioned NIST Longley regression (see test_ols) through Spark's exact
    sums and the recentred pass: the certified GNPDEFL coefficient and SD to 1e-10."""
    from statsmodels.datasets import longley

    data = longley.load_pandas()
    sdf, _ = frames(spark, pd.concat([data.endog, data.exog], axis=1))
    design = ModelRoles("GNPDEFL", "TOTEMP", ("GNP", "UNEMP", "ARMED", "POP", "YEAR"))
    res = get_estimator("ols")(cov_type="nonrobust", bootstrap=BootstrapOptions(replicates=0)).fit(
        SparkMomentEngine(sdf, n_buckets=K), design).result_
    assert res.estimate == pytest.approx(15.0618722713733, rel=1e-10)
    assert res.se == pytest.approx(84.9149257747669, rel=1e-10)


def test_row_level_poisson_bootstrap_on_spark(spark):
    s = confounded_binary(1500, np.random.default_rng(5))
    sdf, _ = frames(spark, s.frame)
    boot = BootstrapOptions(replicates=50, seed=9, kind="row-poisson")
    res = get_estimator("ols")(interactions=False, bootstrap=boot).fit(
        SparkMomentEngine(sdf, n_buckets=K), s.make_design()).result_
    assert res.diagnostics["bootstrap_kind"] == "row-poisson" and len(res.replicates) == 50
    assert res.se == pytest.approx(res.diagnostics["analytic_se"], rel=0.35)


def test_errors_name_the_columns_on_spark(spark):
    s = confounded_binary(500, np.random.default_rng(6))
    sdf, _ = frames(spark, s.frame.assign(x2=4.0))
    with pytest.raises(EstimationError, match=r"constant columns.*'x2' \(= 4\)"):
        get_estimator("ols")(bootstrap=BootstrapOptions(replicates=0)).fit(
            SparkMomentEngine(sdf, n_buckets=K), s.make_design())


class CountingSparkEngine(SparkMomentEngine):
    """Counts the Spark jobs behind the passes (memoised passes run no job)."""

    jobs = 0

    def _bucket_sums(self, exprs):
        self.jobs += 1
        return super()._bucket_sums(exprs)

    def _grouped_sums(self, exprs, key, levels):
        self.jobs += 1
        return super()._grouped_sums(exprs, key, levels)

    def _totals(self, exprs, extremes):
        self.jobs += 1
        return super()._totals(exprs, extremes)


def test_estimators_sharing_an_engine_compute_their_common_pass_once(spark):
    """OLS and the propensity estimators open with the same arm-Gram pass over
    (1, d, x, y) and ipw / aipw fit the same propensity model: on one engine those passes
    run once, and the numbers are those of fresh engines."""
    s = confounded_binary(2000, np.random.default_rng(7))
    sdf, _ = frames(spark, s.frame)
    design = s.make_design("ate")
    boot = BootstrapOptions(replicates=50, seed=3)
    shared = CountingSparkEngine(sdf, n_buckets=K)
    results, alone_jobs = {}, 0
    for name in ("ols", "ipw", "aipw"):
        results[name] = get_estimator(name)(bootstrap=boot).fit(shared, design).result_
        alone = CountingSparkEngine(sdf, n_buckets=K)
        fresh = get_estimator(name)(bootstrap=boot).fit(alone, design).result_
        alone_jobs += alone.jobs
        assert results[name].estimate == fresh.estimate and results[name].se == fresh.se
        np.testing.assert_array_equal(results[name].replicates, fresh.replicates)
    # ipw and aipw open with ols's arm-Gram pass (ipw's propensity fit reads its first
    # Gram from it), and aipw reuses every Newton pass of ipw's propensity fit
    newton = results["aipw"].diagnostics["propensity_iterations"]
    assert newton >= 2 and shared.jobs == alone_jobs - 3 - newton


def test_card_iv_wooldridge_example_15_4_on_spark(spark):
    """Card's return to schooling instrumented by college proximity (see test_iv) through
    Spark: Wooldridge's printed .132 (.055), and the pandas engine's numbers."""
    from tests.causal_core.test_iv import CARD_DESIGN, card_frame

    sdf, pdf = frames(spark, card_frame())
    got, want = both("iv", sdf, pdf, CARD_DESIGN, cov_type="nonrobust", bootstrap=BootstrapOptions(replicates=100, seed=3))
    assert (round(got.estimate, 3), round(got.diagnostics["analytic_se"], 3)) == (0.132, 0.055)
    assert_same(got, want)


def test_nhefs_ipw_hernan_robins_on_spark(spark):
    """Smoking cessation and weight gain by IP weighting (see test_ipw) through Spark:
    the book's 3.44 kg, and the pandas engine's estimate, SE and bootstrap replicates."""
    from tests.causal_core.test_ipw import NHEFS_DESIGN, nhefs_frame

    sdf, pdf = frames(spark, nhefs_frame())
    got, want = both("ipw", sdf, pdf, NHEFS_DESIGN, bootstrap=BootstrapOptions(replicates=100, seed=4))
    assert round(got.estimate, 2) == 3.44
    assert_same(got, want)


def test_overlap_and_positivity_on_spark(spark):
    """Every back-door estimator's ``diagnostics["overlap"]`` through Spark equals the
    pandas engine's, and a covariate level present in one arm only is named on Spark."""
    import warnings

    s = confounded_binary(2000, np.random.default_rng(11))
    sdf, pdf = frames(spark, s.frame)
    for name in ("ols", "ipw", "aipw", "stratification"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got, want = both(name, sdf, pdf, s.make_design(), bootstrap=BootstrapOptions(replicates=0))
        g, w = got.diagnostics["overlap"], want.diagnostics["overlap"]
        for arm in ("treated", "control"):
            assert g["range"][arm] == pytest.approx(w["range"][arm], rel=RTOL)
        for key in ("arms_overlap", "share_outside", "share_outside_crump", "propensity"):
            assert g[key] == w[key]
        assert w["share_outside_crump"] > 0 and got.diagnostics["warnings"] == want.diagnostics["warnings"]
    frame = s.frame.assign(z=(s.frame.x1 > 1.0).astype(float))
    frame.loc[frame.z == 1, "d"] = 1.0  # every row with z = 1 treated
    sdf, _ = frames(spark, frame)
    for name in ("ols", "ipw", "aipw", "stratification"):
        with pytest.raises(EstimationError, match=r"positivity fails for treatment 'd': no untreated rows where z = 1"):
            get_estimator(name)(bootstrap=BootstrapOptions(replicates=0)).fit(
                SparkMomentEngine(sdf, n_buckets=K), ModelRoles("d", "y", ("x1", "x2", "z")))
