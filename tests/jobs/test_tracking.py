"""MLflow runs on a real SQLite tracking store, and the results table on real Spark.

Every value asserted is read back from the store or the table and compared with the
numbers of a real ``estimate_study`` run on a tiny Parquet study.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from causal_core.spec import parse_spec
from causal_core.study import Interval, StudyResult
from jobs.estimate import estimate_study
from jobs.spark.session import PROJECT_DIR
from jobs.tracking.mlflow_runs import (
    DEFAULT_TRACKING_URI, TrackingError, estimate_metrics, log_failed_run, log_study, refutation_metrics,
    resolve_tracking_uri,
)
from jobs.tracking.results_table import read_history, write_results_table

pytestmark = pytest.mark.spark

SPEC = """
name: tracked
data: {path: PATH, format: parquet, partition_column: day}
graph: |
  x -> d -> y
  x -> y
treatment: d
outcome: y
estimators: [ols, {ols: {interactions: false}}]
bootstrap: {replicates: 50, seed: SEED}
segments: [region]
refuters:
  - placebo_treatment: {simulations: 20}
tracking: whybatch-tests
"""
DAY_1 = Interval("2024-01-01", "2024-01-02")
DAY_2 = Interval("2024-01-02", "2024-01-03")


def write_study_data(spark, path: Path) -> None:
    """Two days of 400 rows: a confounded binary treatment with effect 2, two regions."""
    rng = np.random.default_rng(7)
    rows = []
    for day in (dt.date(2024, 1, 1), dt.date(2024, 1, 2)):
        x = rng.normal(size=400)
        d = (rng.uniform(size=400) < 1 / (1 + np.exp(-x))).astype(int)
        y = 2.0 * d + x + rng.normal(size=400)
        region = np.where(rng.uniform(size=400) < 0.5, "north", "south")
        rows += [(day, float(a), int(b), float(c), str(r)) for a, b, c, r in zip(x, d, y, region)]
    spark.createDataFrame(rows, "day date, x double, d int, y double, region string") \
        .coalesce(1).write.mode("overwrite").parquet(str(path))


def study_spec(path: Path, seed: int = 3, lean: bool = False):
    """The tracked study; ``lean``: one ols per segment, no refuter (cheaper, for the table)."""
    text = SPEC.replace("PATH", str(path)).replace("SEED", str(seed))
    if lean:
        text = text.replace("[ols, {ols: {interactions: false}}]", "[ols]").split("refuters:")[0]
    return parse_spec(text)


@pytest.fixture(scope="module")
def study(spark, tmp_path_factory):
    """(spec, result on day 1, data path): one real estimation shared by the MLflow tests."""
    path = tmp_path_factory.mktemp("tracked") / "rows"
    write_study_data(spark, path)
    spec = study_spec(path)
    return spec, estimate_study(spark, spec, DAY_1), path


def sqlite_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"


def active_runs(client: MlflowClient, experiment_id: str, key: str):
    runs = client.search_runs([experiment_id], f"tags.`whybatch.run_key` = '{key}'",
                              run_view_type=ViewType.ACTIVE_ONLY)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_logged_run_reads_back_with_the_results_numbers(study, tmp_path):
    """Parent run: tags, params, every estimate and refutation metric equal to the
    result's; artifacts results.json (with the mlflow field), plan.json and report.html
    under mlartifacts/ beside the database; one child per estimator holding its metrics."""
    spec, result, _ = study
    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    uri = sqlite_uri(tmp_path)
    logged = log_study(result, spec, tracking_uri=uri, artifacts={"report.html": report})

    run_id = logged.mlflow["run_id"]
    assert logged == replace(result, mlflow={"run_id": run_id, "experiment_id": logged.mlflow["experiment_id"],
                                             "tracking_uri": uri})
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("whybatch-tests")
    assert experiment.experiment_id == logged.mlflow["experiment_id"]
    assert experiment.artifact_location.startswith((tmp_path / "store" / "mlartifacts").as_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked 2024-01-01..2024-01-02"
    tags = run.data.tags
    assert {k: tags[k] for k in ("whybatch.study", "whybatch.run_key", "whybatch.interval_start",
                                 "whybatch.interval_end", "whybatch.spec_hash", "whybatch.status")} == {
        "whybatch.study": "tracked", "whybatch.run_key": result.run_key, "whybatch.interval_start": "2024-01-01",
        "whybatch.interval_end": "2024-01-02", "whybatch.spec_hash": spec.spec_hash(),
        "whybatch.status": "FINISHED"}
    assert tags["whybatch.code_version"].startswith("0.1.0")
    assert tags.get("mlflow.note.content", "") == "\n".join(result.warnings)  # no note without warnings

    params = run.data.params
    assert params["graph"] == spec.graph.to_text() and "x -> d" in params["graph"]
    assert (params["treatment"], params["outcome"]) == ("d", "y")
    assert params["estimators"] == "ols, ols(interactions=False)"
    assert (params["bootstrap.replicates"], params["bootstrap.seed"]) == ("50", "3")
    assert (params["strategy.y"], params["adjustment.y"]) == ("backdoor.optimal", "{x}")
    assert params["spec_hash"] == spec.spec_hash()

    metrics = run.data.metrics
    by_name = {(e.estimator, e.segment): [] for e in result.estimated}
    for e in result.estimated:
        by_name[(e.estimator, e.segment)].append(e)
    assert len(result.estimated) == 6  # 2 estimators x (all, north, south)
    for (estimator, segment), rows in by_name.items():
        for k, e in enumerate(rows, start=1):
            label = estimator + (f"-{k}" if k > 1 else "")
            prefix = f"{label}.y" + ("" if segment == "all" else "." + segment.replace("=", "_"))
            for stat in ("estimate", "se", "ci_low", "ci_high", "n"):
                assert metrics[f"{prefix}.{stat}"] == pytest.approx(getattr(e, stat), rel=1e-12), (prefix, stat)
    assert {e.segment for e in result.estimated} == {"all", "region=north", "region=south"}
    assert "ols-2.y.region_north.estimate" in metrics and "ols-3.y.estimate" not in metrics
    assert abs(metrics["ols.y.estimate"] - 2.0) < 4 * metrics["ols.y.se"]
    assert metrics["rows"] == result.rows == 400
    assert result.refutations and all(r["refuter"] == "placebo_treatment" for r in result.refutations)
    seen: list[str] = []
    for r in result.refutations:  # the second ols of the spec is ols-2 here too
        seen.append(r["estimator"])
        label = f"refute.placebo_treatment.{r['estimator']}" + (f"-{seen.count(r['estimator'])}"
                                                                if seen.count(r["estimator"]) > 1 else "")
        assert metrics[f"{label}.y.passed"] == float(r["passed"])
        assert metrics[f"{label}.y.new_effect"] == pytest.approx(r["new_effect"], rel=1e-12)

    names = {f.path for f in client.list_artifacts(run_id)}
    assert {"results.json", "plan.json", "report.html"} <= names
    downloaded = Path(client.download_artifacts(run_id, "results.json", str(tmp_path)))
    assert StudyResult.from_json(downloaded.read_text()) == logged
    plans = json.loads(Path(client.download_artifacts(run_id, "plan.json", str(tmp_path))).read_text())
    assert plans == {m: json.loads(p.to_json()) for m, p in result.plan.items()}

    parents, children = active_runs(client, experiment.experiment_id, result.run_key)
    assert [p.info.run_id for p in parents] == [run_id]
    assert sorted(c.info.run_name for c in children) == ["ols", "ols-2"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == run_id and child.info.status == "FINISHED"
        label = child.info.run_name
        assert child.data.metrics == {k: v for k, v in metrics.items() if k.startswith(f"{label}.")}
        assert child.data.params["estimator"] == label.split("-")[0]


def test_logging_the_same_run_again_leaves_one_active_parent(study, tmp_path):
    """Same study, interval and spec: the second log replaces the first (deleted with its
    children); a FAILED run of that key is replaced by a later success in the same way."""
    spec, result, _ = study
    uri = sqlite_uri(tmp_path)
    first = log_study(result, spec, tracking_uri=uri).mlflow
    second = log_study(result, spec, tracking_uri=uri).mlflow
    client = MlflowClient(uri)
    parents, children = active_runs(client, second["experiment_id"], result.run_key)
    assert [p.info.run_id for p in parents] == [second["run_id"]]
    assert len(children) == 2 and {c.data.tags["mlflow.parentRunId"] for c in children} == {second["run_id"]}
    assert client.get_run(first["run_id"]).info.lifecycle_stage == "deleted"

    failed = log_failed_run(spec, DAY_1, "DataCheckError: partition 2024-01-01 is empty", tracking_uri=uri)
    run = client.get_run(failed["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["whybatch.status"] == "FAILED"
    assert run.data.tags["whybatch.failure"] == "DataCheckError: partition 2024-01-01 is empty"
    assert run.data.tags["whybatch.run_key"] == result.run_key and run.data.params["treatment"] == "d"
    assert not run.data.metrics
    assert [p.info.run_id for p in active_runs(client, failed["experiment_id"], result.run_key)[0]] == [
        failed["run_id"]]

    again = log_study(result, spec, tracking_uri=uri).mlflow
    parents, _ = active_runs(client, again["experiment_id"], result.run_key)
    assert [(p.info.run_id, p.info.status) for p in parents] == [(again["run_id"], "FINISHED")]
    assert client.get_run(failed["run_id"]).info.lifecycle_stage == "deleted"


def test_a_tracking_server_that_is_down_fails_in_seconds_naming_it(study, tmp_path):
    """Nothing listens on the port: TrackingError names the URI and says results.json is
    kept, long before MLflow's own retries would give up."""
    spec, result, _ = study
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with pytest.raises(TrackingError) as err:
        log_study(result, spec, tracking_uri=uri)
    assert time.perf_counter() - t0 < 30  # MLflow's own retries would take minutes
    assert uri in str(err.value) and "results.json" in str(err.value)
    with pytest.raises(TrackingError, match=uri):
        log_failed_run(spec, DAY_1, "whatever", tracking_uri=uri)


