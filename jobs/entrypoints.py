"""What the CLI, ``spark-submit`` and Airflow call: resolve a study, check it, run it.

Everything that can be checked without Spark — the spec, the Spark profile, the
interval's form, a local data path — is checked before a JVM starts, so bad input costs
milliseconds and exits 2, not a 20-second start and a JVM traceback.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from causal_core.errors import DataCheckError, SpecError, TrackingError, WhybatchError
from causal_core.spec import StudySpec, load_spec
from causal_core.study import Interval, StudyResult
from jobs.progress import SILENT, Progress
from jobs.spark.session import PROJECT_DIR, SparkProfile, load_profile
from jobs.warehouse.read import check_interval, check_source

STUDY_DIRS = (Path("conf/studies"), PROJECT_DIR / "conf" / "studies")


def resolve_study(study: str | Path) -> Path:
    """A study is a YAML path, or a name under ``conf/studies/`` (of the current directory,
    then of the whybatch project), so a name works from any directory."""
    p = Path(study)
    if p.is_file():
        return p
    looked = [p]
    for root in STUDY_DIRS:
        for candidate in (root / f"{study}.yaml", root / f"{study}.yml"):
            looked.append(candidate)
            if candidate.is_file():
                return candidate
    raise SpecError(f"{study}: no such study file (looked for {', '.join(str(c) for c in dict.fromkeys(looked))})")


@dataclass(frozen=True)
class PreparedRun:
    """A study checked as far as it can be without Spark: what :func:`run_study` needs."""

    spec: StudySpec
    interval: Interval
    profile: SparkProfile


def prepare_run(study: str | Path | StudySpec, *, start: str | None = None, end: str | None = None,
                profile: str | SparkProfile = "local") -> PreparedRun:
    """Load the spec and check the profile, the interval, a local data path and the
    ``checks:`` section (no Spark)."""
    from jobs.checks import check_options

    spec = study if isinstance(study, StudySpec) else load_spec(resolve_study(study))
    check_options(spec)
    prof = profile if isinstance(profile, SparkProfile) else load_profile(profile)
    check_interval(spec, start, end)
    check_source(spec)
    return PreparedRun(spec, Interval(start, end), prof)


# What a run imports once Spark has started: the data checks' Great Expectations, the
# estimators, the report's plotting and, when it tracks, MLflow and the results table.
RUN_MODULES = ("great_expectations", "great_expectations.expectations", "jobs.checks.run", "jobs.checks.suite",
               "jobs.estimate", "jobs.report")
TRACK_MODULES = ("mlflow", "jobs.tracking.mlflow_runs", "jobs.tracking.results_table")


def preload(track: bool) -> threading.Thread:
    """Import :data:`RUN_MODULES` (and :data:`TRACK_MODULES` with ``track``) in a daemon
    thread while this one starts Spark: a fresh process spends seconds on these imports,
    and a JVM's start, or a Spark query, waits without holding the interpreter. The run
    imports each module where it needs it as before (waiting for this thread if it is
    still at it); an import that fails here fails there again, with its own message."""
    names = RUN_MODULES + (TRACK_MODULES if track else ())

    def load() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - raised again where the run imports it
                pass

    thread = threading.Thread(target=load, name="whybatch-preload", daemon=True)
    thread.start()
    return thread


def run_study(study: str | Path | StudySpec, *, start: str | None = None, end: str | None = None,
              profile: str | SparkProfile = "local", output: str | Path | None = None,
              spark: Any = None, tracking_uri: str | None = None, track: bool = False,
              report: str | Path | None = None, progress: Progress = SILENT, checks: Any = None) -> StudyResult:
    """Run a study on the partitions in ``[start, end)`` and return its :class:`StudyResult`
    (written to ``output`` as results.json when given).

    ``study`` is a YAML path, a study name under ``conf/studies/`` or a parsed
    :class:`StudySpec`; ``spark`` an existing SparkSession (default: one built from
    ``profile``). The data checks run first; with ``track`` the run is logged to MLflow
    (``tracking_uri``, default the project's SQLite store) and its rows written to the
    ``whybatch_results`` table; ``report`` writes report.html there. Bad input raises
    :class:`causal_core.SpecError` before Spark starts; data that fail a critical check
    raise :class:`causal_core.DataCheckError`; an unreachable tracking store raises
    :class:`causal_core.TrackingError` after results.json is written. ``checks``, a
    :class:`jobs.checks.CheckReport` of these rows made earlier (a scheduled run's own
    check step), stands for the data checks instead of running them again.
    """
    from jobs.spark.session import build_session

    prepared = prepare_run(study, start=start, end=end, profile=profile)
    preload(track)
    session = spark if spark is not None else build_session(prepared.profile)
    return execute(session, prepared, output=output, tracking_uri=tracking_uri, track=track, report=report,
                   progress=progress, checks=checks)


def check_data(spark: Any, prepared: PreparedRun, progress: Progress = SILENT):
    """The data checks on the interval's rows (a :class:`jobs.checks.CheckReport`); the
    frame is cached for the suite's passes and released after."""
    from jobs.checks import needed_columns, run_checks
    from jobs.warehouse.read import add_derived, apply_where, describe_selection, filter_interval, load_source

    spec, interval = prepared.spec, prepared.interval
    with progress.stage("data checks (Great Expectations)") as stage:
        df = load_source(spark, spec.data)
        df = add_derived(apply_where(filter_interval(df, spec.data.partition_column, interval.start, interval.end),
                                     spec.data.where), spec.derived)
        wanted = [c for c in needed_columns(spec, df.columns) if c in df.columns]
        if spec.data.partition_column and spec.data.partition_column not in wanted:
            wanted.append(spec.data.partition_column)
        frame = df.select(*wanted).cache()
        try:
            report = run_checks(spark, spec, frame, end=interval.end,
                                selection=describe_selection(spec, interval.start, interval.end))
        finally:
            frame.unpersist()
        failed = report.critical_failures
        stage.note = f"{len(report.rows)} checks, {len(failed)} critical failures, {len(report.warnings)} warnings"
    if any(r.check == "min_rows" and r.observed == 0 for r in failed):
        # nothing to check: the column types of an empty file say nothing, so only this is said
        raise DataCheckError(f"0 rows in {describe_selection(spec, interval.start, interval.end)}: nothing to "
                             "check or estimate")
    return report


def execute(spark: Any, prepared: PreparedRun, *, output: str | Path | None = None, tracking_uri: str | None = None,
            track: bool = False, report: str | Path | None = None, progress: Progress = SILENT,
            checks: Any = None) -> StudyResult:
    """Checks -> estimates, refutations -> results.json -> report -> results table -> MLflow,
    on a session that is already up (see :func:`run_study`; ``checks`` as there). A run
    that fails its checks or cannot be estimated is logged as FAILED when tracked, then
    raises."""
    from jobs.checks import fit_checks, raise_for_critical
    from jobs.estimate import estimate_study

    spec, interval = prepared.spec, prepared.interval
    try:
        checks = check_data(spark, prepared, progress) if checks is None else checks
        raise_for_critical(checks)
        result = estimate_study(spark, spec, interval, progress=progress)
    except DataCheckError as exc:
        if track:
            _log_failure(prepared, str(exc), tracking_uri)
        raise
    checks = checks.with_rows(fit_checks(result))
    result = replace(result, checks=checks.to_dict())
    if output is not None:
        write_results(result, output)
    artifacts = {}
    if report is not None:
        with progress.stage("report"):
            artifacts["report.html"] = write_report_for(spark, result, spec, report, track)
    if track:
        from jobs.tracking.mlflow_runs import log_study
        from jobs.tracking.results_table import write_results_table

        with progress.stage("results table whybatch_results") as stage:
            stage.rows = write_results_table(spark, result)
        checks_file = Path(output).with_name("checks.json") if output is not None else None
        if checks_file is not None:
            import json

            checks_file.write_text(json.dumps(checks.to_json_dict(), indent=1, default=str), encoding="utf-8")
            artifacts["checks.json"] = checks_file
        with progress.stage("MLflow") as stage:
            result = log_study(result, spec, tracking_uri=tracking_uri, artifacts=artifacts)
            stage.note = f"run {result.mlflow['run_id']} at {result.mlflow['tracking_uri']}"
        if output is not None:
            write_results(result, output)
    return result


def validate_study(spark: Any, prepared: PreparedRun, progress: Progress = SILENT) -> tuple[Any, dict | None]:
    """``whybatch validate``: the data checks and graph validation, nothing estimated. The
    graph is validated with the spec's ``graph_validation`` options, or the defaults."""
    from causal_core.refuters.registry import get_refuter
    from jobs.refute import make_refuters, validate_graph_on_data

    checks = check_data(spark, prepared, progress)
    refuters = [r for r in make_refuters(prepared.spec) if r.study_level] or [get_refuter("graph_validation")()]
    with progress.stage("graph validation") as stage:
        graph = validate_graph_on_data(spark, prepared.spec, prepared.interval, refuters)
        if graph and graph.get("rows") is not None:
            stage.rows = graph["rows"]
    return checks, graph


def load_results(source: str | Path, tracking_uri: str | None = None) -> StudyResult:
    """A results.json file, or the results.json artifact of an MLflow run id."""
    p = Path(source)
    if p.is_file():
        return StudyResult.from_json(p.read_text(encoding="utf-8"))
    from jobs.tracking.runs_read import download_results

    return download_results(str(source), tracking_uri=tracking_uri)


def write_report_for(spark: Any, result: StudyResult, spec: StudySpec, path: str | Path, history: bool) -> Path:
    """report.html for ``result``; a tracked study's report charts its past intervals."""
    from jobs.report import write_report

    past = None
    if history:
        from jobs.tracking.results_table import read_history

        past = read_history(spark, spec.name)
    return write_report(result, path, spec=spec, history=past)


def _log_failure(prepared: PreparedRun, reason: str, tracking_uri: str | None) -> None:
    from jobs.tracking.mlflow_runs import log_failed_run

    try:
        log_failed_run(prepared.spec, prepared.interval, reason, tracking_uri=tracking_uri)
    except TrackingError:
        pass  # the failure itself is what the caller reports


def write_results(result: StudyResult, path: str | Path) -> Path:
    """Write results.json: the result's ``to_json()``, which ``StudyResult.from_json`` reads back."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(result.to_json(), encoding="utf-8")
    return p
