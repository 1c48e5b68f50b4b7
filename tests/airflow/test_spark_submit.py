"""The ``spark_submit`` execution: the DAG's shape, parsing without the Spark provider, and
whole DAG runs whose Spark steps are real ``spark-submit`` processes (``local[2]``, then
a standalone cluster), compared with the ``in_process`` execution on the same interval.

The study, its tiny daily-partitioned table, the run directories and the MLflow store are
those of ``test_dags.py``; the submitted applications get a Spark profile of their own
whose warehouse, metastore and Spark log are in a temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.airflow.test_dags import (  # noqa: F401 - studies and study_env are fixtures
    INTERVAL,
    LOGICAL_DATE,
    ROWS_PER_DAY,
    dagbag,
    parent_runs,
    run_dag,
    studies,
    study_env,
)
from tests.e2e.test_cluster import cluster  # noqa: F401 - the standalone cluster fixture
from tests.jobs.test_connect import SESSION_CONF

ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("estimator", "metric", "contrast", "segment", "n", "estimate", "se", "ci_low", "ci_high", "p_value")


@pytest.fixture(scope="module")
def submit_profile(tmp_path_factory) -> Path:
    """``local[2]`` with a Hive metastore, the shipped profiles' catalog, so a second
    application sees the results table the first one created."""
    root = tmp_path_factory.mktemp("submit-profile")
    doc = {"master": "local[2]", "app_name": "whybatch-airflow-test", "warehouse_dir": str(root / "warehouse"),
           "metastore_dir": str(root / "metastore_db"), "log_dir": str(root / "logs"), "conf": SESSION_CONF}
    (root / "submit.yaml").write_text(yaml.safe_dump(doc))
    return root / "submit.yaml"


@pytest.fixture
def submitting(study_env, submit_profile, monkeypatch):
    """The DAG file builds spark_submit DAGs on the test's profile."""
    monkeypatch.setenv("WHYBATCH_AIRFLOW_EXECUTION", "spark_submit")
    monkeypatch.setenv("WHYBATCH_PROFILE", str(submit_profile))
    return study_env


@pytest.fixture(scope="module")
def in_process_result(spark, airflow_db, studies, tmp_path_factory):
    """tiny_daily's results.json from the in_process execution, on the test session."""
    runs = tmp_path_factory.mktemp("in-process-runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WHYBATCH_STUDIES_DIR", str(studies))
        patch.setenv("WHYBATCH_RUNS_DIR", str(runs))
        patch.setenv("WHYBATCH_AIRFLOW_EXECUTION", "in_process")
        patch.delenv("WHYBATCH_PROFILE", raising=False)  # local: the test session
        done = run_dag("whybatch__tiny_daily")
    assert done.state == "success"
    return json.loads((runs / "tiny_daily" / INTERVAL[1] / "results.json").read_text())


def numbers(result: dict) -> list[tuple]:
    return [tuple(e[k] for k in COMPARED) for e in result["estimates"]]


def assert_same_numbers(got: dict, expected: dict) -> None:
    """The same rows, every number within 1e-9 of the in_process one (relative)."""
    assert len(got["estimates"]) == len(expected["estimates"]) > 0
    for row, want in zip(numbers(got), numbers(expected), strict=True):
        assert row[:5] == want[:5]
        assert row[5:] == pytest.approx(want[5:], rel=1e-9, nan_ok=True)


def test_the_spark_submit_dags_have_the_in_process_shape(submitting):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"whybatch__tiny_daily", "whybatch__tiny_gated"}
    dag = bag.dags["whybatch__tiny_daily"]
    assert [t.task_id for t in dag.topological_sort()] == ["check_data", "plan", "estimate", "publish"]
    assert dag.get_task("estimate").upstream_task_ids == {"check_data", "plan"}
    assert dag.get_task("publish").upstream_task_ids == {"estimate"}
    assert {t.task_id for t in dag.tasks if isinstance(t, SparkSubmitOperator)} == {"check_data", "estimate"}
    assert all(t.retries == 2 for t in dag.tasks)
    assert dag.params["profile"] == os.environ["WHYBATCH_PROFILE"]


