"""Empty selections, all-null columns and left-out rows get the right diagnosis, on real Spark."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from typer.testing import CliRunner

from causal_core.errors import DataCheckError
from causal_core.spec import parse_spec
from jobs.cli import app
from causal_core.study import Interval
from jobs.estimate import estimate_study

pytestmark = pytest.mark.spark
runner = CliRunner()

CONFOUNDED = """
name: diag
data: {path: PATH, format: FORMAT, partition_column: day}
graph: |
  cat -> d -> y
  cat -> y
  x -> d
  x -> y
treatment: d
outcome: y
TV
encode: {cat: categorical}
estimators: [ols]
bootstrap: {replicates: 50, seed: 3}
"""


def _spec(path, fmt="parquet", tv=""):
    return parse_spec(CONFOUNDED.replace("PATH", str(path)).replace("FORMAT", fmt).replace("TV", tv))


@pytest.fixture(scope="module")
def table(spark, tmp_path_factory):
    rng = np.random.default_rng(8)
    n = 1200
    cat = rng.choice(list("abcd"), n)
    x = rng.normal(size=n)
    d = rng.integers(0, 3, n)  # three values: 0, 1, 2
    y = 1.0 * d + x + rng.normal(size=n)
    day = [dt.date(2026, 1, 1) + dt.timedelta(days=int(i % 3)) for i in range(n)]
    path = tmp_path_factory.mktemp("diag") / "rows"
    spark.createDataFrame(list(zip(day, cat.tolist(), x.tolist(), d.tolist(), y.tolist())),
                          "day date, cat string, x double, d long, y double") \
        .write.mode("overwrite").partitionBy("day").parquet(str(path))
    return path, d


def test_an_interval_with_no_rows_says_so(spark, table):
    path, _ = table
    with pytest.raises(DataCheckError, match=r"0 rows in \[2027-01-01, 2027-02-01\) of .*rows \(parquet\)"):
        estimate_study(spark, _spec(path, tv="treatment_values: {treated: 1, control: 0}"),
                       Interval("2027-01-01", "2027-02-01"))


def test_a_header_only_csv_exits_1_with_zero_rows(spark, tmp_path):
    csv = tmp_path / "empty.csv"
    csv.write_text("day,cat,x,d,y\n")
    spec = tmp_path / "s.yaml"
    spec.write_text(CONFOUNDED.replace("PATH", str(csv)).replace("FORMAT", "csv").replace("TV", ""))
    out = runner.invoke(app, ["run", str(spec), "--output", str(tmp_path / "r.json")])
    assert out.exit_code == 1, out.output
    assert "0 rows in" in out.output and "not numeric" not in out.output


def test_an_all_null_outcome_is_named(spark, tmp_path):
    csv = tmp_path / "null_y.csv"
    csv.write_text("day,cat,x,d,y\n" + "".join(f"2026-01-01,a,{i * 0.1},{i % 2},\n" for i in range(1000)))
    spec = tmp_path / "s.yaml"
    spec.write_text(CONFOUNDED.replace("PATH", str(csv)).replace("FORMAT", "csv").replace("TV", ""))
    out = runner.invoke(app, ["run", str(spec), "--output", str(tmp_path / "r.json")])
    assert out.exit_code == 1, out.output
    assert "outcome 'y' is null in all 1,000 rows" in out.output


def test_rows_outside_the_contrast_are_counted_and_shown(spark, table, tmp_path):
    """treated: 1 / control: 0 on a three-valued treatment leaves out the rows with d = 2:
    counted by reason in the results and printed by `whybatch run`."""
    path, d = table
    spec = _spec(path, tv="treatment_values: {treated: 1, control: 0}")
    result = estimate_study(spark, spec)
    left_out = int((d == 2).sum())
    why = "d is neither treated (1) nor control (0)"
    assert result.dropped_rows == {why: left_out}
    assert result.estimates[0].diagnostics["dropped_rows"] == {why: left_out}
    assert result.rows == len(d) - left_out
    assert f"{left_out:,} rows left out: {why}" in result.warnings
    f = tmp_path / "s.yaml"
    f.write_text(spec.raw)
    out = runner.invoke(app, ["run", str(f), "--output", str(tmp_path / "r.json")])
    assert out.exit_code == 0, out.output
    assert f"{left_out:,} rows left out" in out.output


def test_a_non_binary_treatment_lists_its_values(spark, table):
    path, _ = table
    spec = parse_spec(_spec(path).raw.replace("estimators: [ols]", "estimators: [ipw]"))
    (row,) = estimate_study(spark, spec).estimates
    assert not row.estimated and "values {0, 1, 2}" in row.reason
