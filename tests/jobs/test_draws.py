"""One draw everywhere: Spark's xxhash64 is causal_core.moments.draws' hash, and the
pandas and Spark engines, the demo data and the benchmark data draw the same numbers
from the same keys. (``toPandas`` here only brings small test frames to the driver.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from causal_core.moments import BUCKET, UNIT, PandasMomentEngine, col, draws
from causal_core.moments.expr import RowPoisson
from causal_core.moments.pandas_engine import unit_keys
from jobs.spark import compiler
from jobs.spark.compiler import COLUMN_HANDLERS, SQL_HANDLERS, poisson_weight
from jobs.spark.engine import SparkMomentEngine
from jobs.warehouse import demo

pytestmark = pytest.mark.spark

_MASK = (1 << 64) - 1


def _unsigned(values) -> list[int]:
    return [int(v) & _MASK for v in values]


def test_every_node_type_has_a_sql_and_a_column_handler():
    from causal_core.moments.expr import NODE_TYPES

    assert set(SQL_HANDLERS) == set(COLUMN_HANDLERS) == set(NODE_TYPES)


def test_spark_xxhash64_is_the_numpy_xxh64_chain(spark):
    texts = ["u12345", "", "é漢字" * 20, None, "a" * 31, "b" * 32]
    longs = [7, -5, 2 ** 40, 0, -(2 ** 63), 2 ** 63 - 1]
    doubles = [1.5, -0.0, float("nan"), float("inf"), -1e-300, 0.0]
    ints = [3, -(2 ** 31), 0, 2 ** 31 - 1, -1, 42]
    rows = list(zip(range(6), texts, longs, doubles, ints))
    sdf = spark.createDataFrame(rows, "i int, s string, l long, d double, n int")
    got = sdf.select(
        "i", F.xxhash64("s").alias("s"), F.xxhash64("l").alias("l"), F.xxhash64("d").alias("d"),
        F.xxhash64("n").alias("n"), F.xxhash64("s", "l", "d", "n").alias("chain"),
        F.xxhash64("s", F.lit(11), F.lit(2 ** 40)).alias("lits")).orderBy("i").toPandas()
    assert _unsigned(got.s) == draws.hash_texts(texts).tolist()
    assert _unsigned(got.l) == draws.hash_longs(longs).tolist()
    assert _unsigned(got.d) == draws.hash_doubles(doubles).tolist()
    assert _unsigned(got.n) == draws.hash_ints(ints).tolist()
    chain = draws.hash_ints(ints, draws.hash_doubles(doubles, draws.hash_longs(longs, draws.hash_texts(texts))))
    assert _unsigned(got.chain) == chain.tolist()
    lits = draws.hash_integer(draws.hash_integer(draws.hash_texts(texts), 11), 2 ** 40)
    assert _unsigned(got.lits) == lits.tolist()


def test_spark_uniforms_and_weights_are_the_numpy_ones(spark):
    sdf = spark.range(3000).select(F.concat(F.lit("u"), F.col("id")).alias("k"), "id")
    got = sdf.select("id", compiler.uniform(F.col("k"), 5, 3).alias("u"),
                     poisson_weight(F.col("k"), 2 ** 33, 7).alias("w")).orderBy("id").toPandas()
    key = draws.hash_texts([f"u{i}" for i in range(3000)])
    np.testing.assert_array_equal(got.u.to_numpy(), draws.uniforms(key, 5, 3))
    np.testing.assert_array_equal(got.w.to_numpy(), draws.poisson1(draws.uniforms(key, 2 ** 33, 7)))


@pytest.fixture(scope="module")
def one_row_per_bucket():
    """Rows of 150 units (string ids, and the same ids as integers), 3 rows each, every row
    its own bucket: bucket sums are then the rows' values."""
    rng = np.random.default_rng(3)
    ids = np.repeat(rng.choice(10 ** 6, 150, replace=False), 3)
    return pd.DataFrame({"uid": ids, "x": rng.normal(size=len(ids)), "y": rng.normal(size=len(ids)) + 3.0,
                         BUCKET: np.arange(len(ids), dtype=np.int32)})


@pytest.mark.parametrize("as_text", [False, True], ids=["integer ids", "string ids"])
def test_both_engines_draw_the_same_row_poisson_weights(spark, one_row_per_bucket, as_text):
    frame = one_row_per_bucket
    units = frame.uid.map(lambda v: f"user-{v}") if as_text else frame.uid
    pdf = frame.drop(columns="uid").assign(**{UNIT: units})
    n = len(pdf)
    exprs = [RowPoisson(0, 7), RowPoisson(5, 7), RowPoisson(0, 2 ** 35) * col("x")]
    spark_engine = SparkMomentEngine(spark.createDataFrame(pdf), n_buckets=n)
    pandas_engine = PandasMomentEngine(pdf, n_buckets=n)
    got = spark_engine.bucket_sums(exprs)
    np.testing.assert_array_equal(got, pandas_engine.bucket_sums(exprs))
    want = draws.poisson1(draws.uniforms(draws.hash_texts(unit_keys(units).tolist()), 7, 5))
    np.testing.assert_array_equal(got[:, 1], want)
    assert len(np.unique(got[:, 0])) > 2 and (got[::3, 0] == got[1::3, 0]).all()  # a unit's rows share it
    moments = [col("x"), col("x") * col("y"), col("y")]
    spark_reps = spark_engine.replicate_sums(moments, 12, seed=4)
    pandas_reps = pandas_engine.replicate_sums(moments, 12, seed=4)
    np.testing.assert_allclose(spark_reps, pandas_reps, rtol=1e-12, atol=0)
    assert len({tuple(r) for r in spark_reps}) == 12


def test_rows_without_a_unit_are_keyed_on_their_values_in_both_engines(spark):
    rng = np.random.default_rng(8)
    n = 200
    pdf = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 5, n), "s": rng.choice(["a", "bc", "déf"], n),
                        "flag": rng.random(n) < 0.5, BUCKET: np.arange(n, dtype=np.int32)})
    pdf.loc[::17, "x"] = np.nan  # a missing value leaves the row's hash as it was, in both
    exprs = [RowPoisson(1, 3), RowPoisson(2, 3) * col("g")]
    got = SparkMomentEngine(spark.createDataFrame(pdf), n_buckets=n).bucket_sums(exprs)
    np.testing.assert_array_equal(got, PandasMomentEngine(pdf, n_buckets=n).bucket_sums(exprs))
    assert got[:, 0].sum() != n


def test_demo_and_benchmark_data_draw_the_engines_uniforms(spark):
    from bench.datagen import numpy_frame, spark_frame

    got = spark.range(500).select("id", demo.uniform(4, 12).alias("u")).orderBy("id").toPandas()
    np.testing.assert_array_equal(got.u.to_numpy(), draws.uniforms(draws.hash_longs(np.arange(500)), 4, 12))
    sparks = spark_frame(spark, 2000, seed=7).orderBy("id").toPandas()
    numpys = numpy_frame(2000, seed=7)
    assert list(sparks.columns) == list(numpys.columns)
    np.testing.assert_array_equal(sparks.W4.to_numpy(), numpys.W4.to_numpy())
    for c in ("W0", "W1", "W2", "W3", "y"):  # Java's and numpy's log, cos, sin: last ulps apart
        np.testing.assert_allclose(sparks[c].to_numpy(), numpys[c].to_numpy(), rtol=1e-12, atol=1e-12)
    assert (sparks.d.to_numpy() == numpys.d.to_numpy()).mean() > 0.999
