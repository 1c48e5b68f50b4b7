"""One SparkSession per job, built from a profile in ``conf/spark/<profile>.yaml``.

A profile sets the master (``local[*]``, ``spark://127.0.0.1:7077``...), the warehouse and
metastore directories (relative paths are resolved against the project directory) and any
Spark conf. The embedded default is a Hive catalog with a Derby metastore on local disk.

A profile with ``remote: sc://host:port`` is a Spark Connect client: the session is a thin
gRPC client of a long-lived Connect server, and no JVM starts in this process. Its
``server:`` section says how ``whybatch server start`` runs that server (see
:mod:`jobs.spark.server`): which profile's master, warehouse, metastore and conf it serves,
on which port, with which extra conf.

Spark's own output — the JVM's start-up lines, log4j warnings, native-library notices —
goes to ``<log_dir>/spark.log`` (``logs/`` under the project by default), not the user's
console: the driver JVM gets a log4j2 configuration with a file appender, and its standard
error is the log file from the moment it starts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from causal_core.errors import SpecError, WhybatchError

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROFILE_DIR = PROJECT_DIR / "conf" / "spark"


CONNECT_PORT = 15002  # Spark Connect's default port


@dataclass(frozen=True)
class ConnectServerSettings:
    """How ``whybatch server start`` runs a Spark Connect server: the session settings of
    ``profile`` (a profile name or YAML path), bound to ``host``:``port``, plus ``conf``."""

    profile: str = "local"
    host: str = "127.0.0.1"
    port: int = CONNECT_PORT
    conf: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SpecError(f"server.port: expected a TCP port in 1..65535, got {self.port}")


@dataclass(frozen=True)
class SparkProfile:
    """A Spark profile: a classic session's settings, or with ``remote`` a Connect client's
    (and with ``server`` how to run the Connect server it talks to)."""

    name: str
    master: str = "local[*]"
    app_name: str = "whybatch"
    warehouse_dir: str = "warehouse/spark-warehouse"
    metastore_dir: str = "warehouse/metastore_db"
    hive: bool = True
    log_dir: str = "logs"
    conf: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    remote: str | None = None
    server: ConnectServerSettings | None = None

    def __post_init__(self) -> None:
        if self.remote is not None and not self.remote.startswith("sc://"):
            raise SpecError(f"profile {self.name!r}: remote: expected a Spark Connect URL sc://host:port, "
                            f"got {self.remote!r}")

    def resolved(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else PROJECT_DIR / p


PROFILE_FIELDS = ("master", "app_name", "warehouse_dir", "metastore_dir", "hive", "log_dir", "conf", "remote", "server")
SERVER_FIELDS = ("profile", "host", "port", "conf")


def load_profile(name: str = "local", root: Path | None = None) -> SparkProfile:
    """Read ``conf/spark/<name>.yaml`` (or ``name`` itself when it is a path to a YAML
    file); an unknown name lists the profiles there."""
    root = root or PROFILE_DIR
    given = Path(os.path.expanduser(name))
    path = given if given.suffix in (".yaml", ".yml") and given.is_file() else root / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise SpecError(f"unknown Spark profile {name!r}; profiles in {root}: {', '.join(known)}")
    doc = yaml.safe_load(path.read_text()) or {}
    unknown = set(doc) - set(PROFILE_FIELDS)
    if unknown:
        raise SpecError(f"{path}: unknown profile fields {sorted(unknown)}; expected {sorted(PROFILE_FIELDS)}")
    conf = _conf_pairs(doc.get("conf"))
    server = _server_settings(path, doc.get("server"), doc.get("remote"))
    rest = {k: v for k, v in doc.items() if k not in ("conf", "server")}
    return SparkProfile(name=path.stem if path.parent != root else name, conf=conf, server=server, **rest)


def _conf_pairs(conf: dict | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (conf or {}).items()))


def _server_settings(path: Path, doc: dict | None, remote: str | None) -> ConnectServerSettings | None:
    """The ``server:`` section; its port defaults to the one in ``remote`` and must agree with it."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: server: expected a mapping with {', '.join(SERVER_FIELDS)}")
    unknown = set(doc) - set(SERVER_FIELDS)
    if unknown:
        raise SpecError(f"{path}: unknown server fields {sorted(unknown)}; expected {sorted(SERVER_FIELDS)}")
    remote_port = urlparse(remote.replace("sc://", "http://", 1)).port if remote else None
    port = int(doc.get("port", remote_port or CONNECT_PORT))
    if remote_port is not None and remote_port != port:
        raise SpecError(f"{path}: server.port {port} differs from the port of remote {remote!r}")
    return ConnectServerSettings(profile=str(doc.get("profile", "local")), host=str(doc.get("host", "127.0.0.1")),
                                 port=port, conf=_conf_pairs(doc.get("conf")))


