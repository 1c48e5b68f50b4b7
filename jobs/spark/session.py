"""One SparkSession per job, built from a profile in ``conf/spark/<profile>.yaml``.

A profile sets the master (``local[*]``, ``spark://127.0.0.1:7077``...), the warehouse and
metastore directories (relative paths are resolved against the project directory) and any
Spark conf. The embedded default is a Hive catalog with a Derby metastore on local disk.

Spark's own output — the JVM's start-up lines, log4j warnings, native-library notices —
goes to ``<log_dir>/spark.log`` (``logs/`` under the project by default), not the user's
console: the driver JVM gets a log4j2 configuration with a file appender, and its standard
error is the log file from the moment it starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from causal_core.errors import SpecError

PROJECT_DIR = Path(__file__).resolve().parents[2]
PROFILE_DIR = PROJECT_DIR / "conf" / "spark"


@dataclass(frozen=True)
class SparkProfile:
    name: str
    master: str = "local[*]"
    app_name: str = "whybatch"
    warehouse_dir: str = "warehouse/spark-warehouse"
    metastore_dir: str = "warehouse/metastore_db"
    hive: bool = True
    log_dir: str = "logs"
    conf: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def resolved(self, path: str) -> Path:
        p = Path(os.path.expanduser(path))
        return p if p.is_absolute() else PROJECT_DIR / p


def load_profile(name: str = "local", root: Path | None = None) -> SparkProfile:
    """Read ``conf/spark/<name>.yaml``; an unknown name lists the profiles there."""
    root = root or PROFILE_DIR
    path = root / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise SpecError(f"unknown Spark profile {name!r}; profiles in {root}: {', '.join(known)}")
    doc = yaml.safe_load(path.read_text()) or {}
    allowed = {"master", "app_name", "warehouse_dir", "metastore_dir", "hive", "log_dir", "conf"}
    unknown = set(doc) - allowed
    if unknown:
        raise SpecError(f"{path}: unknown profile fields {sorted(unknown)}; expected {sorted(allowed)}")
    conf = tuple(sorted((str(k), str(v)) for k, v in (doc.get("conf") or {}).items()))
    return SparkProfile(name=name, conf=conf, **{k: v for k, v in doc.items() if k != "conf"})


def build_session(profile: SparkProfile | str = "local"):
    """Get or create the SparkSession described by ``profile``."""
    from pyspark.sql import SparkSession

    if isinstance(profile, str):
        profile = load_profile(profile)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warehouse = profile.resolved(profile.warehouse_dir)
    metastore = profile.resolved(profile.metastore_dir)
    warehouse.mkdir(parents=True, exist_ok=True)
    metastore.parent.mkdir(parents=True, exist_ok=True)
    log_file, log_config = log_files(profile)
    builder = (SparkSession.builder.master(profile.master).appName(profile.app_name)
               .config("spark.sql.warehouse.dir", str(warehouse))
               .config("spark.driver.extraJavaOptions",
                       f"-Dderby.system.home={metastore.parent} -Dlog4j.configurationFile={log_config}"))
    if profile.hive:
        builder = (builder.config("spark.hadoop.javax.jdo.option.ConnectionURL",
                                  f"jdbc:derby:;databaseName={metastore};create=true")
                   .enableHiveSupport())
    for k, v in profile.conf:
        builder = builder.config(k, v)
    with _stderr_to(log_file):
        session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
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
