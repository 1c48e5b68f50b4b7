"""``whybatch server start|stop|status``: a long-lived Spark Connect server.

The server is Spark's own ``org.apache.spark.sql.connect.service.SparkConnectServer``,
launched with pyspark's bundled ``spark-submit``. It runs the session settings of the
profile named in the Connect profile's ``server:`` section (by default ``local``: its
master, warehouse, metastore and conf) and listens on ``server.host:server.port``
(127.0.0.1:15002 by default). Clients — ``whybatch run --profile connect``, Airflow tasks —
then send it one plan per query and start no JVM of their own.

Files, under the Connect profile's ``log_dir`` (``<project>/logs/`` by default):

* ``connect-server.pid``: the server JVM's process id; ``stop`` signals that process, and
  only that one;
* ``connect-server.log``: everything the server prints (Spark's log at WARN, and the
  line that says where it listens).

While the server holds the local profile's Derby metastore, a classic ``--profile local``
process cannot open it: use ``--profile connect`` for as long as the server runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from causal_core.errors import WhybatchError
from jobs.spark.session import SparkProfile, load_profile, session_conf

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
APP_NAME = "whybatch Spark Connect server"

LOG4J2_CONSOLE = """# written by whybatch: the Connect server logs to its standard error (the server log)
rootLogger.level = warn
rootLogger.appenderRef.console.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n
logger.connect.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.connect.level = info
logger.parquet.name = org.apache.parquet
logger.parquet.level = error
"""


@dataclass(frozen=True)
class ServerStatus:
    """Where a Connect server is (or would be) and whether it runs."""

    url: str
    host: str
    port: int
    pid: int | None
    running: bool
    pid_file: Path
    log_file: Path
    master: str
    warehouse: Path

    def describe(self) -> str:
        """Several lines: the URL, the process, the files and the served warehouse."""
        state = f"running (pid {self.pid})" if self.running else "not running"
        return "\n".join([f"Spark Connect server {self.url}: {state}", f"  pid file   {self.pid_file}",
                          f"  log        {self.log_file}", f"  master     {self.master}",
                          f"  warehouse  {self.warehouse}"])


def spark_home() -> Path:
    """``$SPARK_HOME``, else the Spark distribution inside the pyspark package."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def connect_profile(profile: SparkProfile | str) -> tuple[SparkProfile, SparkProfile]:
    """The Connect profile and the profile whose session the server runs."""
    prof = profile if isinstance(profile, SparkProfile) else load_profile(profile)
    if prof.server is None:
        raise WhybatchError(f"Spark profile {prof.name!r} has no server: section (a Connect profile such as "
                            "conf/spark/connect.yaml says how to run the server)")
    return prof, load_profile(prof.server.profile)