DEBUGGING = "spark.python.sql.dataFrameDebugging.enabled"
LATERAL_ALIASES = "spark.sql.lateralColumnAlias.enableImplicitResolution"


def session_conf(profile: SparkProfile, log_config: Path | None = None) -> dict[str, str]:
    """The Spark conf of a classic session built from ``profile``: its warehouse, its
    metastore (a Derby database when ``hive``), Spark's log going to the profile's log file
    (or as ``log_config``, a log4j2 configuration, says), then the profile's own ``conf``.
    The same settings serve a session started here, a Connect server and a ``spark-submit``
    command, so the three see one warehouse."""
    warehouse = profile.resolved(profile.warehouse_dir)
    metastore = profile.resolved(profile.metastore_dir)
    warehouse.mkdir(parents=True, exist_ok=True)
    metastore.parent.mkdir(parents=True, exist_ok=True)
    log_config = log_config or log_files(profile)[1]
    conf = {"spark.sql.warehouse.dir": str(warehouse),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={metastore.parent} "
                                             f"-Dlog4j.configurationFile={log_config}",
            # PySpark otherwise walks the Python stack and makes three JVM calls for every
            # DataFrame function a study calls, to quote the call site in Spark's analysis
            # errors; whybatch names what is wrong itself. Off, a 1M-row OLS study takes
            # about 0.35 s less. A profile may turn it back on.
            DEBUGGING: "false",
            # The moment passes name earlier projected columns in the same selectExpr
            # (jobs.spark.cse): on whatever a cluster's spark-defaults.conf says.
            LATERAL_ALIASES: "true"}
    if profile.hive:
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = f"jdbc:derby:;databaseName={metastore};create=true"
    conf.update(profile.conf)
    return conf


def build_session(profile: SparkProfile | str = "local"):
    """Get or create the SparkSession described by ``profile``: a Spark Connect client when
    the profile has ``remote``, else a classic session with its own driver JVM."""
    from pyspark.sql import SparkSession

    if isinstance(profile, str):
        profile = load_profile(profile)
    if profile.remote is not None:
        return connect_session(profile)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = session_conf(profile)
    log_file, _ = log_files(profile)
    builder = SparkSession.builder.master(profile.master).appName(profile.app_name)
    for k, v in conf.items():
        builder = builder.config(k, v)
    if profile.hive:
        builder = builder.enableHiveSupport()
    with _stderr_to(log_file):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def connect_session(profile: SparkProfile):
    """A Spark Connect session on ``profile.remote``; a server that does not answer is a
    :class:`causal_core.WhybatchError` naming the URL and how to start one."""
    from pyspark.sql import SparkSession

    where = urlparse(profile.remote.replace("sc://", "http://", 1))
    host, port = where.hostname or "localhost", where.port or CONNECT_PORT
    try:  # the client retries a missing server for minutes: ask the port first
        socket.create_connection((host, port), timeout=5).close()
        session = SparkSession.builder.remote(profile.remote).getOrCreate()
        session.conf.get("spark.sql.session.timeZone")  # the first call that reaches the server
    except Exception as exc:  # grpc's errors are many; any of them means no usable server
        if "SESSION_ALREADY_EXIST" in str(exc):
            raise
        raise WhybatchError(f"no Spark Connect server answers at {profile.remote} (profile {profile.name!r}): "
                            f"start one with `whybatch server start --profile {profile.name}` "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    return session


LOG4J2 = """# written by whybatch: Spark's log goes to a file, not the console
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n
logger.parquet.name = org.apache.parquet
logger.parquet.level = error
"""


def log_files(profile: SparkProfile) -> tuple[Path, Path]:
    """The profile's Spark log file and the log4j2 configuration that writes to it."""
    root = profile.resolved(profile.log_dir)
    root.mkdir(parents=True, exist_ok=True)
    log, config = root / "spark.log", root / "log4j2.properties"
    text = LOG4J2.format(log=log)
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return log, config


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` while the JVM starts (it inherits the descriptor,
    so what it prints before log4j is configured lands there too); restore it after."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (an embedding host): leave it
        yield
        return
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
