"""The estimation code on a Spark Connect session: a real ``SparkConnectServer`` started with
``whybatch server start`` (on a free port, stopped by its process id at the end) gives the
same moment arrays and the same study results as the classic session."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from causal_core.moments import col, exp, log, sigmoid
from jobs.spark.engine import SparkMomentEngine, with_buckets
from jobs.spark.server import is_server_process, pid_alive, port_answers, read_pid
from jobs.spark.session import DEBUGGING, LATERAL_ALIASES, load_profile, session_conf

pytestmark = pytest.mark.spark
ROOT = Path(__file__).resolve().parents[2]
WHYBATCH = [sys.executable, "-m", "jobs.cli"]
K = 40
# the `spark` fixture's session settings, so that the server differs from it only by Connect
SESSION_CONF = {"spark.sql.shuffle.partitions": "4", "spark.default.parallelism": "4", "spark.ui.enabled": "false",
                "spark.sql.session.timeZone": "UTC", "spark.sql.ansi.enabled": "false", "spark.driver.memory": "1g"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def whybatch(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the ``whybatch`` command line in a fresh process."""
    done = subprocess.run([*WHYBATCH, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"whybatch {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def write_profiles(root: Path, port: int) -> Path:
    """A served profile (local[2], no Hive, files under ``root``) and a Connect profile whose
    server runs it on ``port``; returns the Connect profile's path."""
    served = {"master": "local[2]", "hive": False, "warehouse_dir": str(root / "warehouse"),
              "metastore_dir": str(root / "metastore_db"), "log_dir": str(root / "logs"), "conf": SESSION_CONF}
    connect = {"remote": f"sc://127.0.0.1:{port}", "log_dir": str(root / "logs"),
               "server": {"profile": str(root / "served.yaml"), "port": port}}
    (root / "served.yaml").write_text(yaml.safe_dump(served))
    (root / "connect.yaml").write_text(yaml.safe_dump(connect))
    return root / "connect.yaml"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Connect server started by ``whybatch server start``; stopped by ``whybatch server
    stop`` (by its pid) at the end, which must leave no process behind."""
    root = tmp_path_factory.mktemp("connect")
    profile = write_profiles(root, free_port())
    pid_file = root / "logs" / "connect-server.pid"
    try:
        started = whybatch("server", "start", "--profile", str(profile))
        pid = read_pid(pid_file)
        yield {"profile": profile, "pid": pid, "started": started.stdout, "url": load_profile(str(profile)).remote}
    finally:
        pid = read_pid(pid_file)
        stopped = whybatch("server", "stop", "--profile", str(profile), check=False)
        assert stopped.returncode == 0, stopped.stderr
        assert pid is None or not pid_alive(pid)
        assert not pid_file.exists()


@contextlib.contextmanager
def connect_session(url: str):
    """A Connect session in this process, next to the classic ``spark`` fixture. pyspark picks
    the implementation of ``pyspark.sql.functions`` per process (``SPARK_CONNECT_MODE_ENABLED``,
    which creating the session sets): it is cleared on exit so the classic session's
    expressions are classic again."""
    from pyspark.sql import SparkSession

    before = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    session = SparkSession.builder.remote(url).create()
    try:
        yield session
    finally:
        session.stop()
        if before is None:
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def test_server_start_status_and_a_second_start(server):
    """``start`` wrote the JVM's pid and says where things are; ``status`` finds that process
    running; a second ``start`` says it is running and starts nothing."""
    pid = server["pid"]
    assert pid is not None and is_server_process(pid)
    assert f"running (pid {pid})" in server["started"] and server["url"] in server["started"]
    port = int(server["url"].rsplit(":", 1)[1])
    assert port_answers("127.0.0.1", port)
    shown = whybatch("server", "status", "--profile", str(server["profile"]))
    assert f"running (pid {pid})" in shown.stdout
    again = whybatch("server", "start", "--profile", str(server["profile"]))
    assert "already running" in again.stdout and f"pid {pid}" in again.stdout
    assert read_pid(server["profile"].parent / "logs" / "connect-server.pid") == pid


def test_status_of_a_server_that_is_not_running(tmp_path):
    profile = write_profiles(tmp_path, free_port())
    shown = whybatch("server", "status", "--profile", str(profile), check=False)
    assert shown.returncode == 1 and "not running" in shown.stdout
    assert "no Spark Connect server was running" in whybatch("server", "stop", "--profile", str(profile)).stdout


def test_a_run_against_no_server_names_the_url(tmp_path):
    profile = write_profiles(tmp_path, free_port())
    done = whybatch("run", "discount_observational", "--profile", str(profile), "--no-track", "--quiet",
                    "--output", str(tmp_path / "r.json"), check=False)
    assert done.returncode == 1
    assert "no Spark Connect server answers at sc://127.0.0.1:" in done.stderr and "whybatch server start" in done.stderr


RICH = [col("x"), col("x") * col("y"), col("y") * col("y"), exp(col("x")), log(col("y")),
        sigmoid(col("x") * 0.7 - col("d")), col("z").gt(0.5), col("c").eq(2.0) * col("y")]


def moments(session, data: pd.DataFrame, exact: bool) -> dict[str, np.ndarray]:
    """Every kind of pass of the Spark engine on ``data`` (bucketed by unit ``u``)."""
    sdf = with_buckets(session.createDataFrame(data), K, "u")
    engine = SparkMomentEngine(sdf, n_buckets=K, exact=exact)
    totals = engine.totals(RICH, [col("x"), col("z")])
    return {"bucket_sums": engine.bucket_sums(RICH), "grouped_sums": engine.grouped_sums(RICH[:4], col("c"), 5),
            "totals": totals.sums, "low": totals.low, "high": totals.high,
            "cluster_cross_sums": engine.cluster_cross_sums([col("x") * col("d"), col("z")]),
            "unit_counts": engine.unit_counts()}


@pytest.mark.slow
def test_moment_sums_on_connect_equal_the_classic_session(spark, server):
    """Exact sums are bit-identical on the two sessions; plain double sums agree to 1e-10."""
    rng = np.random.default_rng(3)
    n = 4000
    data = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n) * 1e3 + 5e3,
                         "d": rng.integers(0, 2, n).astype(float), "z": rng.standard_t(3, size=n),
                         "c": rng.integers(0, 5, n).astype(float), "u": rng.integers(0, 300, n)})
    classic = {exact: moments(spark, data, exact) for exact in (True, False)}
    with connect_session(server["url"]) as remote:
        assert type(remote).__module__ == "pyspark.sql.connect.session"
        connect = {exact: moments(remote, data, exact) for exact in (True, False)}
    assert connect[True]["bucket_sums"].shape == (K, len(RICH)) and connect[True]["unit_counts"].sum() == 300
    for name, want in classic[True].items():
        np.testing.assert_array_equal(connect[True][name], want, err_msg=name)
    for name, want in classic[False].items():
        np.testing.assert_allclose(connect[False][name], want, rtol=1e-10, atol=0, err_msg=name)
    assert abs(connect[True]["bucket_sums"][:, 0].sum() - data["x"].sum()) < 1e-9


STUDY = """
name: discount_connect
design: observational
data: {path: PATH, format: parquet, partition_column: snapshot_date, unit_id: customer_id, nulls: drop,
       buckets: 200, exact_sums: true}
derived:
  long_tenure: "CAST(tenure_months >= 24 AS INT)"
graph: |
  age -> discount -> spend
  age -> spend
  long_tenure -> discount
  long_tenure -> spend
  region -> discount
  region -> spend
treatment: discount
outcome: spend
treatment_values: {treated: 1, control: 0}
encode: {age: [age, age * age], region: categorical}
estimators: [ols, {ipw: {trim: 0.01}}]
bootstrap: {replicates: 200, seed: 7}
refuters: [{placebo_treatment: {simulations: 20}}, {data_subset: {simulations: 20}}]
"""

COMPARED = ("estimator", "metric", "segment", "estimate", "se", "ci_low", "ci_high", "p_value", "n")


def study_numbers(results: dict) -> tuple[list, list]:
    """The estimates and refutations of a results.json, as comparable tuples."""
    estimates = [tuple(e[k] for k in COMPARED) for e in results["estimates"]]
    refutations = [(r["refuter"], r["estimator"], r["new_effect"], r["p_value"], r["passed"])
                   for r in results["refutations"]]
    return estimates, refutations


def write_study(spark, root: Path, rows: int) -> Path:
    """The demo customers table (known effects) as partitioned Parquet, and a study of it."""
    from jobs.warehouse.demo import customers

    table, _ = customers(spark, rows)
    table.write.mode("overwrite").partitionBy("snapshot_date").parquet(str(root / "customers"))
    path = root / "study.yaml"
    path.write_text(STUDY.replace("PATH", str(root / "customers")))
    return path


@pytest.mark.slow
def test_a_study_through_whybatch_run_on_connect_equals_the_classic_session(spark, server, tmp_path):
    """``whybatch run --profile <connect>`` in a fresh process (no JVM of its own) writes the
    same results.json numbers, to the last bit, as the study on the classic session."""
    from jobs.entrypoints import run_study

    study = write_study(spark, tmp_path, 6000)
    classic = run_study(study, start="2026-11-01", end="2026-11-04", spark=spark, output=tmp_path / "classic.json")
    assert classic.estimated and len(classic.estimates) == 2
    whybatch("run", str(study), "--start", "2026-11-01", "--end", "2026-11-04", "--profile", str(server["profile"]),
             "--no-track", "--quiet", "--output", str(tmp_path / "connect.json"))
    remote = json.loads((tmp_path / "connect.json").read_text())
    local = json.loads((tmp_path / "classic.json").read_text())
    assert remote["rows"] == local["rows"] > 3000
    assert study_numbers(remote) == study_numbers(local)
    assert len(study_numbers(remote)[1]) == 3  # placebo for ols, data subsets for both


def test_sessions_turn_call_site_capture_off_and_lateral_aliases_on_unless_a_profile_says_otherwise(tmp_path):
    from dataclasses import replace

    profile = replace(load_profile("local"), warehouse_dir=str(tmp_path / "w"), metastore_dir=str(tmp_path / "m"))
    assert session_conf(profile)[DEBUGGING] == "false"
    assert session_conf(profile)[LATERAL_ALIASES] == "true"
    on = replace(profile, conf=(*profile.conf, (DEBUGGING, "true")))
    assert session_conf(on)[DEBUGGING] == "true"


def test_no_jvm_handles_outside_the_session_module():
    """SparkContext, RDDs and py4j handles exist on classic sessions only: the estimation code
    must not touch them, or it would fail on Connect."""
    forbidden = {"sparkContext", "rdd", "_jvm", "_jsc", "_jdf", "SparkContext"}
    offenders = {}
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() == "jobs/spark/session.py":
            continue
        names = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        names |= {node.id for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Name)}
        if names & forbidden:
            offenders[path.relative_to(ROOT).as_posix()] = sorted(names & forbidden)
    assert offenders == {}
    planted = ast.parse("def f(spark):\n    return spark.sparkContext.defaultParallelism\n")
    assert {n.attr for n in ast.walk(planted) if isinstance(n, ast.Attribute)} & forbidden == {"sparkContext"}
