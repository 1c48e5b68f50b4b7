"""Reading and preparing study rows on real Spark: interval, filter, derived, encode, nulls, errors."""

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from causal_core.errors import DataCheckError, SpecError
from causal_core.estimators import get_estimator
from causal_core.spec import parse_spec
from causal_core.study import ModelRequest, treatment_obstacle
from jobs.warehouse.prepare import build_model_frame
from jobs.warehouse.read import read_study_frame

SPEC = """
name: wh
data: {{table: {table}, partition_column: day, unit_id: uid, nulls: {nulls}}}
derived: {{x2: "x * 2"}}
graph: |
  x -> t -> y
  x -> y
  c -> y
  c -> t
treatment: t
outcome: y
encode: {{c: categorical}}
"""


@pytest.fixture(scope="module")
def table(spark):
    rows = []
    for i in range(60):
        day = dt.date(2026, 11, 1) + dt.timedelta(days=i % 3)
        rows.append((f"u{i % 20}", day, float(i), i % 2, float(i % 7) if i != 5 else None, ["a", "b", "c"][i % 3],
                     ["p", "q", "r", "s"][i % 4]))
    df = spark.createDataFrame(rows, "uid string, day date, x double, t int, y double, c string, k string")
    df.write.mode("overwrite").partitionBy("day").format("parquet").saveAsTable("wh_rows")
    return "wh_rows"


def spec_for(table, nulls="drop", **replace):
    text = SPEC.format(table=table, nulls=nulls)
    for k, v in replace.items():
        text = text.replace(k, v)
    return parse_spec(text)


def test_interval_is_half_open_and_columns_are_pruned(spark, table):
    spec = spec_for(table)
    df = read_study_frame(spark, spec, ["t", "y", "x2"], start="2026-11-02", end="2026-11-03")
    assert df.columns == ["t", "y", "x2"]
    assert df.count() == 20
    assert "PartitionFilters: [isnotnull(day" in df._jdf.queryExecution().executedPlan().toString()


def test_unknown_column_is_named_with_a_suggestion(spark, table):
    with pytest.raises(SpecError, match=r"unknown column\(s\) 'xx' \(did you mean 'x'"):
        read_study_frame(spark, spec_for(table), ["t", "xx"])


def test_bad_where_and_bad_derived_name_the_field(spark, table):
    with pytest.raises(SpecError, match="data.where"):
        read_study_frame(spark, spec_for(table, **{"nulls: drop}": "nulls: drop, where: 'x >>> 1'}"}), ["t"])
    with pytest.raises(SpecError, match="derived.x2"):
        read_study_frame(spark, spec_for(table, **{'"x * 2"': '"nosuch + 1"'}), ["t", "x2"])


def test_nulls_dropped_with_count_or_fail(spark, table):
    spec = spec_for(table)
    raw = read_study_frame(spark, spec, ["t", "y", "x", "c", "uid"])
    model = build_model_frame(raw, spec, "y", ModelRequest(covariates=("x", "c")), treated=1, control=0,
                              n_buckets=16)
    assert model.dropped_nulls == 1 and model.n_rows == 59
    # 'a' and 'b' have 20 rows each, 'c' 19 after the null row: 'a' (most frequent, then first) is the reference.
    assert sorted(model.labels.values()) == sorted(["t", "y", "x", "c=b", "c=c"])
    with pytest.raises(DataCheckError, match=r"1 of 60 rows have nulls.*'y': 1"):
        failing = spec_for(table, nulls="fail")
        build_model_frame(read_study_frame(spark, failing, ["t", "y", "x", "uid"]), failing, "y",
                          ModelRequest(covariates=("x",)), treated=1, control=0, n_buckets=16)


def test_preparation_reads_the_table_once_and_caches_only_what_it_read(spark, table, monkeypatch):
    """Null counts, treatment checks, rows per bucket and the estimators' opening pass come
    from the one query that fills the cache (the only action on the table); the model frame
    is the kept rows of that cache."""
    spec = spec_for(table)
    raw = read_study_frame(spark, spec, ["t", "y", "x", "uid"])
    actions = []
    for name in ("collect", "count", "toArrow", "toPandas"):
        original = getattr(type(raw), name)
        monkeypatch.setattr(type(raw), name, lambda self, *a, _f=original, _n=name, **k: (actions.append(_n),
                                                                                          _f(self, *a, **k))[1])
    model = build_model_frame(raw, spec, "y", ModelRequest(covariates=("x",)), treated=1, control=0,
                              n_buckets=16, opening=True)
    assert actions == ["toArrow"] and model.opening is not None
    monkeypatch.undo()
    assert model.dropped_nulls == 1 and model.n_rows == 59 and model.df.count() == 59
    assert "__keep" not in model.df.columns and model.cache.is_cached
    model.release()
    assert not model.cache.is_cached


