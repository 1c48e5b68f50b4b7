"""The Spark moment engine returns the pandas engine's arrays, bit-identical across
partitionings, with row-level Poisson draws keyed on the unit. (``toPandas`` here only
brings small test frames to the pandas oracle.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import DataCheckError
from causal_core.moments import BUCKET, UNIT, PandasMomentEngine, col, exp, linear, lit, log, sigmoid
from causal_core.moments.expr import Func, RowPoisson, evaluate_numpy
from jobs.spark.compiler import compile_expr
from jobs.spark.engine import SparkMomentEngine, collect_arrow, with_buckets

pytestmark = pytest.mark.spark
K = 40


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 4000
    return pd.DataFrame({
        "x": rng.normal(size=n), "y": rng.normal(size=n) * 1e3 + 5e3, "d": rng.integers(0, 2, n).astype(float),
        "z": rng.standard_t(3, size=n), "c": rng.integers(0, 5, n).astype(float), "u": rng.integers(0, 300, n),
    })


@pytest.fixture(scope="module")
def bucketed(spark, data):
    """The Spark frame with buckets by unit, and the same rows (with those buckets) in pandas."""
    sdf = with_buckets(spark.createDataFrame(data), K, "u").drop("u").cache()
    return sdf, sdf.toPandas()


RICH = [
    lit(1.0), col("x"), col("x") * col("y"), col("y") * col("y"), col("d") * col("x") * col("z"),
    exp(col("x")), log(col("y")), sigmoid(linear([0.3, -1.2, 2.0], [lit(1.0), col("x"), col("d")])),
    Func("abs", col("z")), Func("sqrt", col("y")), col("x") / (col("c") + 1.0), col("z").gt(0.5),
    col("c").eq(2.0) * col("y"), col("x").le(col("z")), -col("z") * 3.5 - 2.0, (col("x") - 0.1) * (col("x") - 0.1),
]


def assert_close(a, b, rtol=1e-9):
    """Relative to each column's scale, since sums with cancellation have tiny values."""
    scale = np.maximum(np.abs(b).max(axis=0), 1e-300)
    np.testing.assert_array_less(np.abs(a - b) / scale, rtol)


def test_compile_expr_matches_numpy_on_special_values(spark):
    """Row by row, including NaN, +-inf, +-0, negatives under log and sqrt, x / +-0."""
    a = [1.5, -2.0, 0.0, -0.0, np.nan, np.inf, -np.inf, 3.0, -1e-300, 7.0]
    b = [0.0, -0.0, 0.0, 2.0, 1.0, 0.0, 1.0, np.nan, 2.0, 7.0]
    frame = pd.DataFrame({"i": np.arange(len(a)), "a": a, "b": b})
    exprs = [col("a") / col("b"), log(col("a")), Func("sqrt", col("a")), exp(col("a")), sigmoid(col("a")),
             Func("abs", col("a")), col("a") + col("b"), col("a") - col("b"), col("a") * col("b"), -col("a"),
             col("a").lt(col("b")), col("a").le(col("b")), col("a").gt(col("b")), col("a").ge(col("b")),
             col("a").eq(col("b")), col("a").ne(col("b")), lit(1.0) / col("a"), log(col("b")) * col("a")]
    got = spark.createDataFrame(frame).select(
        "i", *[compile_expr(e).alias(f"e{j}") for j, e in enumerate(exprs)]).toPandas().sort_values("i")
    columns = {c: frame[c].to_numpy() for c in frame}
    for j, e in enumerate(exprs):
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as intended
            want = np.broadcast_to(evaluate_numpy(e, columns), (len(frame),))
        np.testing.assert_allclose(got[f"e{j}"].to_numpy(), want, rtol=4e-16, atol=0, err_msg=str(e))
        same_sign_of_zero = np.signbit(got[f"e{j}"].to_numpy()) == np.signbit(want)
        assert same_sign_of_zero[want == 0].all(), str(e)


def test_null_cells_read_as_nan(spark):
    sdf = spark.createDataFrame([(1.0, 0), (None, 0)], "x double, __bucket int")
    sums = SparkMomentEngine(sdf, n_buckets=1).bucket_sums([col("x"), lit(1.0)])
    assert np.isnan(sums[0, 0]) and sums[0, 1] == 2.0


def test_bucket_sums_match_the_pandas_engine(bucketed):
    sdf, pdf = bucketed
    got = SparkMomentEngine(sdf, n_buckets=K).bucket_sums(RICH)
    want = PandasMomentEngine(pdf, n_buckets=K).bucket_sums(RICH)
    assert got.shape == (K, len(RICH))
    assert_close(got, want)


