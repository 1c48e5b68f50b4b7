"""Shared fixtures: one local SparkSession for the whole test session (STYLE.md §10)."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def tracking_store():
    """Runs that track (the CLI's default) log to a SQLite store of the test session, never
    to the project's mlflow.db."""
    root = tempfile.mkdtemp(prefix="whybatch-test-mlflow-")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    yield os.environ["MLFLOW_TRACKING_URI"]
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def spark():
    """A real local Spark session: 2 cores, few shuffle partitions, UI off."""
    from pyspark.sql import SparkSession

    from jobs.spark.session import DEBUGGING

    warehouse = tempfile.mkdtemp(prefix="whybatch-test-warehouse-")
    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("whybatch-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.driver.memory", "2g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.ansi.enabled", "false")
        .config(DEBUGGING, "false")  # as whybatch's own sessions (jobs.spark.session.session_conf)
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
    shutil.rmtree(warehouse, ignore_errors=True)