def test_missing_artifacts_are_refused_before_any_run_starts(study, tmp_path):
    spec, result, _ = study
    uri = sqlite_uri(tmp_path)
    with pytest.raises(TrackingError, match=r"report.html: no such file.*results.json: whybatch writes|"
                                            r"results.json: whybatch writes.*report.html: no such file"):
        log_study(result, spec, tracking_uri=uri,
                  artifacts={"report.html": tmp_path / "absent.html", "results.json": tmp_path})
    assert not (tmp_path / "store" / "mlflow.db").exists()


def test_the_tracking_uri_is_the_argument_then_the_environment_then_the_project_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI == f"sqlite:///{PROJECT_DIR}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri() == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"


def test_metric_names_carry_the_contrast_when_a_study_has_several(study):
    """Arms B and C against A: the contrast joins each name, reduced to MLflow's characters;
    refutations without a verdict log no .passed."""
    _, result, _ = study
    ols = result.estimated[0]
    rows = (replace(ols, contrast="arm: B vs A"), replace(ols, contrast="arm: C vs A", estimate=ols.estimate + 1))
    names = estimate_metrics(rows)
    assert names["ols.y.arm_B_vs_A.estimate"] == ols.estimate
    assert names["ols.y.arm_C_vs_A.estimate"] == ols.estimate + 1
    refuted = refutation_metrics(({"refuter": "sensitivity", "estimator": "ols", "metric": "y", "segment": "all",
                                   "new_effect": 0.5, "p_value": None, "passed": None, "details": {}},))
    assert refuted == {"refute.sensitivity.ols.y.new_effect": 0.5}


