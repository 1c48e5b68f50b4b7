"""One Airflow DAG per study that has a ``schedule``: id ``whybatch__<study>``.

A DAG is four tasks, each a thin call into :mod:`airflow_dags.steps`::

    check_data >> plan >> estimate >> publish

The DAG run's data interval is the partition interval ``[start, end)`` (as dates, UTC).
Airflow 3 gives a cron schedule a point in time, not an interval, unless it is a
``CronDataIntervalTimetable``; the factory builds one from the spec's cron or preset, so a
daily run reads exactly the previous day's partition. ``@once`` runs once over the whole
table.

Parsing reads the study YAML files and nothing else: no Spark, no MLflow, no warehouse.
A spec that does not parse leaves its study unscheduled with a warning naming the file
and the problem (the DagBag's warnings), and the other studies keep their DAGs.

How the tasks run is an *execution*, picked with ``WHYBATCH_AIRFLOW_EXECUTION``
(:data:`EXECUTIONS`), each with the same four task ids. Both take the Spark profile from
the DAG param ``profile`` (default ``WHYBATCH_PROFILE``, else ``local``).

- ``in_process`` runs the steps in the Airflow worker, on a session from the profile —
  ``local[*]`` in the worker, or any profile :func:`jobs.spark.session.build_session` can
  open, such as a Spark Connect server.
- ``spark_submit`` (:mod:`airflow_dags.spark_submit`) runs the two Spark steps as
  ``spark-submit`` applications on the profile's master with ``SparkSubmitOperator``;
  it needs the package apache-airflow-providers-apache-spark (``make install``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from causal_core.errors import SpecError, TrackingError, WhybatchError
from causal_core.spec import StudySpec, load_spec
from jobs.spark.session import PROJECT_DIR

STUDIES_DIR_ENV = "WHYBATCH_STUDIES_DIR"
PROFILE_ENV = "WHYBATCH_PROFILE"
EXECUTION_ENV = "WHYBATCH_AIRFLOW_EXECUTION"
DAG_PREFIX = "whybatch__"
TASK_IDS = ("check_data", "plan", "estimate", "publish")
# Only the first scheduled run after deployment needs a start in the past; with catchup
# off no earlier interval is run.
START_DATE = pendulum.datetime(2024, 1, 1, tz="UTC")
DEFAULT_ARGS = {"owner": "whybatch", "retries": 2, "retry_delay": timedelta(minutes=5)}


@dataclass(frozen=True)
class ScheduledStudy:
    """A study to schedule: its spec file (the tasks load it again when they run, so an
    edited spec takes effect at the next run) and the parsed spec."""

    path: Path
    spec: StudySpec

    @property
    def dag_id(self) -> str:
        return f"{DAG_PREFIX}{self.spec.name}"


def studies_dir() -> Path:
    """``WHYBATCH_STUDIES_DIR``, else ``conf/studies`` in the whybatch project."""
    return Path(os.environ.get(STUDIES_DIR_ENV) or PROJECT_DIR / "conf" / "studies").expanduser()


def scheduled_studies(root: Path | None = None) -> Iterator[ScheduledStudy]:
    """The studies under ``root`` that have a ``schedule``, by file name. A file that does
    not parse is skipped with a warning that names it and says why."""
    root = studies_dir() if root is None else root
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            spec = load_spec(path)
        except SpecError as exc:
            warnings.warn(f"not scheduled: {exc}", stacklevel=2)
            continue
        if spec.schedule is not None:
            yield ScheduledStudy(path, spec)


def timetable(schedule: str) -> Any:
    """The Airflow schedule for a spec's ``schedule``: ``@once`` as is, any other preset or
    cron expression as a :class:`CronDataIntervalTimetable` in UTC, whose data interval
    runs from the previous tick to this one."""
    return schedule if schedule == "@once" else CronDataIntervalTimetable(schedule, timezone="UTC")


def build_dag(study: ScheduledStudy, *, execution: str = "in_process", profile: str = "local",
              catchup: bool = False, start_date: pendulum.DateTime = START_DATE) -> DAG:
    """The DAG of one scheduled study: the four tasks of ``execution``, one active run at a
    time, retries for what may pass on a second try (a lost executor, a tracking store
    that was down) and none for a study that fails its checks."""
    add_tasks = _execution(execution)
    spec = study.spec
    doc = "\n\n".join(filter(None, [f"whybatch study **{spec.name}** ({study.path})", spec.description,
                                    f"Reads {spec.data.table or spec.data.path}, partitions `[data_interval_start, "
                                    f"data_interval_end)` of `{spec.data.partition_column}`."]))
    with DAG(dag_id=study.dag_id, schedule=timetable(spec.schedule), start_date=start_date, catchup=catchup,
             max_active_runs=1, default_args=DEFAULT_ARGS, tags=["whybatch", spec.design], doc_md=doc,
             description=f"whybatch study {spec.name}: check data, plan, estimate and refute, publish",
             params={"profile": Param(profile, type="string", description="Spark profile (conf/spark/<profile>.yaml)")},
             ) as dag:
        add_tasks(study)
    return dag


def build_dags(root: Path | None = None, **options: Any) -> dict[str, DAG]:
    """Every scheduled study's DAG by id; ``options`` go to :func:`build_dag`, with the
    execution from ``WHYBATCH_AIRFLOW_EXECUTION`` and the profile from
    ``WHYBATCH_PROFILE`` unless given."""
    options.setdefault("execution", os.environ.get(EXECUTION_ENV) or "in_process")
    options.setdefault("profile", os.environ.get(PROFILE_ENV) or "local")
    _execution(options["execution"])  # a bad setting fails once, before any study
    return {s.dag_id: build_dag(s, **options) for s in scheduled_studies(root)}


def in_process_tasks(study: ScheduledStudy) -> None:
    """The four steps as Python tasks in the worker; each passes a path or a key on."""
    source = str(study.path)

    @task(task_id="check_data")
    def check_data() -> str:
        start, end, profile = run_args()
        return fail_fast("check", source, start, end, profile)

    @task(task_id="plan")
    def plan(run_dir: str) -> str:
        start, end, _ = run_args()
        return fail_fast("plan", source, start, end, run_dir)

    @task(task_id="estimate")
    def estimate(run_dir: str, run_key: str) -> str:
        """``run_key`` (plan's result) only orders this task after plan."""
        start, end, profile = run_args()
        return fail_fast("estimate", source, start, end, run_dir, profile)

    @task(task_id="publish")
    def publish(results: str) -> str:
        start, end, profile = run_args()
        return fail_fast("publish", source, start, end, results, profile)

    run_dir = check_data()
    publish(estimate(run_dir, plan(run_dir)))


def spark_submit_tasks(study: ScheduledStudy) -> None:
    """check_data and estimate as ``spark-submit`` applications, plan and publish in the
    worker (:func:`airflow_dags.spark_submit.add_tasks`). Imported here, when a DAG uses
    it, so the DAG file parses without the Spark provider."""
    from airflow_dags.spark_submit import add_tasks

    add_tasks(study)


EXECUTIONS: dict[str, Callable[[ScheduledStudy], None]] = {"in_process": in_process_tasks,
                                                           "spark_submit": spark_submit_tasks}


def _execution(name: str) -> Callable[[ScheduledStudy], None]:
    try:
        return EXECUTIONS[name]
    except KeyError:
        raise SpecError(f"{EXECUTION_ENV}={name!r}: unknown execution; expected one of {sorted(EXECUTIONS)}",
                        ((EXECUTION_ENV, f"one of {sorted(EXECUTIONS)}"),)) from None


def run_args() -> tuple[str | None, str | None, str]:
    """The running task's partition interval (:func:`airflow_dags.steps.partition_interval`)
    and Spark profile."""
    from airflow_dags.steps import partition_interval

    context = get_current_context()
    start, end = partition_interval(context.get("data_interval_start"), context.get("data_interval_end"))
    return start, end, context["params"]["profile"]


def fail_fast(step: str, *args: Any) -> str:
    """Run the step named ``step`` of :mod:`airflow_dags.steps`. A study that failed its
    checks or cannot be run fails its task at once, with the reason, instead of being
    retried (a retry would read the same data); anything else, a tracking store that is
    down among them, is left to the retries."""
    from airflow_dags import steps  # at run time only: it imports Spark

    try:
        return getattr(steps, step)(*args)
    except TrackingError:
        raise
    except WhybatchError as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