def test_plain_double_sums_match_too(bucketed):
    sdf, pdf = bucketed
    got = SparkMomentEngine(sdf, n_buckets=K, exact=False).bucket_sums(RICH[:6])
    assert_close(got, PandasMomentEngine(pdf, n_buckets=K).bucket_sums(RICH[:6]))


@pytest.mark.parametrize("exact", [True, False])
def test_grouped_sums_match_the_pandas_engine_and_a_numpy_groupby(bucketed, exact):
    sdf, pdf = bucketed
    exprs = RICH[:8]
    got = SparkMomentEngine(sdf, n_buckets=K, exact=exact).grouped_sums(exprs, col("c"), 5)
    want = PandasMomentEngine(pdf, n_buckets=K).grouped_sums(exprs, col("c"), 5)
    assert got.shape == (K, 5, len(exprs))
    assert_close(got.reshape(K * 5, -1), want.reshape(K * 5, -1))
    # independent: a numpy group-by of the evaluated columns
    cols = {c: pdf[c].to_numpy() for c in pdf.columns}
    values = np.column_stack([np.broadcast_to(evaluate_numpy(e, cols), len(pdf)) for e in exprs])
    group = pdf[BUCKET].to_numpy() * 5 + pdf["c"].to_numpy().astype(int)
    direct = np.zeros((K * 5, len(exprs)))
    np.add.at(direct, group, values)
    assert_close(got.reshape(K * 5, -1), direct)
    np.testing.assert_allclose(got.sum(axis=1), SparkMomentEngine(sdf, n_buckets=K).bucket_sums(exprs), rtol=1e-9)


@pytest.mark.parametrize("exact", [True, False])
def test_grouped_sums_refuse_keys_out_of_range(bucketed, exact):
    sdf, pdf = bucketed
    for engine in (SparkMomentEngine(sdf, n_buckets=K, exact=exact), PandasMomentEngine(pdf, n_buckets=K)):
        with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
            engine.grouped_sums([col("x")], col("c"), 4)  # c takes 0..4


@pytest.mark.parametrize("exact", [True, False])
def test_totals_match_the_pandas_engine_and_numpy(bucketed, exact):
    sdf, pdf = bucketed
    extremes = [col("x"), col("z") * col("d"), log(col("y"))]
    got = SparkMomentEngine(sdf, n_buckets=K, exact=exact).totals(RICH, extremes)
    want = PandasMomentEngine(pdf, n_buckets=K).totals(RICH, extremes)
    assert_close(got.sums[None], want.sums[None])
    np.testing.assert_array_equal(got.low, want.low)
    np.testing.assert_array_equal(got.high, want.high)
    cols = {c: pdf[c].to_numpy() for c in pdf.columns}
    values = [np.broadcast_to(evaluate_numpy(e, cols), len(pdf)) for e in extremes]
    np.testing.assert_array_equal(got.low, [v.min() for v in values])
    np.testing.assert_array_equal(got.high, [v.max() for v in values])
    assert_close(got.sums[None], SparkMomentEngine(sdf, n_buckets=K).bucket_sums(RICH).sum(axis=0)[None])
    if exact:  # fixed-point limbs: the same bits for any partitioning
        for parts in (1, 3, 7):
            again = SparkMomentEngine(sdf.repartition(parts), n_buckets=K, exact=True).totals(RICH)
            np.testing.assert_array_equal(again.sums, got.sums)


def test_totals_are_remembered_per_expression(bucketed):
    """A pass that summed more answers a later one asking for part of it, without a job."""
    sdf, _ = bucketed
    engine = SparkMomentEngine(sdf, n_buckets=K, exact=False)
    full = engine.totals(RICH, [col("x")])

    def no_job(*_):
        raise AssertionError("a remembered total ran a Spark job")

    engine._totals = no_job
    part = engine.totals([RICH[5], RICH[2], RICH[5]], [col("x")])
    np.testing.assert_array_equal(part.sums, full.sums[[5, 2, 5]])
    assert part.low[0] == full.low[0] and part.high[0] == full.high[0]


