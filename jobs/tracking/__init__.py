"""Where a study's results are recorded after a run: MLflow runs and the results table.

:mod:`jobs.tracking.mlflow_runs` logs a :class:`causal_core.study.StudyResult` as one
MLflow parent run per study and interval, with a child run per estimator, and records
runs that failed; :mod:`jobs.tracking.results_table` writes the estimate rows into a
Spark table partitioned by study and interval, which ``whybatch history`` reads. The
modules are imported on their own, so reading the history needs no MLflow.
"""
