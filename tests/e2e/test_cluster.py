"""A study on a real Spark standalone cluster: a master and two workers on 127.0.0.1 started
with ``spark-class`` (1 core and 1 GB each, tracked and stopped by process id), the study
submitted with the ``spark-submit`` command that ``jobs.submit`` prints. The cluster gives
the local session's numbers to the last bit (exact sums), also when a worker is killed in
the middle of the run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from jobs.spark.server import pid_alive, port_answers, spark_home, stop_process
from tests.jobs.test_connect import SESSION_CONF, free_port, study_numbers, write_study

pytestmark = [pytest.mark.spark, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
INTERVAL = ("2026-11-01", "2026-11-04")
ROWS = 20_000


def children(pid: int) -> list[int]:
    """The process ids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


class Cluster:
    """A standalone master and its workers, each a ``spark-class`` JVM known by its pid."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.pids: dict[str, int] = {}
        self.env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
                    "SPARK_DAEMON_MEMORY": "256m", "SPARK_WORKER_DIR": str(root / "work"),
                    "SPARK_LOCAL_DIRS": str(root / "local"), "SPARK_CONNECT_MODE": "0"}

    def launch(self, name: str, main_class: str, *args: str) -> int:
        """Start a daemon detached; ``spark-class`` execs the JVM, so the pid is the JVM's."""
        log = open(self.root / f"{name}.log", "ab")
        process = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), main_class, *args], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                   start_new_session=True)
        log.close()
        self.pids[name] = process.pid
        (self.root / f"{name}.pid").write_text(f"{process.pid}\n")
        return process.pid

    def start(self, workers: int = 2, timeout: float = 180) -> None:
        self.launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        self.wait(lambda: port_answers("127.0.0.1", self.port), timeout, "the master's port")
        for i in range(1, workers + 1):
            self.launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
                        "--memory", "1g", "--webui-port", str(free_port()), self.url)
        self.wait(lambda: self.alive_workers() == workers, timeout, f"{workers} workers registered")

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as answer:
                state = json.load(answer)
        except OSError:
            return -1
        return sum(w["state"] == "ALIVE" for w in state["workers"])

    def wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [n for n, pid in self.pids.items() if not pid_alive(pid)]
            assert not dead, f"{dead} exited while waiting for {what}; logs in {self.root}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s; logs in {self.root}"
            time.sleep(0.5)

    def stop(self) -> None:
        """Workers first (they stop their executors), then the master; by pid, waiting."""
        for name, pid in sorted(self.pids.items(), key=lambda item: item[0] == "master"):
            executors = children(pid) if pid_alive(pid) else []
            stop_process(pid, timeout=30)
            for child in executors:
                stop_process(child, timeout=30)

    def profile(self) -> Path:
        """A profile for this cluster (the shipped standalone profile's shape, files here)."""
        shipped = yaml.safe_load((ROOT / "conf" / "spark" / "standalone.yaml").read_text())
        conf = {**shipped["conf"], **SESSION_CONF, "spark.executor.memory": "512m"}
        doc = {**shipped, "master": self.url, "hive": False, "warehouse_dir": str(self.root / "warehouse"),
               "metastore_dir": str(self.root / "metastore_db"), "log_dir": str(self.root / "logs"), "conf": conf}
        path = self.root / "standalone.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()
    assert not [n for n, pid in c.pids.items() if pid_alive(pid)]


@pytest.fixture(scope="module")
def study(spark, tmp_path_factory):
    """The demo customers study and its results on the local session (the reference)."""
    from jobs.entrypoints import run_study

    root = tmp_path_factory.mktemp("cluster-study")
    path = write_study(spark, root, ROWS)
    run_study(path, start=INTERVAL[0], end=INTERVAL[1], spark=spark, output=root / "local.json")
    return path, json.loads((root / "local.json").read_text())


def submit(cluster: Cluster, study: Path, output: Path) -> subprocess.Popen:
    """Start ``spark-submit jobs/submit.py`` for the study on the cluster (the command printed
    by ``python -m jobs.submit --print-command``). spark-submit merges the Python driver's
    stderr into its stdout, so the stage lines arrive on the stdout pipe."""
    printed = subprocess.run([sys.executable, "-m", "jobs.submit", "--print-command", "--profile",
                              str(cluster.profile()), str(study), "--start", INTERVAL[0], "--end", INTERVAL[1],
                              "--no-track", "--output", str(output)], capture_output=True, text=True, cwd=ROOT,
                             check=True)
    command = shlex.split(printed.stdout.strip())
    assert command[:3] == [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.url]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "SPARK_CONNECT_MODE": "0"})


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    """Wait for the run; its output (stage lines and the result)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}\n{out}\n{err}"
    return out


def test_a_study_on_the_cluster_equals_local_mode(cluster, study, tmp_path):
    path, local = study
    out = finish(submit(cluster, path, tmp_path / "cluster.json"))
    assert "done Spark session from spark-submit" in out and "ols" in out
    remote = json.loads((tmp_path / "cluster.json").read_text())
    assert remote["rows"] == local["rows"] > 10_000
    assert study_numbers(remote) == study_numbers(local)
    assert cluster.alive_workers() == 2


def test_a_worker_killed_mid_run_changes_nothing(cluster, study, tmp_path):
    """SIGKILL one worker (by pid) once the data checks are done: its executor goes with it,
    Spark reruns the lost tasks on the other worker, and the results are the same."""
    path, local = study
    process = submit(cluster, path, tmp_path / "faulted.json")
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("done data checks"):
            break
    assert lines and lines[-1].startswith("done data checks"), "".join(lines)
    victim = cluster.pids["worker1"]
    executors = children(victim)
    os.kill(victim, signal.SIGKILL)
    after = finish(process)
    assert after.count("done ") >= 2, after  # the fits and refutations ran after the kill
    remote = json.loads((tmp_path / "faulted.json").read_text())
    assert study_numbers(remote) == study_numbers(local)
    assert not pid_alive(victim)
    driver_log = (cluster.root / "logs" / "spark.log").read_text()  # the profile's log_dir
    assert "Lost executor" in driver_log and "worker lost" in driver_log
    for child in executors:  # the executor lost its worker and exited
        deadline = time.monotonic() + 60
        while pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not pid_alive(child)
    assert cluster.alive_workers() == 1
