"""A whole run logged to a real ``mlflow server`` on 127.0.0.1, read back over HTTP.

The server is started by the fixture (SQLite backend and proxied artifacts under the
test's directory), waited for on ``/health`` and stopped by its process id.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import ViewType

from causal_core.study import StudyResult
from jobs.estimate import estimate_study
from jobs.tracking.mlflow_runs import log_failed_run, log_study
from tests.jobs.test_tracking import DAY_1, study_spec, write_study_data

pytestmark = [pytest.mark.slow, pytest.mark.spark]

START_TIMEOUT_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` in its own process group; the finalizer stops that group by id."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    mlflow = Path(sys.executable).with_name("mlflow")
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)

    def stop():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        log.close()

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _healthy(uri):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop()
            pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield uri, root
    stop()


def test_a_run_logged_to_a_server_reads_back_and_reruns_replace(spark, server, tmp_path):
    """Over HTTP: a FAILED run, then the study's run replacing it (metrics equal to the
    result's, artifacts stored under the server's --artifacts-destination), then a rerun
    that leaves one active parent with its child."""
    uri, root = server
    path = tmp_path / "rows"
    write_study_data(spark, path)
    spec = study_spec(path, lean=True)
    result = estimate_study(spark, spec, DAY_1)
    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")

    failed = log_failed_run(spec, DAY_1, "EstimationError: the treatment is constant", tracking_uri=uri)
    logged = log_study(result, spec, tracking_uri=uri, artifacts={"report.html": report})
    assert logged.mlflow["tracking_uri"] == uri
    client = MlflowClient(uri)
    run = client.get_run(logged.mlflow["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["whybatch.run_key"] == result.run_key
    assert run.data.params["treatment"] == "d" and run.data.params["adjustment.y"] == "{x}"
    for e in result.estimated:
        prefix = "ols.y" + ("" if e.segment == "all" else "." + e.segment.replace("=", "_"))
        assert run.data.metrics[f"{prefix}.estimate"] == pytest.approx(e.estimate, rel=1e-12)
        assert run.data.metrics[f"{prefix}.ci_high"] == pytest.approx(e.ci_high, rel=1e-12)

    assert {f.path for f in client.list_artifacts(run.info.run_id)} >= {"results.json", "plan.json", "report.html"}
    text = Path(client.download_artifacts(run.info.run_id, "results.json", str(tmp_path))).read_text()
    assert StudyResult.from_json(text) == logged
    assert list((root / "artifacts").rglob("results.json")), "artifacts are stored under --artifacts-destination"

    again = log_study(result, spec, tracking_uri=uri).mlflow
    runs = client.search_runs([again["experiment_id"]], f"tags.`whybatch.run_key` = '{result.run_key}'",
                              run_view_type=ViewType.ACTIVE_ONLY)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_id for p in parents] == [again["run_id"]]
    assert [c.data.tags["mlflow.parentRunId"] for c in runs if c not in parents] == [again["run_id"]]
    for replaced in (failed["run_id"], logged.mlflow["run_id"]):
        assert client.get_run(replaced).info.lifecycle_stage == "deleted"

