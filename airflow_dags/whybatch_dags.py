"""The file Airflow's DagBag imports (point ``dags_folder`` at this directory): one DAG,
``whybatch__<study>``, per study in ``conf/studies/`` (or ``WHYBATCH_STUDIES_DIR``) that
has a ``schedule``. See :mod:`airflow_dags.factory`."""

from airflow_dags.factory import build_dags

globals().update(build_dags())
