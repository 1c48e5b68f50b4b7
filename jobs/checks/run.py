"""Running a study's expectation suite on its Spark DataFrame with an ephemeral GX context.

The context lives for one call and keeps nothing on disk: a Spark data source, a
dataframe asset and a whole-dataframe batch definition, whose batch is the frame given.
GX computes its metrics with Spark aggregations on that frame; only the metric values
and a few example values per failed expectation reach the driver.

The data source does not persist the frame (GX would cache it and never release it,
which a long-lived Spark Connect server would feel); pass a cached frame to read the
source once for all of GX's passes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from causal_core.spec import StudySpec
from jobs.checks.messages import result_row
from jobs.checks.report import CheckReport
from jobs.checks.suite import build_suite

# SUMMARY returns the counts, and up to this many unexpected values of the column as
# examples (GX takes them with a limit), never whole rows.
EXAMPLE_VALUES = 20


def ephemeral_context():
    """A GX context held in memory, with usage analytics and progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def run_checks(spark: SparkSession, spec: StudySpec, df: DataFrame, *, end: str | None = None,
               today: date | None = None, selection: str = "the interval") -> CheckReport:
    """Validate ``df`` (the interval's rows, as :func:`jobs.warehouse.read.read_study_frame`
    returns them, with the partition column when ``freshness_days`` is set) against the
    suite :func:`~jobs.checks.suite.build_suite` makes from ``spec``.

    ``spark`` is the session ``df`` belongs to, as for every Spark step of a run (GX's
    Spark data source takes no session: it reuses the active one); ``end`` is the
    interval's end and ``today`` the reference date for freshness when there is none;
    ``selection`` names the rows in messages. Returns every check's row; it raises nothing for failed checks —
    :func:`~jobs.checks.report.raise_for_critical` does.
    """
    suite = build_suite(spec, dict(df.dtypes), end=end, today=today)
    context = ephemeral_context()
    source = context.data_sources.add_spark(name="whybatch", persist=False)
    asset = source.add_dataframe_asset(name=spec.name)
    batch = asset.add_batch_definition_whole_dataframe("interval").get_batch(batch_parameters={"dataframe": df})
    validation = batch.validate(suite, result_format={"result_format": "SUMMARY",
                                                      "partial_unexpected_count": EXAMPLE_VALUES})
    as_json = validation.to_json_dict()
    results = sorted(as_json.get("results", []), key=_suite_order(suite))
    report = CheckReport(rows=tuple(result_row(r, df.columns) for r in results), validation=as_json)
    return _name_all_null_columns(report, df, selection)


def _name_all_null_columns(report, frame, selection: str):
    """A column that is null in every row has no type to check (a CSV reader calls it text):
    its failed type check says it is all null instead (one count over the cached frame)."""
    typed = [r for r in report.critical_failures if r.check == "column_types" and r.column in frame.columns]
    if not typed:
        return report
    counts = frame.agg(F.count(F.lit(1)).alias("__n"), *(F.count(r.column).alias(r.column) for r in typed)).first()
    n = counts["__n"]
    named = {r.column: replace(r, message=f"{r.message.split(' ')[0]} {r.column!r} is null in all {n:,} rows of "
                                          f"{selection}") for r in typed if n and counts[r.column] == 0}
    return replace(report, rows=tuple(named.get(r.column, r) if r in typed else r for r in report.rows))


def _suite_order(suite):
    """GX returns results grouped by the metric domains it computed; the report keeps the
    suite's order (row count first, then the checks as the suite lists them)."""
    order = {(e.expectation_type, (e.meta or {}).get("checks")): i for i, e in enumerate(suite.expectations)}

    def key(result: dict) -> int:
        config = result.get("expectation_config") or {}
        return order.get((config.get("type"), (config.get("meta") or {}).get("checks")), len(order))

    return key
