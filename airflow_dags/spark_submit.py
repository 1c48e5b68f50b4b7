"""The ``spark_submit`` execution: a study's Spark steps as ``spark-submit`` applications.

The same four tasks as ``in_process``, in the same order::

    check_data >> plan >> estimate >> publish

- ``check_data`` submits ``jobs/submit.py STUDY --checks-only`` (the data checks of
  :func:`jobs.submit.check_step`; data_checks.json in the run directory).
- ``plan`` is a Python task in the worker (no Spark): :func:`airflow_dags.steps.plan`.
- ``estimate`` submits ``jobs/submit.py STUDY --checks-from data_checks.json`` —
  ``whybatch run`` on the interval with the check step's report standing for the data
  checks: estimates, bootstrap, refutations, results.json, report.html, the
  ``whybatch_results`` table and the MLflow run, which replaces an earlier run of the
  same run key.
- ``publish`` is a Python task in the worker: :func:`airflow_dags.steps.published` reads
  the MLflow run back and returns its id.

Each submission is :func:`jobs.submit.submission` for the run's Spark profile (the DAG
param ``profile``): its master, its warehouse, metastore, log and conf as ``--conf``
pairs, the worker's Python as the driver's and the executors', pyspark's
``spark-submit``. The driver runs in the worker (client mode), so the run directory and
the tracking store are the worker's. :class:`SparkSubmitHook` takes the master from an
Airflow connection: the task defines the connection ``whybatch_spark`` from the
profile's master, as an environment variable of its own process
(``AIRFLOW_CONN_WHYBATCH_SPARK``), so the profile is the one place that says where
the study runs.

An application that exits 1 (the study failed its checks, or could not be estimated)
or 2 (bad input) fails its task at once, as the ``in_process`` tasks do; any other
failure — a tracking store that is down, a lost driver — is left to the retries.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

try:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"the spark_submit execution needs the package apache-airflow-providers-apache-spark ({exc.name} is "
        "missing): `make install` installs it (with --no-deps, so that it keeps the project's pyspark)",
        name=exc.name) from exc

from airflow_dags.factory import ScheduledStudy, fail_fast, run_args
from causal_core.errors import WhybatchError
from jobs.submit import EXIT_BAD_INPUT, EXIT_STUDY_FAILED, submission

SPARK_CONN_ID = "whybatch_spark"
FINAL_EXITS = {EXIT_STUDY_FAILED: "the study failed its checks or could not be estimated",
               EXIT_BAD_INPUT: "bad input"}


class StudySubmitOperator(SparkSubmitOperator):
    """``spark-submit jobs/submit.py`` for one step of a study run: the application, its
    arguments, conf and master are those of :func:`jobs.submit.submission` for the run's
    interval and Spark profile, known when the task runs."""

    def __init__(self, *, study: str, study_name: str, checks_only: bool, **kwargs: Any) -> None:
        super().__init__(conn_id=SPARK_CONN_ID, **kwargs)
        self.study = study
        self.study_name = study_name
        self.checks_only = checks_only

    def execute(self, context: Any) -> None:
        from airflow_dags.steps import run_files  # at run time only: it imports Spark

        start, end, profile = run_args()
        files = run_files(self.study_name, end)
        args = [self.study, *(["--start", start] if start else []), *(["--end", end] if end else [])]
        if self.checks_only:
            args += ["--checks-only", "--output", str(files.data_checks)]
        else:
            args += ["--output", str(files.results), "--report", str(files.report),
                     "--checks-from", str(files.data_checks)]
        try:
            job = submission(profile, args)
        except WhybatchError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        self.application, self.application_args, self.name = str(job.application), list(job.args), job.name
        self.conf = dict(job.conf)
        # the hook runs "spark-submit" from the PATH: pyspark's, which submission() names
        self.env_vars = {"PATH": os.pathsep.join([str(job.binary.parent), os.environ.get("PATH", "")])}
        with _connection(SPARK_CONN_ID, job.master):
            try:
                super().execute(context)
            except Exception as exc:
                code = self._exit_code()
                if code not in FINAL_EXITS:
                    raise
                raise AirflowFailException(f"jobs/submit.py exited {code} ({FINAL_EXITS[code]}): not retried, "
                                           f"a retry would fail the same way: {_error_lines(str(exc))}") from exc

    def _exit_code(self) -> int | None:
        """spark-submit's exit code, which is the application's (client mode)."""
        process = getattr(self._hook, "_submit_sp", None)  # the hook keeps its Popen under this name
        return None if process is None else process.returncode


def add_tasks(study: ScheduledStudy) -> None:
    """The four tasks of ``study`` (see the module docstring)."""
    source, name = str(study.path), study.spec.name

    @task(task_id="plan")
    def plan() -> str:
        from airflow_dags.steps import run_files

        start, end, _ = run_args()
        return fail_fast("plan", source, start, end, str(run_files(name, end).root))

    @task(task_id="publish")
    def publish() -> str:
        start, end, _ = run_args()
        return fail_fast("published", source, start, end)

    check_data = StudySubmitOperator(task_id="check_data", study=source, study_name=name, checks_only=True)
    estimate = StudySubmitOperator(task_id="estimate", study=source, study_name=name, checks_only=False)
    planned = check_data >> plan()
    [check_data, planned] >> estimate >> publish()


@contextmanager
def _connection(conn_id: str, master: str) -> Iterator[None]:
    """The Airflow connection ``conn_id`` with ``master`` as an environment variable of this
    process while the block runs (Airflow reads ``AIRFLOW_CONN_<ID>`` before its other
    stores); the variable's earlier value, if any, is put back after."""
    key = f"AIRFLOW_CONN_{conn_id.upper()}"
    saved = os.environ.get(key)
    os.environ[key] = json.dumps({"conn_type": "spark", "host": master})
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def _error_lines(message: str) -> str:
    """The application's ``error:`` line and what follows it in spark-submit's output, as
    quoted in the hook's error; the whole message when there is none."""
    found = re.search(r"^error: .*", message, flags=re.MULTILINE | re.DOTALL)
    return found.group(0).removeprefix("error: ") if found else message
