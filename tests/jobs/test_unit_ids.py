"""Buckets and row-level draws depend on the unit ids, not on the type they are stored as:
7, 7L, 7.0, decimal 7 and the string "7" are one unit key ("7") in Spark and in pandas."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from causal_core.moments import BUCKET, PandasMomentEngine, col
from causal_core.moments.expr import RowPoisson
from causal_core.moments.pandas_engine import hash_buckets, unit_keys
from causal_core.spec import parse_spec
from jobs.estimate import estimate_study
from jobs.spark.compiler import unit_key
from jobs.spark.engine import SparkMomentEngine, with_buckets

pytestmark = pytest.mark.spark
K = 40
TYPES = ("int", "bigint", "smallint", "double", "float", "decimal(18,0)", "decimal(12,2)", "string")


def test_unit_key_texts_in_spark_equal_the_pandas_engine_texts(spark):
    """The canonical text of each id, typed by Spark, and by pandas from the same values."""
    doubles = [7.0, -3.0, 7.5, -0.1, -0.0, 2.0 ** 62, 2.0 ** 63, 1e300, float("inf"), float("-inf"), 5e-324]
    want = ["7", "-3", "0x1.ep2", "-0x1.999999999999ap-4", "0", "4611686018427387904", "0x1.0p63",
            "0x1.7e43c8800759cp996", "Infinity", "-Infinity", "0x0.0000000000001p-1022"]
    sdf = spark.createDataFrame([(i, v) for i, v in enumerate(doubles)], "i int, u double")
    got = sdf.select("i", unit_key(F.col("u"), sdf.schema["u"].dataType).alias("k")).orderBy("i").toPandas()
    assert got.k.tolist() == want
    assert unit_keys(pd.Series(doubles)).tolist() == want
    decimals = [Decimal("7.00"), Decimal("-3.00"), Decimal("7.50"), Decimal("12345678901234567890.00")]
    want = ["7", "-3", "0x1.ep2", "12345678901234567890"]
    sdf = spark.createDataFrame([(i, v) for i, v in enumerate(decimals)], "i int, u decimal(30,2)")
    got = sdf.select("i", unit_key(F.col("u"), sdf.schema["u"].dataType).alias("k")).orderBy("i").toPandas()
    assert got.k.tolist() == want
    assert unit_keys(pd.Series(decimals)).tolist() == want
    for t in ("tinyint", "smallint", "int", "bigint", "string"):
        sdf = spark.createDataFrame([(0, "7"), (1, "-3")], "i int, u string").withColumn("u", F.col("u").cast(t))
        got = sdf.select("i", unit_key(F.col("u"), sdf.schema["u"].dataType).alias("k")).orderBy("i").toPandas()
        assert got.k.tolist() == ["7", "-3"], t


@pytest.fixture(scope="module")
def units(spark):
    """400 unit ids, 5 rows each, with a covariate; one Spark frame per storage type of uid."""
    rng = np.random.default_rng(11)
    uid = np.repeat(rng.choice(30_000, 400, replace=False), 5)  # they fit a smallint
    pdf = pd.DataFrame({"row": np.arange(len(uid)), "uid": uid, "x": rng.normal(size=len(uid))})
    base = spark.createDataFrame(pdf)
    return pdf, {t: base.withColumn("uid", F.col("uid").cast(t)) for t in TYPES}


def test_buckets_are_the_same_whatever_the_unit_id_type(units):
    """Spark: identical __bucket columns for every storage type (xxhash64 of a long 7 and of
    a double 7.0 differ, so hashing the stored value would not give this)."""
    _, frames = units
    buckets = {t: with_buckets(sdf, K, "uid").orderBy("row").select(BUCKET).toPandas()[BUCKET].to_numpy()
               for t, sdf in frames.items()}
    assert len(set(buckets["int"])) == K
    for t in TYPES:
        np.testing.assert_array_equal(buckets[t], buckets["int"], err_msg=t)


def test_pandas_buckets_are_the_same_whatever_the_unit_id_type(units):
    pdf, _ = units
    ids = pdf.uid
    variants = {"int64": ids, "int32": ids.astype("int32"), "float": ids.astype(float), "string": ids.astype(str),
                "decimal": ids.map(lambda v: Decimal(int(v)).quantize(Decimal("0.01"))),
                "nullable": ids.astype("Int64")}
    want = hash_buckets(ids, K)
    assert len(set(want)) == K
    for name, values in variants.items():
        np.testing.assert_array_equal(hash_buckets(values, K), want, err_msg=name)


def test_row_level_draws_are_the_same_whatever_the_unit_id_type(units):
    """RowPoisson draws hash the same key as the buckets, in both engines."""
    pdf, frames = units
    exprs = [RowPoisson(0, 7), RowPoisson(3, 7) * col("x")]
    spark_sums = {t: SparkMomentEngine(with_buckets(frames[t], K, "uid"), n_buckets=K).bucket_sums(exprs)
                  for t in ("int", "double", "decimal(12,2)", "string")}
    for t, sums in spark_sums.items():
        np.testing.assert_array_equal(sums, spark_sums["int"], err_msg=t)
    assert spark_sums["int"][:, 0].sum() != len(pdf)  # the weights are draws, not ones
    frame = pdf.drop(columns="row")
    pandas_reps = {name: PandasMomentEngine(frame.assign(__unit=u).drop(columns="uid"), n_buckets=K)
                   .replicate_sums([col("x"), col("x") * col("x")], 5, seed=2)
                   for name, u in (("int", frame.uid), ("float", frame.uid.astype(float)),
                                   ("string", frame.uid.astype(str)))}
    for name, reps in pandas_reps.items():
        np.testing.assert_array_equal(reps, pandas_reps["int"], err_msg=name)


SPEC = """
name: units
data: {path: PATH, format: parquet, unit_id: uid, buckets: 50, exact_sums: true}
graph: |
  x -> d -> y
  x -> y
