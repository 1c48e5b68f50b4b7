"""Reading and preparing study rows on real Spark: interval, filter, derived, encode, nulls, errors."""

import datetime as dt

import pytest

from causal_core.errors import DataCheckError, EstimationError, SpecError
from causal_core.spec import parse_spec
from jobs.prepare import ModelRequest, build_model_frame
from jobs.warehouse import read_study_frame

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
        rows.append((f"u{i % 20}", day, float(i), i % 2, float(i % 7) if i != 5 else None, ["a", "b", "c"][i % 3]))
    df = spark.createDataFrame(rows, "uid string, day date, x double, t int, y double, c string")
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
                              binary_needed=True, n_buckets=16)
    assert model.dropped_nulls == 1 and model.n_rows == 59
    # 'a' and 'b' have 20 rows each, 'c' 19 after the null row: 'a' (most frequent, then first) is the reference.
    assert sorted(model.labels.values()) == sorted(["t", "y", "x", "c=b", "c=c"])
    with pytest.raises(DataCheckError, match=r"1 of 60 rows have nulls.*'y': 1"):
        failing = spec_for(table, nulls="fail")
        build_model_frame(read_study_frame(spark, failing, ["t", "y", "x", "uid"]), failing, "y",
                          ModelRequest(covariates=("x",)), treated=1, control=0, binary_needed=True, n_buckets=16)


def test_treatment_errors(spark, table):
    spec = spec_for(table)
    raw = read_study_frame(spark, spec, ["t", "y", "x", "uid"], start="2026-11-01", end="2026-11-02")
    const = raw.where("t = 0")
    with pytest.raises(DataCheckError, match="treatment 't' is constant"):
        build_model_frame(const, spec, "y", ModelRequest(), treated=1, control=0, binary_needed=True, n_buckets=8)
    nonbinary = raw.withColumn("t", (raw.x / 3).cast("int") % 3)  # this day holds i = 0, 3, 6, ...
    with pytest.raises(EstimationError, match="treatment 't' is not binary"):
        build_model_frame(nonbinary, spec, "y", ModelRequest(), treated=1, control=0, binary_needed=True,
                          n_buckets=8)
    empty = raw.where("x < -1")
    with pytest.raises(DataCheckError, match="selection is empty"):
        build_model_frame(empty, spec, "y", ModelRequest(), treated=1, control=0, binary_needed=True, n_buckets=8)
