"""The results table: every run's estimate rows in one Spark table, for history over intervals.

One row per estimate row of a :class:`causal_core.study.StudyResult`, partitioned by
``study`` and ``interval_end``. Writing a run overwrites only its own partition (Spark's
dynamic partition overwrite), so rerunning an interval replaces that interval's rows and
leaves every other interval and study as it was — the table half of "a rerun replaces,
never duplicates" (DESIGN.md, Contracts). Rows without an estimate are written too, with
null numbers and their ``reason``, so a rerun that could not estimate what an earlier run
did still replaces the earlier numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from causal_core.study import StudyResult
from jobs.spark.collect import collect_small

DEFAULT_TABLE = "whybatch_results"
SCHEMA = ("study string, run_key string, interval_start string, interval_end string, estimator string, "
          "strategy string, metric string, contrast string, segment string, target string, estimate double, "
          "se double, ci_low double, ci_high double, p_value double, n bigint, reason string, "
          "written_at timestamp")
COLUMNS = tuple(c.split()[0] for c in SCHEMA.split(", "))
PARTITIONS = ("study", "interval_end")
MAX_HISTORY_ROWS = 200_000


def write_results_table(spark: SparkSession, result: StudyResult, table: str = DEFAULT_TABLE) -> int:
    """Write the result's estimate rows into ``table`` (created if missing, Parquet,
    partitioned by study and interval_end), replacing the rows of this study and
    interval_end only; returns the number of rows written.

    The overwrite is dynamic: Spark replaces exactly the partitions the written rows fall
    in. A result without estimate rows therefore changes nothing.
    """
    if not result.estimates:
        return 0
    written_at = datetime.now(UTC).replace(tzinfo=None)  # stored as a UTC wall-clock timestamp
    rows = [(result.study, result.run_key, result.interval.start, result.interval.end, e.estimator or "",
             e.strategy, e.metric, e.contrast, e.segment, e.target, e.estimate, e.se, e.ci_low, e.ci_high,
             e.p_value, e.n, e.reason, written_at) for e in result.estimates]
    spark.sql(f"CREATE TABLE IF NOT EXISTS {table} ({SCHEMA}) USING parquet "
              f"PARTITIONED BY ({', '.join(PARTITIONS)})")
    frame = spark.createDataFrame(rows, SCHEMA)
    # insertInto matches columns by position: the table's order puts the partition columns last
    ordered = frame.select(*spark.table(table).columns)
    key = "spark.sql.sources.partitionOverwriteMode"
    previous = spark.conf.get(key)
    spark.conf.set(key, "dynamic")
    try:
        ordered.write.mode("overwrite").insertInto(table)
    finally:
        spark.conf.set(key, previous)
    return len(rows)


def read_history(spark: SparkSession, study: str, table: str = DEFAULT_TABLE) -> pd.DataFrame:
    """The study's rows over every interval written, ordered by interval_end (then metric,
    estimator, segment and contrast); an empty frame with the table's columns when the
    table does not exist or holds nothing of the study."""
    if not spark.catalog.tableExists(table):
        return pd.DataFrame(columns=list(COLUMNS))
    order = ("interval_end", "metric", "estimator", "segment", "contrast")
    rows = collect_small(spark.table(table).where(F.col("study") == study).select(*COLUMNS).orderBy(*order),
                         MAX_HISTORY_ROWS, f"history of {study} in {table}")
    return pd.DataFrame([r.asDict() for r in rows], columns=list(COLUMNS))