def test_the_opening_pass_summed_while_preparing_is_the_engines_own(spark, table):
    """The per-bucket, per-arm Gram sums of (1, d, x, y) that the preparation pass sums over
    the kept rows equal those the engine sums over the model frame, and an ols and an ipw
    fit that start from them give the estimates of fits that make the pass themselves."""
    from causal_core.estimators.base import ModelRoles
    from jobs.spark.engine import SparkMomentEngine

    spec = spec_for(table)
    without = build_model_frame(read_study_frame(spark, spec, ["t", "y", "x", "uid"]), spec, "y",
                                ModelRequest(covariates=("x",)), treated=1, control=0, n_buckets=16)
    assert without.opening is None  # no estimator of the frame asked for it
    without.release()
    model = build_model_frame(read_study_frame(spark, spec, ["t", "y", "x", "uid"]), spec, "y",
                              ModelRequest(covariates=("x",)), treated=1, control=0, n_buckets=16, opening=True)
    try:
        opening = model.opening
        own = SparkMomentEngine(model.df, n_buckets=16).grouped_sums(list(opening.exprs), opening.key, opening.levels)
        assert opening.sums.shape == own.shape == (16, 3, 10)
        np.testing.assert_allclose(opening.sums, own, rtol=1e-12, atol=1e-9)
        assert opening.sums[:, :2, 0].sum() == model.n_rows  # every kept row in the control or treated arm
        design = ModelRoles(treatment="__t", outcome="__y", covariates=("__x0",), target="ate")
        for name in ("ols", "ipw"):
            seeded = SparkMomentEngine(model.df, n_buckets=16)
            opening.seed(seeded)
            fresh = SparkMomentEngine(model.df, n_buckets=16)
            fits = [get_estimator(name)().fit(e, design).result_ for e in (seeded, fresh)]
            assert fits[0].estimate == pytest.approx(fits[1].estimate, rel=1e-10)
            assert fits[0].se == pytest.approx(fits[1].se, rel=1e-8)
    finally:
        model.release()


def _rows_scanned(spark, run) -> list[int]:
    """Rows each file scan read while ``run()`` ran: from Spark's SQL status store, the
    ``number of output rows`` of every ``Scan parquet`` node of the SQL executions ``run``
    started. A query over a filled cache shows its scan node with 0 rows (it did not run)."""
    sc = spark.sparkContext._jsc.sc()
    store = spark._jsparkSession.sharedState().statusStore()

    def executions() -> list:
        sc.listenerBus().waitUntilEmpty()
        found, it = [], store.executionsList().iterator()
        while it.hasNext():
            found.append(it.next().executionId())
        return found

    before = set(executions())
    run()
    out = []
    for eid in sorted(set(executions()) - before):
        values, nodes = store.executionMetrics(eid), store.planGraph(eid).allNodes().iterator()
        while nodes.hasNext():
            node = nodes.next()
            metrics = node.metrics().iterator()
            while node.name().startswith("Scan parquet") and metrics.hasNext():
                metric = metrics.next()
                value = values.get(metric.accumulatorId())
                if metric.name() == "number of output rows" and value.isDefined() and value.get() != "0":
                    out.append(int(value.get().replace(",", "")))
    return out


TWO_CATEGORIES = {"c -> t": "c -> t\n  k -> t\n  k -> y", "{c: categorical}": "{c: categorical, k: categorical}"}


@pytest.mark.parametrize("unit", ["uid", None])
def test_two_categorical_covariates_take_one_read_of_the_table(spark, table, unit):
    """Their levels come from the aggregation that fills the cache, not from a read each;
    the reference level is the most frequent (ties by value) as ever. Without a unit the
    buckets hash the encoded rows — exactly as hashing a frame one-hot encoded up front."""
    from causal_core.moments.engine import BUCKET
    from jobs.spark.engine import with_buckets

    spec = spec_for(table, **TWO_CATEGORIES, **({} if unit else {"unit_id: uid, ": ""}))
    raw = read_study_frame(spark, spec, ["t", "y", "x", "c", "k", *([unit] if unit else [])])
    built = []
    scans = _rows_scanned(spark, lambda: built.append(build_model_frame(
        raw, spec, "y", ModelRequest(covariates=("c", "k", "x")), treated=1, control=0, n_buckets=16)))
    (model,) = built
    assert scans == [60]
    assert _rows_scanned(spark, raw.count) == [60]  # the counter sees a read when there is one
    # c: a 20, b 20, c 19 (the null row); k: p 15, q 14, r 15, s 15: levels by count, ties by value
    assert [model.labels[c] for c in model.covariates] == ["c=b", "c=c", "k=r", "k=s", "k=q", "x"]
    assert model.bucketing == ("unit" if unit else "row values") and model.n_rows == 59
    if unit is None:
        kept = raw.where("y IS NOT NULL")
        one_hot = kept.select(F.col("t").cast("double").alias("__t"), F.col("y").cast("double").alias("__y"),
                              *[(F.col(v) == F.lit(level)).cast("double").alias(f"__x{i}") for i, (v, level) in
                                enumerate([("c", "b"), ("c", "c"), ("k", "r"), ("k", "s"), ("k", "q")])],
                              F.col("x").cast("double").alias("__x5"))
        expected = with_buckets(one_hot, 16)
        assert sorted(map(tuple, expected.collect())) == sorted(map(tuple, model.df.select(
            *expected.columns).collect()))
        assert len({r[BUCKET] for r in expected.collect()}) > 8
    model.release()