def test_without_the_provider_only_the_spark_submit_execution_fails_and_names_the_package():
    """A fresh interpreter where the provider's operators cannot be imported (``None`` in
    ``sys.modules`` is how Python marks a module as absent; the provider's metadata stays,
    which Airflow's provider registry reads)."""
    code = (
        "import json, sys\n"
        "sys.modules['airflow.providers.apache.spark.operators'] = None\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "out = {}\n"
        "for execution in ('in_process', 'spark_submit'):\n"
        "    import os; os.environ['WHYBATCH_AIRFLOW_EXECUTION'] = execution\n"
        "    bag = DagBag(dag_folder=sys.argv[1])\n"
        "    out[execution] = [sorted(bag.dag_ids), list(bag.import_errors.values())]\n"
        "print(json.dumps(out))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "WHYBATCH_STUDIES_DIR"}
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "airflow_dags")], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["in_process"] == [["whybatch__checkout_experiment", "whybatch__discount_observational"], []]
    dags, [error] = out["spark_submit"]
    assert dags == []
    assert ("the spark_submit execution needs the package apache-airflow-providers-apache-spark "
            "(airflow.providers.apache.spark.operators.spark_submit is missing): `make install` installs it") in error


def test_a_profile_without_a_master_fails_the_task_at_once_before_any_submission(airflow_db, submitting, capfd):
    run = dagbag().dags["whybatch__tiny_daily"].test(logical_date=LOGICAL_DATE, run_conf={"profile": "connect"})
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert states["check_data"] == ("failed", 1)
    assert {states[t][0] for t in ("plan", "estimate", "publish")} == {"upstream_failed"}
    logged = capfd.readouterr()
    assert ("SpecError: profile 'connect' is a Spark Connect client (remote: sc://127.0.0.1:15002); spark-submit "
            "needs a master") in logged.out + logged.err
    assert "Spark-Submit cmd" not in logged.out + logged.err


@pytest.mark.slow
def test_the_submitted_run_equals_in_process_and_a_rerun_leaves_one_run(spark, airflow_db, studies, submitting,
                                                                       submit_profile, in_process_result,
                                                                       tracking_store, capfd):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_store)
    first = run_dag("whybatch__tiny_daily")
    assert first.state == "success", [(ti.task_id, ti.state) for ti in first.get_task_instances()]
    logged = capfd.readouterr()
    assert "--master local[2]" in logged.out + logged.err  # the hook's spark-submit command, on the profile's master
    # the estimate application takes the check application's report: the data are checked once
    assert "--checks-from" in logged.out + logged.err
    assert (logged.out + logged.err).count("done data checks (Great Expectations)") == 1
    [earlier] = parent_runs(client, studies / "tiny_daily.yaml")

    second = run_dag("whybatch__tiny_daily")
    assert {ti.task_id: ti.state for ti in second.get_task_instances()} == dict.fromkeys(
        ["check_data", "plan", "estimate", "publish"], "success")
    [run] = parent_runs(client, studies / "tiny_daily.yaml")
    assert run.info.run_id != earlier.info.run_id and run.info.status == "FINISHED"
    assert (run.data.tags["whybatch.interval_start"], run.data.tags["whybatch.interval_end"]) == INTERVAL
    assert second.get_task_instance("publish").xcom_pull(task_ids="publish") == run.info.run_id

    run_dir = submitting / "tiny_daily" / INTERVAL[1]
    result = json.loads((run_dir / "results.json").read_text())
    assert result["interval"] == dict(zip(("start", "end"), INTERVAL))
    assert result["mlflow"]["run_id"] == run.info.run_id and run.data.tags["whybatch.run_key"] == result["run_key"]
    assert result["run_key"] == in_process_result["run_key"]
    assert_same_numbers(result, in_process_result)
    [ols] = [e for e in result["estimates"] if e["estimator"] == "ols"]
    assert ols["n"] == ROWS_PER_DAY and abs(ols["estimate"] - 2.0) < 0.3  # the day of the planted effect 2.0
    assert run.data.metrics["ols.y.estimate"] == pytest.approx(ols["estimate"], rel=1e-12)
    data_checks = json.loads((run_dir / "data_checks.json").read_text())
    assert data_checks["passed"] is True and data_checks["critical_failures"] == 0
    assert json.loads((run_dir / "plan.json").read_text())["y"]["identifiable"] is True
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")

    # the applications' results table, in the profile's warehouse: the rerun replaced its rows
    warehouse = Path(yaml.safe_load(submit_profile.read_text())["warehouse_dir"])
    rows = spark.read.parquet(str(warehouse / "whybatch_results")).where("study = 'tiny_daily'")
    assert rows.count() == len(result["estimates"])
    assert {r.run_key for r in rows.select("run_key").distinct().collect()} == {result["run_key"]}


