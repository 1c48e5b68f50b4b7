"""whybatch's adapters: Spark (session, moment engine), the warehouse (read, prepare, demo
data), the Spark-side study run, the entry points the CLI, spark-submit and Airflow share,
and the command line. The statistics live in causal_core; nothing here computes one."""