def test_the_results_table_keeps_one_partition_per_interval_and_reruns_replace_it(spark, study):
    """Two intervals give two partitions; rerunning day 1 with another bootstrap seed
    replaces day 1's rows (same count, the new run's numbers) and leaves day 2 alone."""
    path = study[2]
    day1 = estimate_study(spark, study_spec(path, lean=True), DAY_1)
    table = "tracking_test_results"
    spark.sql(f"DROP TABLE IF EXISTS {table}")
    assert read_history(spark, "tracked", table).empty
    day2 = estimate_study(spark, study_spec(path, lean=True), DAY_2)
    assert write_results_table(spark, day2, table) == len(day2.estimates) == 3
    assert write_results_table(spark, day1, table) == 3
    assert [r[0] for r in spark.sql(f"SHOW PARTITIONS {table}").collect()] == [
        "study=tracked/interval_end=2024-01-02", "study=tracked/interval_end=2024-01-03"]

    history = read_history(spark, "tracked", table)
    assert list(history["interval_end"]) == ["2024-01-02"] * 3 + ["2024-01-03"] * 3
    first = history[history["interval_end"] == "2024-01-02"]
    expected = sorted((e.metric, e.estimator, e.segment, e.estimate, e.se) for e in day1.estimates)
    assert sorted(first[["metric", "estimator", "segment", "estimate", "se"]].itertuples(index=False, name=None)) \
        == expected

    rerun = estimate_study(spark, study_spec(path, seed=4, lean=True), DAY_1)
    write_results_table(spark, rerun, table)
    after = read_history(spark, "tracked", table)
    assert len(after) == 6
    replaced = after[after["interval_end"] == "2024-01-02"]
    assert set(replaced["run_key"]) == {rerun.run_key} != {day1.run_key}
    assert sorted(replaced["se"]) == sorted(e.se for e in rerun.estimates) != sorted(first["se"])
    assert list(after[after["interval_end"] == "2024-01-03"]["se"]) == list(
        history[history["interval_end"] == "2024-01-03"]["se"])
    assert read_history(spark, "someone_else", table).empty
    spark.sql(f"DROP TABLE {table}")
