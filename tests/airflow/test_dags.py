"""The DAG factory: what the DagBag sees, what parsing costs, and whole DAG runs.

The runs use ``dag.test()`` against a tiny daily-partitioned Parquet table whose planted
effect differs by day (2.0 on 2026-03-01, -1.0 on the other days), so an estimate near
2 shows the run read exactly its data interval's partition; they log to the test
session's SQLite MLflow store and write the session's ``whybatch_results`` table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = ROOT / "airflow_dags"
DAYS = {"2026-02-28": -1.0, "2026-03-01": 2.0, "2026-03-02": -1.0}
ROWS_PER_DAY = 200
EXPERIMENT = "whybatch-airflow-test"
# a manual run at this logical date covers the day before it: [2026-03-01, 2026-03-02)
LOGICAL_DATE = datetime(2026, 3, 2, tzinfo=timezone.utc)
INTERVAL = ("2026-03-01", "2026-03-02")


def _spec(name: str, table: Path, extra: str = "") -> str:
    return f"""name: {name}
data: {{path: {table}, format: parquet, partition_column: ds}}
graph: "x -> d -> y; x -> y"
treatment: d
outcome: y
estimators: [ols]
bootstrap: {{replicates: 20, seed: 7}}
tracking: {EXPERIMENT}
{extra}"""


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A study directory: two scheduled studies on the tiny table (one whose checks ask
    for more rows than a day has), one without a schedule and one that does not parse."""
    import numpy as np
    import pandas as pd

    root = tmp_path_factory.mktemp("airflow-studies")
    rng = np.random.default_rng(11)
    frames = []
    for day, effect in DAYS.items():
        x = rng.normal(size=ROWS_PER_DAY)
        d = (rng.random(ROWS_PER_DAY) < 0.5).astype(int)
        frames.append(pd.DataFrame({"x": x, "d": d, "y": effect * d + x + rng.normal(scale=0.5, size=ROWS_PER_DAY),
                                    "ds": day}))
    table = root / "events"
    pd.concat(frames).to_parquet(table, partition_cols=["ds"])
    conf = root / "studies"
    conf.mkdir()
    (conf / "tiny_daily.yaml").write_text(_spec("tiny_daily", table, 'schedule: "@daily"'))
    (conf / "tiny_gated.yaml").write_text(_spec("tiny_gated", table, 'schedule: "0 0 * * *"\nchecks: {min_rows: 10000}'))
    (conf / "tiny_adhoc.yaml").write_text(_spec("tiny_adhoc", table))
    (conf / "broken.yaml").write_text(_spec("broken", table, 'schedule: "@daily"').replace("x -> d", "x -> q"))
    return conf


@pytest.fixture
def study_env(studies, tmp_path, monkeypatch):
    """The factory reads the test's study directory; run directories go to tmp_path."""
    monkeypatch.setenv("WHYBATCH_STUDIES_DIR", str(studies))
    monkeypatch.setenv("WHYBATCH_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=DAGS_FOLDER)


def test_the_dagbag_has_one_dag_per_project_study_with_a_schedule(monkeypatch):
    monkeypatch.delenv("WHYBATCH_STUDIES_DIR", raising=False)
    scheduled = {yaml.safe_load(p.read_text())["name"] for p in (ROOT / "conf/studies").glob("*.yaml")
                 if yaml.safe_load(p.read_text()).get("schedule")}
    assert scheduled, "no project study has a schedule"
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {f"whybatch__{name}" for name in scheduled}
    dag = bag.dags["whybatch__checkout_experiment"]
    assert dag.timetable.expression == "0 0 * * *" and dag.timetable.__class__.__name__ == "CronDataIntervalTimetable"
    assert dag.max_active_runs == 1 and dag.catchup is False and dag.params["profile"] == "local"
    assert {"whybatch", "experiment"} <= set(dag.tags)
    assert [t.task_id for t in dag.topological_sort()] == ["check_data", "plan", "estimate", "publish"]
    assert dag.get_task("estimate").upstream_task_ids == {"check_data", "plan"}
    assert all(t.retries == 2 for t in dag.tasks)


def test_a_study_that_does_not_parse_is_left_out_with_a_warning_naming_it(study_env):
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"whybatch__tiny_daily", "whybatch__tiny_gated"}
    warned = [w for ws in bag.captured_warnings.values() for w in ws]
    assert any("not scheduled" in w and "broken.yaml" in w and "'d' is not an observed variable" in w
               for w in warned), warned


def test_an_unknown_execution_is_refused_naming_the_known_ones(study_env):
    from airflow_dags.factory import build_dags
    from causal_core.errors import SpecError

    with pytest.raises(SpecError, match=r"'spark_submit_typo'.*\['in_process', 'spark_submit'\]"):
        build_dags(execution="spark_submit_typo")