def test_awkward_column_names_survive_the_sql_text(spark):
    """Expressions are compiled to SQL text: braces, backticks and dots in column names
    must reach Spark quoted."""
    pdf = pd.DataFrame({"a{b}": [1.0, 2.0, 3.0, 4.0], "c`d": [0.5, 0.0, 2.0, 1.0], "e.f": [1.0, 1.0, 0.0, 0.0]})
    pdf[BUCKET] = [0, 1, 1, 2]
    exprs = [col("a{b}") * col("c`d"), col("e.f") + col("a{b}"), exp(col("c`d")) * exp(col("c`d"))]
    engine = SparkMomentEngine(spark.createDataFrame(pdf), n_buckets=3, exact=False)
    oracle = PandasMomentEngine(pdf, n_buckets=3)
    assert_close(engine.bucket_sums(exprs), oracle.bucket_sums(exprs))
    got, want = engine.totals(exprs, [col("a{b}")]), oracle.totals(exprs, [col("a{b}")])
    assert_close(got.sums[None], want.sums[None])
    assert (got.low[0], got.high[0]) == (1.0, 4.0)


def test_totals_of_no_rows(bucketed):
    sdf, _ = bucketed
    for exact in (True, False):
        got = SparkMomentEngine(sdf.limit(0), n_buckets=K, exact=exact).totals([col("x"), lit(1.0)], [col("x")])
        np.testing.assert_array_equal(got.sums, [0.0, 0.0])
        assert got.low[0] == np.inf and got.high[0] == -np.inf


def test_cluster_cross_sums_and_unit_counts_match_the_pandas_engine(bucketed):
    sdf, pdf = bucketed
    scores = [col("x") * (col("y") - 5e3), col("d"), sigmoid(col("z")) - 0.5]
    spark_engine, pandas_engine = SparkMomentEngine(sdf, n_buckets=K), PandasMomentEngine(pdf, n_buckets=K)
    assert_close(spark_engine.cluster_cross_sums(scores), pandas_engine.cluster_cross_sums(scores))
    np.testing.assert_array_equal(spark_engine.unit_counts(), pandas_engine.unit_counts())
    assert spark_engine.unit_counts().sum() == 300


def test_cluster_cross_sums_without_units_are_per_row(bucketed):
    sdf, pdf = bucketed
    scores = [col("x"), col("d") * col("z")]
    got = SparkMomentEngine(sdf.drop(UNIT), n_buckets=K).cluster_cross_sums(scores)
    assert_close(got, PandasMomentEngine(pdf.drop(columns=[UNIT]), n_buckets=K).cluster_cross_sums(scores))


def test_sums_are_bit_identical_whatever_the_partitioning(bucketed):
    sdf, _ = bucketed
    scores = [col("x") * col("z"), col("y")]
    base = SparkMomentEngine(sdf, n_buckets=K)
    sums, cross = base.bucket_sums(RICH), base.cluster_cross_sums(scores)
    for parts in (1, 3, 7):
        engine = SparkMomentEngine(sdf.repartition(parts), n_buckets=K)
        np.testing.assert_array_equal(engine.bucket_sums(RICH), sums)
        if parts == 7:
            np.testing.assert_array_equal(engine.cluster_cross_sums(scores), cross)


def test_with_buckets_hashes_units_and_row_values(spark, data):
    sdf = spark.createDataFrame(data)
    by_unit = with_buckets(sdf, K, "u").select("u", UNIT, BUCKET).toPandas()
    assert (by_unit.groupby("u")[BUCKET].nunique() == 1).all() and (by_unit[UNIT] == by_unit.u).all()
    assert by_unit[BUCKET].between(0, K - 1).all() and by_unit[BUCKET].nunique() == K
    rows = with_buckets(sdf.repartition(5), K).select("x", "y", BUCKET).toPandas().sort_values(["x", "y"])
    again = with_buckets(sdf.repartition(2), K).select("x", "y", BUCKET).toPandas().sort_values(["x", "y"])
    np.testing.assert_array_equal(rows[BUCKET].to_numpy(), again[BUCKET].to_numpy())
    assert UNIT not in with_buckets(sdf, K).columns
    with pytest.raises(DataCheckError, match="unit column 'nope'"):
        with_buckets(sdf, K, "nope")