def test_a_missing_or_foreign_check_report_is_bad_input_before_spark_starts(studies, tmp_path, capsys):
    from jobs.submit import EXIT_BAD_INPUT, main

    study = str(studies / "tiny_daily.yaml")
    assert main([study, "--checks-from", str(tmp_path / "data_checks.json")]) == EXIT_BAD_INPUT
    assert "data_checks.json: no such file (the --checks-only run writes it)" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"estimates": []}')
    assert main([study, "--checks-from", str(tmp_path / "other.json")]) == EXIT_BAD_INPUT
    assert "not a check report written by --checks-only" in capsys.readouterr().err


@pytest.mark.slow
def test_a_submitted_check_that_fails_fails_its_task_at_once_with_the_reason(spark, airflow_db, studies, submitting,
                                                                            tracking_store, capfd):
    from mlflow import MlflowClient

    run = run_dag("whybatch__tiny_gated")
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["check_data"] == ("failed", 1)  # exit 1: not retried
    assert {states[t][0] for t in ("plan", "estimate", "publish")} == {"upstream_failed"}
    [failed] = parent_runs(MlflowClient(tracking_store), studies / "tiny_gated.yaml")
    reason = f"the interval has {ROWS_PER_DAY} row(s), fewer than the 10000 required"
    assert failed.info.status == "FAILED" and failed.data.tags["whybatch.failure"].endswith(reason)
    assert (failed.data.tags["whybatch.interval_start"], failed.data.tags["whybatch.interval_end"]) == INTERVAL
    logged = capfd.readouterr()
    text = logged.out + logged.err
    assert "error: DataCheckError: the data failed 1 critical check(s):" in text  # the application's own line
    assert "jobs/submit.py exited 1 (the study failed its checks or could not be estimated): not retried" in text
    assert reason in text
    assert not (submitting / "tiny_gated").exists() or not any((submitting / "tiny_gated").rglob("*.json"))


@pytest.mark.slow
@pytest.mark.spark
def test_the_study_submitted_to_a_standalone_cluster_equals_in_process(spark, airflow_db, studies, submitting,
                                                                     cluster, in_process_result, tracking_store,
                                                                     monkeypatch):
    from mlflow import MlflowClient

    profile = cluster.profile()
    doc = yaml.safe_load(profile.read_text())
    profile.write_text(yaml.safe_dump({**doc, "hive": True}))  # the results table in a metastore, as shipped
    monkeypatch.setenv("WHYBATCH_PROFILE", str(profile))
    done = run_dag("whybatch__tiny_daily")
    assert done.state == "success", [(ti.task_id, ti.state) for ti in done.get_task_instances()]
    result = json.loads((submitting / "tiny_daily" / INTERVAL[1] / "results.json").read_text())
    assert_same_numbers(result, in_process_result)
    [run] = parent_runs(MlflowClient(tracking_store), studies / "tiny_daily.yaml")
    assert run.info.run_id == result["mlflow"]["run_id"]
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.ui_port}/json/", timeout=10) as answer:
        master = json.load(answer)
    # the master ran both applications, check_data's and estimate's, under the profile's name
    assert [a["name"] for a in master["completedapps"]].count(doc["app_name"]) == 2
    assert cluster.alive_workers() == 2
