"""The propensity estimators and id_plugin give the same numbers on Spark as on pandas.

Both engines get the same ``__bucket`` column, so every per-bucket array — and with it
the estimate, the analytic SE and every bootstrap replicate — must agree up to the last
ulps of Java's exp/log against numpy's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from causal_core.identification.estimand import frontdoor_expression
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from causal_core.moments.pandas_engine import hash_buckets
from tests.causal_core.propensity_sims import simulate
from tests.causal_core.test_id_plugin import frontdoor_data

pytestmark = pytest.mark.spark
K = 40
BOOT = BootstrapOptions(replicates=30, seed=7)


def engines(spark, df: pd.DataFrame):
    from jobs.spark.engine import SparkMomentEngine

    df = df.assign(__bucket=hash_buckets(df["__unit"], K))
    return PandasMomentEngine(df, n_buckets=K), SparkMomentEngine(spark.createDataFrame(df), n_buckets=K)


def assert_same(a, b):
    assert b.estimate == pytest.approx(a.estimate, rel=1e-9)
    assert b.diagnostics["analytic_se"] == pytest.approx(a.diagnostics["analytic_se"], rel=1e-8)
    np.testing.assert_allclose(b.replicates, a.replicates, rtol=1e-8)
    assert (b.ci_low, b.ci_high) == pytest.approx((a.ci_low, a.ci_high), rel=1e-8)


@pytest.fixture(scope="module")
def propensity_engines(spark):
    pandas_engine, spark_engine = engines(spark, simulate(2_000, seed=21))
    with spark_engine.persist():
        yield pandas_engine, spark_engine


@pytest.mark.parametrize("name,target,options", [
    ("ipw", "att", {"trim": 0.05}), ("aipw", "atc", {"clip": 0.05}),
    ("stratification", "ate", {"n_strata": 5}),
])
def test_propensity_estimators_match_pandas(propensity_engines, name, target, options):
    design = ModelRoles(treatment="d", outcome="y", covariates=("x1", "x2"), target=target)
    results = []
    for engine in propensity_engines:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.append(get_estimator(name)(bootstrap=BOOT, **options).fit(engine, design).result_)
    assert_same(*results)
    a, b = (r.diagnostics for r in results)
    for key in ("smd_after", "effective_sample_size", "propensity_range", "stratum_effects"):
        if key in a:
            va = list(a[key].values()) if isinstance(a[key], dict) else a[key]
            vb = list(b[key].values()) if isinstance(b[key], dict) else b[key]
            np.testing.assert_allclose(np.ravel(vb), np.ravel(va), rtol=1e-8)


def test_clustered_ipw_matches_pandas(spark):
    df = simulate(1_000, seed=22)
    df = pd.concat([df, df.assign(y=df.y + 1.0)], ignore_index=True)
    pandas_engine, spark_engine = engines(spark, df)
    design = ModelRoles(treatment="d", outcome="y", covariates=("x1", "x2"), clustered=True)
    a, b = (get_estimator("ipw")(bootstrap=BOOT).fit(e, design).result_ for e in (pandas_engine, spark_engine))
    assert_same(a, b)


def test_id_plugin_matches_pandas(spark):
    pandas_engine, spark_engine = engines(spark, frontdoor_data(2_000, seed=23))
    design = ModelRoles(treatment="X", outcome="Y", strategy="frontdoor", variables=("X", "M", "Y"),
                    expression=frontdoor_expression(["X"], ["Y"], ["M"]))
    a, b = (get_estimator("id_plugin")(bootstrap=BOOT).fit(e, design).result_ for e in (pandas_engine, spark_engine))
    assert_same(a, b)
    assert a.diagnostics["levels"] == b.diagnostics["levels"]