def test_row_poisson_draws_are_poisson_one_and_keyed_on_the_unit(spark):
    n = 20_000
    sdf = with_buckets(spark.range(n).withColumnRenamed("id", "uid"), K, "uid")
    engine = SparkMomentEngine(sdf, n_buckets=K)
    w0, w1 = RowPoisson(0, 11), RowPoisson(1, 11)
    exprs = [w0, w0 * w0, w1, w0 * w1, RowPoisson(0, 12) * w0]
    sums = engine.bucket_sums(exprs)
    totals = sums.sum(axis=0) / n
    mean, var = totals[0], totals[1] - totals[0] ** 2
    assert abs(mean - 1) < 4 / np.sqrt(n) and abs(var - 1) < 4 * np.sqrt(3 / n)
    assert abs(totals[3] - totals[0] * totals[2]) < 0.05  # replicates are independent
    assert abs(totals[4] - 1) < 0.05  # so are seeds (not one stream reused)
    again = SparkMomentEngine(sdf.repartition(7), n_buckets=K).bucket_sums(exprs)
    np.testing.assert_array_equal(again, sums)


def test_replicate_sums_are_the_row_poisson_moments(bucketed):
    sdf, _ = bucketed
    engine = SparkMomentEngine(sdf, n_buckets=K)
    exprs = [col("x"), col("x") * col("y")]
    reps = engine.replicate_sums(exprs, 6, seed=3)
    direct = engine.bucket_sums([RowPoisson(4, 3) * e for e in exprs]).sum(axis=0)
    np.testing.assert_allclose(reps[4], direct, rtol=1e-14)
    assert reps.shape == (6, 2) and len({tuple(r) for r in reps}) == 6


def test_ansi_mode_gives_the_same_sums(spark, bucketed):
    sdf, _ = bucketed
    exprs = [col("x") / col("d"), log(col("x")), col("x").lt(col("z")), exp(col("z")) * col("y")]
    plain = SparkMomentEngine(sdf, n_buckets=K).bucket_sums(exprs)
    spark.conf.set("spark.sql.ansi.enabled", "true")
    try:
        ansi = SparkMomentEngine(sdf, n_buckets=K).bucket_sums(exprs)
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "false")
    np.testing.assert_array_equal(ansi, plain)


def test_persisted_engine_gives_the_same_sums(bucketed):
    sdf, _ = bucketed
    engine = SparkMomentEngine(sdf, n_buckets=K)
    before = engine.bucket_sums(RICH[:4])
    with engine.persist(columns=["x", "y"]):
        np.testing.assert_array_equal(engine.bucket_sums(RICH[:4]), before)
    assert engine._cached is None


def test_only_small_aggregates_reach_the_driver(spark, bucketed):
    with pytest.raises(DataCheckError, match="more than 10 rows"):
        collect_arrow(spark.range(11), 10, "test")
    sdf, _ = bucketed
    with pytest.raises(DataCheckError, match="n_buckets"):
        SparkMomentEngine(sdf, n_buckets=K // 2).bucket_sums([col("x")])
    with pytest.raises(DataCheckError, match="with_buckets"):
        SparkMomentEngine(sdf.drop(BUCKET), n_buckets=K)


def test_wide_sums_agree_across_partitionings_to_rounding(bucketed):
    """The default study path (exact=False, one wide aggregation) is partition-independent up
    to floating-point reassociation: far below anything results report."""
    sdf, _ = bucketed
    base = SparkMomentEngine(sdf, n_buckets=K, exact=False).bucket_sums(RICH)
    for parts in (1, 3, 7):
        again = SparkMomentEngine(sdf.repartition(parts), n_buckets=K, exact=False).bucket_sums(RICH)
        np.testing.assert_allclose(again, base, rtol=1e-12, atol=1e-12 * np.abs(base).max())


def test_cse_projects_each_repeated_subtree_once_innermost_first():
    """Subtrees of 4+ nodes that occur more than once (the propensity's linear predictor
    and its sigmoid, shared by every score) become one projected column each, a level
    per nesting depth, and the moments read them by name."""
    from jobs.spark.cse import plan

    eta = linear([0.3, -1.2, 2.0], [lit(1.0), col("x"), col("d")])
    p = sigmoid(eta)
    exprs = [(col("d") - p) * col("x"), (col("d") - p) * col("z"), p * (1 - p) * col("x")]
    levels, rewritten = plan(exprs)
    assert levels == [[("__cse0", lit(0.3) + lit(-1.2) * col("x"))],
                      [("__cse1", col("__cse0") + lit(2.0) * col("d"))],
                      [("__cse2", sigmoid(col("__cse1")))],
                      [("__cse3", col("d") - col("__cse2"))]]
    assert rewritten == [col("__cse3") * col("x"), col("__cse3") * col("z"),
                         col("__cse2") * (1 - col("__cse2")) * col("x")]
    assert plan([p * col("x"), exp(col("x"))]) == ([], [p * col("x"), exp(col("x"))])  # nothing repeated
