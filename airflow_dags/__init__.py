"""The Airflow side of whybatch: one DAG per study that has a ``schedule``.

``whybatch_dags.py`` is the file the DagBag imports; :mod:`airflow_dags.factory` builds
the DAGs from ``conf/studies/`` (or ``WHYBATCH_STUDIES_DIR``); :mod:`airflow_dags.steps`
holds what each task does — check the data, plan, estimate and refute, publish — as
thin calls into :mod:`jobs.entrypoints`, free of Airflow so any runner can call them.
Importing this package imports neither Airflow nor Spark.
"""
