"""Bad invocations fail before Spark starts, exit 2 and say what was expected."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

import jobs.spark.session
from causal_core.errors import SpecError
from causal_core.spec import parse_spec
from jobs.cli import app
from jobs.entrypoints import prepare_run, resolve_study
from jobs.warehouse.read import read_study_frame

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]

STUDY = """
name: pre
data: {path: PATH, format: parquet, partition_column: PART}
graph: "x -> d -> y; x -> y"
treatment: d
outcome: y
"""


@pytest.fixture
def no_spark(monkeypatch):
    """Starting Spark fails the test: every check here must come before it."""
    def refuse(*_a, **_k):
        raise AssertionError("Spark was started before the bad input was reported")
    monkeypatch.setattr(jobs.spark.session, "build_session", refuse)


def _study(tmp_path, path=None, part="day"):
    text = STUDY.replace("PATH", str(path or tmp_path)).replace("PART", part)
    if not part:
        text = text.replace(", partition_column: ", "")
    f = tmp_path / "pre.yaml"
    f.write_text(text)
    return f


@pytest.mark.parametrize("start, expected", [
    ("2026/01/03", "--start '2026/01/03': expected a date YYYY-MM-DD"),
    ("2026-13-01", "--start '2026-13-01' is not a calendar date"),
    ("yesterday", "expected a date YYYY-MM-DD"),
])
def test_a_malformed_start_exits_2_before_spark(tmp_path, no_spark, start, expected):
    out = runner.invoke(app, ["run", str(_study(tmp_path)), "--start", start])
    assert out.exit_code == 2, out.output
    assert expected in out.output and "Traceback" not in out.output


def test_start_after_end_exits_2(tmp_path, no_spark):
    out = runner.invoke(app, ["run", str(_study(tmp_path)), "--start", "2026-01-05", "--end", "2026-01-03"])
    assert out.exit_code == 2 and "is not before --end" in out.output


def test_an_interval_without_a_partition_column_exits_2(tmp_path, no_spark):
    out = runner.invoke(app, ["run", str(_study(tmp_path, part="")), "--start", "2026-01-03"])
    assert out.exit_code == 2, out.output
    assert "no data.partition_column" in out.output


def test_a_missing_local_path_exits_2(tmp_path, no_spark):
    out = runner.invoke(app, ["run", str(_study(tmp_path, path=tmp_path / "nowhere"))])
    assert out.exit_code == 2, out.output
    assert "data.path" in out.output and "does not exist" in out.output


def test_an_unknown_profile_exits_2_and_lists_the_profiles(tmp_path, no_spark):
    out = runner.invoke(app, ["run", str(_study(tmp_path)), "--profile", "clsuter"])
    assert out.exit_code == 2, out.output
    assert "unknown Spark profile 'clsuter'" in out.output and "local" in out.output


def test_a_study_name_resolves_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_study("discount_observational") == ROOT / "conf" / "studies" / "discount_observational.yaml"
    with pytest.raises(SpecError, match="no such study file"):
        resolve_study("no_such_study")
    out = runner.invoke(app, ["plan", "price_iv"])
    assert out.exit_code == 0, out.output


def test_prepare_run_checks_without_spark(tmp_path, no_spark):
    prepared = prepare_run(_study(tmp_path), start="2026-01-01", end="20260201")
    assert prepared.interval.start == "2026-01-01" and prepared.profile.name == "local"


@pytest.mark.spark
@pytest.mark.parametrize("kind", ["date", "int", "string"])
def test_the_interval_is_compared_in_the_partition_columns_type(spark, tmp_path, kind):
    """[2026-01-02, 2026-01-04) keeps two of four days whether the partition column holds
    dates, integers (YYYYMMDD) or ISO text; a bound that does not fit the type is a SpecError."""
    days = [dt.date(2026, 1, d) for d in (1, 2, 3, 4)]
    value = {"date": lambda d: d, "int": lambda d: int(d.strftime("%Y%m%d")), "string": lambda d: d.isoformat()}[kind]
    spark.createDataFrame([(value(d), float(i), 1.0, 1.0) for i, d in enumerate(days) for _ in range(5)],
                          f"day {kind}, x double, d double, y double") \
        .write.mode("overwrite").partitionBy("day").parquet(str(tmp_path / "t"))
    spec = parse_spec(STUDY.replace("PATH", str(tmp_path / "t")).replace("PART", "day"))
    df = read_study_frame(spark, spec, ["x"], start="2026-01-02", end="2026-01-04")
    assert sorted(r.x for r in df.collect()) == [1.0] * 5 + [2.0] * 5
    if kind == "int":
        assert read_study_frame(spark, spec, ["x"], start="20260104").count() == 5


def test_the_preload_thread_imports_what_a_run_imports_later():
    """``whybatch run`` imports the data checks', report's and tracking's modules in a thread
    while Spark starts; each name must be a module that exists, or the thread saves nothing."""
    import sys

    from jobs.entrypoints import RUN_MODULES, TRACK_MODULES, preload

    thread = preload(track=True)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert [m for m in RUN_MODULES + TRACK_MODULES if m not in sys.modules] == []
