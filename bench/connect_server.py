"""Spark profiles of the benchmarks' own, and a Spark Connect server started and stopped by one.

A benchmark that runs ``whybatch run`` processes gives them profiles written under its
data dir, so they never touch the project's ``warehouse/`` (nor its Derby metastore, which
one process at a time may open — a Connect server holds it for as long as it runs):

* :func:`write_local_profile` — the ``local`` profile's master and conf, with the warehouse,
  metastore and logs under a directory of its own and extra conf (an event log);
* :func:`write_connect_profile` — a Connect client profile whose server serves such a
  profile on a free port.

:class:`ConnectServer` starts the server with ``whybatch server start --profile <yaml>``
and, on leaving, stops it with ``whybatch server stop`` and makes sure the process it
started (by the pid ``start`` wrote) is gone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def whybatch_command() -> list[str]:
    """The ``whybatch`` command of this checkout's venv (``python -m jobs.cli`` without one)."""
    exe = REPO / ".venv" / "bin" / "whybatch"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "jobs.cli"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_local_profile(root: Path, conf: dict[str, str] | None = None) -> Path:
    """``<root>/local.yaml``: the project's ``local`` profile (master, Hive catalog, conf)
    with its warehouse, Derby metastore and Spark log under ``root``, plus ``conf``."""
    from jobs.spark.session import load_profile

    base = load_profile("local")
    root.mkdir(parents=True, exist_ok=True)
    doc = {"master": base.master, "app_name": base.app_name, "hive": base.hive,
           "warehouse_dir": str(root / "spark-warehouse"), "metastore_dir": str(root / "metastore_db"),
           "log_dir": str(root / "logs"), "conf": {**dict(base.conf), **(conf or {})}}
    path = root / "local.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_connect_profile(root: Path, served: Path, port: int) -> Path:
    """``<root>/connect.yaml``: a Connect client of ``sc://127.0.0.1:<port>`` whose server runs
    the profile ``served`` (its pid file and log under ``<root>/logs``)."""
    doc = {"remote": f"sc://127.0.0.1:{port}", "log_dir": str(root / "logs"),
           "server": {"profile": str(served), "host": "127.0.0.1", "port": port}}
    path = root / "connect.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class ConnectServer:
    """``whybatch server start --profile <profile>`` on entering (``seconds``: until the server
    answered; ``pid``: its process); on leaving, also after an error, ``whybatch server stop``
    and, should that leave the started process alive, SIGTERM then SIGKILL to that pid."""

    def __init__(self, profile: Path, timeout: float = 300.0) -> None:
        self.profile, self.timeout = profile, timeout
        self.pid: int | None = None

    def __enter__(self) -> ConnectServer:
        from jobs.spark.server import read_pid, status

        current = status(str(self.profile))
        if current.running:
            raise SystemExit(f"a Connect server of {self.profile} already runs (pid {current.pid}); stop it first")
        pid_file, self.log_file = current.pid_file, current.log_file
        t0 = time.perf_counter()
        done = subprocess.run([*whybatch_command(), "server", "start", "--profile", str(self.profile),
                               "--timeout", str(self.timeout)], capture_output=True, text=True)
        self.seconds = time.perf_counter() - t0
        self.pid = read_pid(pid_file)
        if done.returncode != 0:
            self.__exit__()
            raise AssertionError(f"whybatch server start exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        self.started = done.stdout.strip()
        return self

    def __exit__(self, *exc) -> None:
        from jobs.spark.server import pid_alive, stop_process

        subprocess.run([*whybatch_command(), "server", "stop", "--profile", str(self.profile)],
                       capture_output=True, text=True)
        if self.pid is not None and pid_alive(self.pid):
            stop_process(self.pid)


__all__ = ("ConnectServer", "free_port", "whybatch_command", "write_connect_profile", "write_local_profile")