@pytest.mark.parametrize("execution", ["in_process", "spark_submit"])
def test_parsing_is_quick_and_imports_neither_spark_nor_mlflow(execution):
    """A fresh interpreter: Airflow itself is imported first (every DAG file pays for it);
    then the DAG file's own import is timed and the modules it loaded are listed."""
    code = (
        "import json, sys, time\n"
        "import airflow.sdk\n"
        "t = time.perf_counter()\n"
        "import airflow_dags.whybatch_dags as m\n"
        "seconds = time.perf_counter() - t\n"
        "heavy = sorted({n.split('.')[0] for n in sys.modules} & {'pyspark', 'mlflow', 'great_expectations', 'py4j'})\n"
        "print(json.dumps({'seconds': seconds, 'heavy': heavy,\n"
        "                  'dags': sorted(k for k in vars(m) if k.startswith('whybatch__'))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "WHYBATCH_STUDIES_DIR"}
    env["WHYBATCH_AIRFLOW_EXECUTION"] = execution
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    parsed = json.loads(out.stdout.strip().splitlines()[-1])
    assert parsed["heavy"] == []
    assert parsed["dags"] == ["whybatch__checkout_experiment", "whybatch__discount_observational"]
    # about 2 s idle, most of it causal_core.spec importing scipy; Airflow stops a DAG file's
    # import after core.dagbag_import_timeout (30 s by default)
    assert parsed["seconds"] < 30.0, parsed


def test_the_data_interval_becomes_the_partition_interval():
    from airflow_dags.steps import partition_interval

    start, end = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 2, tzinfo=timezone.utc)
    assert partition_interval(start, end) == ("2026-03-01", "2026-03-02")
    assert partition_interval(end, end) == (None, None)  # @once: the whole table
    assert partition_interval(None, None) == (None, None)


def run_dag(dag_id: str):
    """Parse the DAG folder as Airflow does and run one DAG for LOGICAL_DATE in-process."""
    bag = dagbag()
    assert bag.import_errors == {}
    return bag.dags[dag_id].test(logical_date=LOGICAL_DATE)


def parent_runs(client, spec_file: Path, view=None):
    """The parent runs of the study in ``spec_file`` on INTERVAL, found by its run key (a
    study of the same name on another module's table has another key)."""
    from mlflow.entities import ViewType

    from causal_core.spec import load_spec
    from causal_core.study import Interval, run_key

    key = run_key(load_spec(spec_file), Interval(*INTERVAL))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"tags.`whybatch.run_key` = '{key}'",
                              run_view_type=view or ViewType.ACTIVE_ONLY)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


@pytest.mark.slow
def test_a_study_dag_runs_end_to_end_for_its_interval_and_a_rerun_replaces_it(spark, airflow_db, studies, study_env,
                                                                              tracking_store):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_store)
    first = run_dag("whybatch__tiny_daily")
    assert first.state == "success", [(ti.task_id, ti.state) for ti in first.get_task_instances()]
    assert (first.data_interval_start.date().isoformat(), first.data_interval_end.date().isoformat()) == (
        "2026-03-01", "2026-03-02")
    [earlier] = parent_runs(client, studies / "tiny_daily.yaml")

    second = run_dag("whybatch__tiny_daily")
    assert second.state == "success"
    assert {ti.task_id: ti.state for ti in second.get_task_instances()} == dict.fromkeys(
        ["check_data", "plan", "estimate", "publish"], "success")

    [run] = parent_runs(client, studies / "tiny_daily.yaml")
    assert run.info.run_id != earlier.info.run_id and run.info.status == "FINISHED"
    assert client.get_run(earlier.info.run_id).info.lifecycle_stage == "deleted"
    tags = run.data.tags
    assert (tags["whybatch.interval_start"], tags["whybatch.interval_end"]) == ("2026-03-01", "2026-03-02")

    run_dir = study_env / "tiny_daily" / "2026-03-02"
    result = json.loads((run_dir / "results.json").read_text())
    [row] = [e for e in result["estimates"] if e["estimator"] == "ols"]
    assert result["interval"] == {"start": "2026-03-01", "end": "2026-03-02"}
    assert result["mlflow"]["run_id"] == run.info.run_id and tags["whybatch.run_key"] == result["run_key"]
    assert row["n"] == ROWS_PER_DAY and row["ci_low"] < 2.0 < row["ci_high"] and abs(row["estimate"] - 2.0) < 0.3
    assert run.data.metrics["ols.y.estimate"] == pytest.approx(row["estimate"], rel=1e-12)
    assert json.loads((run_dir / "plan.json").read_text())["y"]["identifiable"] is True
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert result["checks"]["passed"] is True

    table = spark.table("whybatch_results").where("study = 'tiny_daily'")
    assert table.count() == len(result["estimates"])  # the rerun replaced its interval's rows
    assert {r.interval_end for r in table.select("interval_end").distinct().collect()} == {"2026-03-02"}
    deleted = parent_runs(client, studies / "tiny_daily.yaml", ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [earlier.info.run_id]


@pytest.mark.slow
def test_a_study_that_fails_its_checks_fails_its_task_with_the_reason_and_a_failed_run(
        spark, airflow_db, studies, study_env, tracking_store, capfd):
    from mlflow import MlflowClient

    run = run_dag("whybatch__tiny_gated")
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["check_data"] == ("failed", 1)  # not retried: the same data would fail again
    assert {states[t][0] for t in ("plan", "estimate", "publish")} == {"upstream_failed"}
    [failed] = parent_runs(MlflowClient(tracking_store), studies / "tiny_gated.yaml")
    reason = failed.data.tags["whybatch.failure"]
    assert failed.info.status == "FAILED"
    assert reason == (f"the data failed 1 critical check(s):\n  - the interval has {ROWS_PER_DAY} row(s), fewer than "
                      "the 10000 required")  # one day's rows: the interval picked one partition
    assert (failed.data.tags["whybatch.interval_start"], failed.data.tags["whybatch.interval_end"]) == (
        "2026-03-01", "2026-03-02")
    logged = capfd.readouterr()
    assert f"DataCheckError: {reason.splitlines()[0]}" in logged.out + logged.err
    assert not (study_env / "tiny_gated").exists() or not any((study_env / "tiny_gated").rglob("results.json"))
