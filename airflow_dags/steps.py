"""The four steps of a scheduled study run, as thin calls into :mod:`jobs.entrypoints`.

check data -> plan -> estimate and refute -> publish. Each step takes and returns small
values (a study file, the interval's bounds, a run directory, a run key, an MLflow run
id); what passes between steps is a file in the run directory::

    <WHYBATCH_RUNS_DIR or <project>/runs>/<study>/<interval end or "all">/
        data_checks.json   the data checks (CheckReport.to_dict), written by check
        plan.json          one estimand plan per outcome metric, written by plan
        results.json       the StudyResult, written by estimate, read back by publish
        checks.json        GX's validation result, the MLflow artifact
        report.html        written by publish

The ``spark_submit`` execution writes the same files: its check application
(``jobs/submit.py --checks-only``, the :func:`jobs.submit.check_step` that :func:`check`
calls) writes data_checks.json, its estimate application (``whybatch run`` on the
interval) results.json, checks.json, report.html and the MLflow run, and
:func:`published` reads the run back.

A step is a transaction keyed on the interval: running it again overwrites its files
and, in MLflow and the results table, replaces that interval's run (the run key).
Nothing here imports Airflow, so a test can call the steps as they are. A study whose
data fail a critical check, or that cannot be estimated, raises its
:class:`~causal_core.errors.WhybatchError` after recording a FAILED run in MLflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from jobs.entrypoints import PreparedRun, prepare_run
from jobs.spark.session import PROJECT_DIR

RUNS_DIR_ENV = "WHYBATCH_RUNS_DIR"


@dataclass(frozen=True)
class RunFiles:
    """The files of one study and interval in its run directory."""

    root: Path

    @property
    def data_checks(self) -> Path:
        return self.root / "data_checks.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def checks(self) -> Path:
        return self.root / "checks.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"


def runs_dir() -> Path:
    """Where run directories go: ``WHYBATCH_RUNS_DIR``, else ``runs/`` in the project."""
    return Path(os.environ.get(RUNS_DIR_ENV) or PROJECT_DIR / "runs").expanduser()


def run_files(study: str, end: str | None) -> RunFiles:
    """The run directory of ``study`` for the interval ending at ``end`` (``all`` for a run
    over the whole table)."""
    return RunFiles(runs_dir() / study / (end or "all"))


def partition_interval(start: datetime | None, end: datetime | None) -> tuple[str | None, str | None]:
    """A DAG run's data interval as the partition interval ``[start, end)``, ISO dates.

    A point (``start == end``: an ``@once`` run, or a run without a data interval) reads
    the whole table. The bounds are compared as dates, so a schedule finer than a day
    gives an empty interval, which :func:`jobs.entrypoints.prepare_run` rejects by name.
    """
    if start is None or end is None or start == end:
        return None, None
    return start.date().isoformat(), end.date().isoformat()


def check(study: str, start: str | None, end: str | None, profile: str = "local",
          tracking_uri: str | None = None) -> str:
    """Check the spec, then the interval's data (Great Expectations); write
    data_checks.json and return the run directory. Data that fail a critical check raise
    :class:`~causal_core.errors.DataCheckError` after a FAILED run is recorded
    (:func:`jobs.submit.check_step`, what the ``spark_submit`` execution submits)."""
    from jobs.submit import check_step

    prepared = prepare_run(study, start=start, end=end, profile=profile)
    files = run_files(prepared.spec.name, end)
    check_step(_session(prepared), prepared, files.data_checks, tracking_uri=tracking_uri)
    return str(files.root)


def plan(study: str, start: str | None, end: str | None, run_dir: str) -> str:
    """Identify the effect of each outcome metric; write plan.json and return the run key.
    A metric that is not identifiable is reported by the estimate step, as by
    ``whybatch run``."""
    from causal_core.study import run_key
    from causal_core.study.plans import plan_study

    prepared = prepare_run(study, start=start, end=end)
    plans = plan_study(prepared.spec)
    _write_json(RunFiles(Path(run_dir)).plan, {metric: p.to_dict() for metric, p in plans.items()})
    return run_key(prepared.spec, prepared.interval)


def estimate(study: str, start: str | None, end: str | None, run_dir: str, profile: str = "local",
             tracking_uri: str | None = None) -> str:
    """Estimate, bootstrap and refute on the interval's rows; add the fitted-result checks
    to the data checks; write results.json and return its path."""
    from jobs.checks import fit_checks
    from jobs.checks.report import CheckReport
    from jobs.entrypoints import write_results
    from jobs.estimate import estimate_study
    from jobs.submit import failures_recorded

    prepared = prepare_run(study, start=start, end=end, profile=profile)
    files = RunFiles(Path(run_dir))
    with failures_recorded(prepared, tracking_uri):
        result = estimate_study(_session(prepared), prepared.spec, prepared.interval)
    checks = CheckReport.from_dict(json.loads(files.data_checks.read_text(encoding="utf-8")))
    checks = checks.with_rows(fit_checks(result))
    _write_json(files.checks, checks.to_json_dict())
    return str(write_results(replace(result, checks=checks.to_dict()), files.results))


def publish(study: str, start: str | None, end: str | None, results: str, profile: str = "local",
            tracking_uri: str | None = None) -> str:
    """From results.json: report.html (with the study's past intervals), the results
    table and the MLflow run (replacing an earlier run of the same run key); results.json
    is rewritten with its ``mlflow`` field. Returns the MLflow run id."""
    from jobs.entrypoints import load_results, write_report_for, write_results
    from jobs.tracking.mlflow_runs import log_study
    from jobs.tracking.results_table import write_results_table

    prepared = prepare_run(study, start=start, end=end, profile=profile)
    files = RunFiles(Path(results).parent)
    result = load_results(files.results)
    spark = _session(prepared)
    artifacts = {"report.html": write_report_for(spark, result, prepared.spec, files.report, True)}
    write_results_table(spark, result)
    if files.checks.is_file():
        artifacts["checks.json"] = files.checks
    logged = log_study(result, prepared.spec, tracking_uri=tracking_uri, artifacts=artifacts)
    write_results(logged, files.results)
    return logged.mlflow["run_id"]


def published(study: str, start: str | None, end: str | None, tracking_uri: str | None = None) -> str:
    """The publish step of the ``spark_submit`` execution, in the worker: the estimate
    application has written report.html, the results table and the MLflow run; this
    reads the run id from results.json and that run's results back from the tracking
    store the worker sees, so a driver that logged elsewhere fails here, naming the
    store. Returns the MLflow run id."""
    from causal_core.errors import TrackingError
    from jobs.entrypoints import load_results
    from jobs.tracking.runs_read import download_results

    prepared = prepare_run(study, start=start, end=end)
    files = run_files(prepared.spec.name, end)
    result = load_results(files.results)
    if not result.mlflow:
        raise TrackingError(f"{files.results} names no MLflow run: the estimate step ran without tracking")
    run_id = result.mlflow["run_id"]
    logged = download_results(run_id, tracking_uri=tracking_uri)
    if logged.run_key != result.run_key:
        raise TrackingError(f"MLflow run {run_id} is of run key {logged.run_key!r}, not {result.run_key!r} "
                            f"({files.results})")
    return run_id


def _session(prepared: PreparedRun):
    from jobs.spark.session import build_session

    return build_session(prepared.profile)


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
