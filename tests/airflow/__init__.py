"""Tests of the Airflow DAG factory: parsing, and whole DAG runs with ``dag.test()``."""
