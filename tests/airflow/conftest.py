"""An Airflow home of the test session, set before Airflow is imported.

Airflow reads its configuration when it is first imported, and ``dag.test()`` needs a
metadata database: both point at a temporary directory (SQLite), never at the user's
``AIRFLOW_HOME``. The DAGs folder is the project's ``airflow_dags/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_HOME = tempfile.mkdtemp(prefix="whybatch-test-airflow-")
AIRFLOW_ENV = {
    "AIRFLOW_HOME": AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow_dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
}
_previous = {k: os.environ.get(k) for k in AIRFLOW_ENV}
_root_handlers = list(logging.getLogger().handlers)
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session", autouse=True)
def airflow_home():
    """The session's Airflow home; removed, and the environment restored, at the end.

    Airflow's logging set-up adds a root handler on the stdout of the moment (pytest's
    capture, closed at exit): it goes too, or a late log line (py4j's, at shutdown)
    would be written to a closed file."""
    yield Path(AIRFLOW_HOME)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h not in _root_handlers]:
        root.removeHandler(handler)
    for key, value in _previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db(airflow_home):
    """The metadata database, migrated (``airflow db migrate``)."""
    from airflow.utils.db import initdb

    initdb()
    return f"sqlite:///{airflow_home}/airflow.db"