def server_files(profile: SparkProfile) -> tuple[Path, Path]:
    """The pid file and the log file of ``profile``'s server."""
    root = profile.resolved(profile.log_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root / "connect-server.pid", root / "connect-server.log"


def server_command(profile: SparkProfile | str) -> list[str]:
    """The ``spark-submit`` command line that runs the Connect server of ``profile``."""
    prof, served = connect_profile(profile)
    settings = prof.server
    log_config = prof.resolved(prof.log_dir) / "log4j2-connect-server.properties"
    log_config.parent.mkdir(parents=True, exist_ok=True)
    if not log_config.exists() or log_config.read_text() != LOG4J2_CONSOLE:
        log_config.write_text(LOG4J2_CONSOLE)
    conf = session_conf(served, log_config=log_config)
    conf.update({"spark.connect.grpc.binding.address": settings.host,
                 "spark.connect.grpc.binding.port": str(settings.port)})
    conf.update(settings.conf)
    command = [str(spark_home() / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--name", APP_NAME,
               "--master", served.master]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return command


def status(profile: SparkProfile | str = "connect") -> ServerStatus:
    """Whether the server of ``profile`` runs: its pid file names a live server process."""
    prof, served = connect_profile(profile)
    pid_file, log_file = server_files(prof)
    pid = read_pid(pid_file)
    running = pid is not None and is_server_process(pid)
    settings = prof.server
    return ServerStatus(url=f"sc://{settings.host}:{settings.port}", host=settings.host, port=settings.port,
                        pid=pid if running else None, running=running, pid_file=pid_file, log_file=log_file,
                        master=served.master, warehouse=served.resolved(served.warehouse_dir))


def start(profile: SparkProfile | str = "connect", timeout: float = 180.0) -> tuple[ServerStatus, bool]:
    """Start the server detached and wait until its port answers; returns its status and
    whether this call started it (``False``: it was already running)."""
    prof, _ = connect_profile(profile)
    current = status(prof)
    if current.running:
        return current, False
    if port_answers(current.host, current.port):
        raise WhybatchError(f"port {current.port} on {current.host} is taken by another process; "
                            f"choose another server.port in the profile")
    command = server_command(prof)
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env.update({"SPARK_HOME": str(spark_home()), "SPARK_CONNECT_MODE": "0", "PYSPARK_PYTHON": sys.executable})
    env.setdefault("SPARK_LOCAL_IP", prof.server.host)  # the driver binds where the server listens
    with open(current.log_file, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        log.flush()
        # spark-submit and spark-class exec the JVM, so this pid is the server's own
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    current.pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while not port_answers(current.host, current.port):
        if process.poll() is not None:
            current.pid_file.unlink(missing_ok=True)
            raise WhybatchError(f"the Spark Connect server exited with code {process.returncode} while starting; "
                                f"its log: {current.log_file}\n{tail(current.log_file)}")
        if time.monotonic() > deadline:
            stop(profile)
            raise WhybatchError(f"the Spark Connect server did not answer on {current.url} within {timeout:.0f} s; "
                                f"its log: {current.log_file}")
        time.sleep(0.25)
    return status(profile), True


def stop(profile: SparkProfile | str = "connect", timeout: float = 60.0) -> int | None:
    """Stop the server by the process id in its pid file (SIGTERM, then SIGKILL after
    ``timeout`` seconds) and wait until it has exited; returns that pid, or ``None`` when
    no server was running."""
    current = status(profile)
    pid = current.pid
    if pid is None:
        current.pid_file.unlink(missing_ok=True)
        return None
    stop_process(pid, timeout)
    current.pid_file.unlink(missing_ok=True)
    return pid


def stop_process(pid: int, timeout: float = 60.0) -> None:
    """SIGTERM ``pid`` (Spark's shutdown hooks stop the session cleanly), SIGKILL it after
    ``timeout`` seconds, and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.2)


def read_pid(path: Path) -> int | None:
    """The process id in ``path``, or ``None`` (no file, or not a number)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie child is reaped and counts as gone)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child: another process started it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return True


def is_server_process(pid: int) -> bool:
    """Whether ``pid`` is alive and (where ``/proc`` tells) a Spark Connect server, so a
    stale pid file whose number was reused by another program is not taken for one."""
    if not pid_alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():
        return True
    try:
        return SERVER_CLASS.encode() in cmdline.read_bytes()
    except OSError:
        return False


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


server_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The Spark Connect server that runs and Airflow tasks connect to (start, stop, status).")

ProfileOption = Annotated[str, typer.Option(help="Connect profile in conf/spark/ (or a YAML path)")]


def _or_exit(action, *args):
    """``action(*args)``; a :class:`WhybatchError` is printed and exits 1."""
    try:
        return action(*args)
    except WhybatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@server_app.command("start")
def start_command(profile: ProfileOption = "connect",
                  timeout: Annotated[float, typer.Option(help="seconds to wait for the port to answer")] = 180.0
                  ) -> None:
    """Start the Spark Connect server detached; wait until it answers; print where it is."""
    current, started = _or_exit(start, profile, timeout)
    typer.echo(current.describe())
    if not started:
        typer.echo(f"already running: nothing started (stop it with `whybatch server stop --profile {profile}`)")


@server_app.command("stop")
def stop_command(profile: ProfileOption = "connect") -> None:
    """Stop the server by the process id in its pid file and wait until it has exited."""
    pid = _or_exit(stop, profile)
    typer.echo("no Spark Connect server was running" if pid is None else f"stopped the Spark Connect server (pid {pid})")


@server_app.command("status")
def status_command(profile: ProfileOption = "connect") -> None:
    """Say whether the server runs (exit 0) or not (exit 1), and where its files are."""
    current = _or_exit(status, profile)
    typer.echo(current.describe())
    if not current.running:
        raise typer.Exit(1)


__all__ = ("ServerStatus", "server_app", "server_command", "start", "status", "stop")