treatment: d
outcome: y
estimators: [ols, ipw]
bootstrap: {replicates: 100, seed: 3}
"""


def test_a_study_gives_the_same_results_whatever_the_unit_id_type(spark, tmp_path):
    """estimate_study on one table with uid stored as int, long, double, decimal and
    string: the same estimates, standard errors and intervals. Renumbering the units does
    move the bootstrap numbers, so they do depend on the unit ids."""
    rng = np.random.default_rng(12)
    n_units, per = 300, 6
    uid = np.repeat(rng.choice(10 ** 7, n_units, replace=False), per)
    effect = np.repeat(rng.normal(size=n_units), per)
    x = rng.normal(size=len(uid)) + effect
    d = rng.binomial(1, 1 / (1 + np.exp(-0.5 * x)))
    y = 1.0 + 2.0 * d + x + effect + rng.normal(size=len(uid))
    base = spark.createDataFrame(pd.DataFrame({"uid": uid, "x": x, "d": d.astype(float), "y": y})).coalesce(2)

    def run(ids) -> list[dict]:
        path = tmp_path / f"units_{len(list(tmp_path.iterdir()))}"
        ids.write.parquet(str(path))
        out = [e.to_dict() for e in estimate_study(spark, parse_spec(SPEC.replace("PATH", str(path)))).estimates]
        assert [e["estimator"] for e in out] == ["ols", "ipw"]
        assert all(e["diagnostics"]["buckets_keyed_on"] == "unit" for e in out)
        return [{k: e[k] for k in ("estimate", "se", "ci_low", "ci_high")} for e in out]

    results = {t: run(base.withColumn("uid", F.col("uid").cast(t)))
               for t in ("int", "bigint", "double", "decimal(18,0)", "string")}
    for t, got in results.items():
        assert got == results["int"], t
    renumbered = run(base.withColumn("uid", F.col("uid") + F.lit(1)))
    for got, want in zip(renumbered, results["int"]):
        assert got["estimate"] == pytest.approx(want["estimate"], rel=1e-12)
        assert got["ci_low"] != want["ci_low"]