def test_treatment_errors(spark, table):
    spec = spec_for(table)
    raw = read_study_frame(spark, spec, ["t", "y", "x", "uid"], start="2026-11-01", end="2026-11-02")
    const = raw.where("t = 0")
    with pytest.raises(DataCheckError, match="treatment 't' is constant"):
        build_model_frame(const, spec, "y", ModelRequest(), treated=1, control=0, n_buckets=8)
    nonbinary = raw.withColumn("t", (raw.x / 3).cast("int") % 3)  # this day holds i = 0, 3, 6, ...
    model = build_model_frame(nonbinary, spec, "y", ModelRequest(), treated=1, control=0, n_buckets=8)
    model.release()
    assert not model.binary_treatment and model.treatment_seen == (0.0, 1.0, 2.0)
    assert treatment_obstacle(get_estimator("ols"), model.columns) is None
    assert treatment_obstacle(get_estimator("ipw"), model.columns) == (
        "treatment 't' is not binary (values {0, 1, 2}); set treatment_values to choose a treated and a control value")
    empty = raw.where("x < -1")
    with pytest.raises(DataCheckError, match="0 rows in the selection"):
        build_model_frame(empty, spec, "y", ModelRequest(), treated=1, control=0, n_buckets=8)


NO_UNIT = """
name: dup
data: {path: PATH, format: parquet}
graph: |
  x -> t -> y
  x -> y
treatment: t
outcome: y
"""


def _bucket_table(model):
    """(row values, bucket) -> count: the bucketing as a multiset (row order is not data)."""
    from collections import Counter

    cols = [model.treatment, model.outcome, *model.covariates, "__bucket"]
    return Counter(tuple(r) for r in model.df.select(*cols).collect())


def test_identical_rows_without_a_unit_get_their_own_buckets(spark, tmp_path):
    """Discrete rows without a unit id: 8 distinct rows, 3000 copies. Hashing values alone
    would put every copy of a row in one bucket (8 clusters, a useless bootstrap); the
    copy index spreads them over the buckets, the same way for any partitioning."""
    import numpy as np

    from causal_core.moments.engine import BUCKET
    from jobs.spark.engine import duplicate_dispersion

    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, 3000)
    t = rng.binomial(1, 0.3 + 0.4 * x)
    y = rng.binomial(1, 0.2 + 0.3 * t + 0.2 * x)
    spark.createDataFrame([(int(a), int(b), int(c)) for a, b, c in zip(x, t, y)], "x int, t int, y int") \
        .write.mode("overwrite").parquet(str(tmp_path / "dup"))
    spec = parse_spec(NO_UNIT.replace("PATH", str(tmp_path / "dup")))
    models = []
    for parts in (1, 3, 7):
        raw = read_study_frame(spark, spec, ["t", "y", "x"]).repartition(parts)
        models.append(build_model_frame(raw, spec, "y", ModelRequest(covariates=("x",)), treated=1, control=0,
                                        n_buckets=100))
    model = models[0]
    assert model.bucketing == "row values and copy index" and model.n_rows == 3000
    counts = np.zeros(100)
    for bucket, n in model.df.groupBy(BUCKET).count().collect():
        counts[bucket] = n
    assert (counts > 0).sum() == 100 and duplicate_dispersion(counts) < 1.5  # spread like distinct rows
    assert _bucket_table(models[1]) == _bucket_table(model) == _bucket_table(models[2])


def test_distinct_rows_without_a_unit_are_bucketed_by_value(spark, tmp_path):
    import numpy as np

    rng = np.random.default_rng(4)
    rows = [(float(a), int(b), float(c)) for a, b, c in zip(rng.normal(size=2000), rng.integers(0, 2, 2000),
                                                          rng.normal(size=2000))]
    spark.createDataFrame(rows, "x double, t int, y double").write.mode("overwrite").parquet(str(tmp_path / "d"))
    spec = parse_spec(NO_UNIT.replace("PATH", str(tmp_path / "d")))
    model = build_model_frame(read_study_frame(spark, spec, ["t", "y", "x"]), spec, "y",
                              ModelRequest(covariates=("x",)), treated=1, control=0,
                              n_buckets=50)
    assert model.bucketing == "row values" and model.n_rows == 2000
