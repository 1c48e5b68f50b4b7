"""Reading a study's rows from the warehouse: table or path, partition interval, filter, derived columns.

Each step is a DataFrame -> DataFrame function; :func:`read_study_frame` composes them and
ends with a ``select`` of exactly the columns the plan needs, so Spark prunes partitions
and columns before it reads anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from causal_core.errors import DataCheckError, SpecError
from causal_core.spec import DataSpec, StudySpec


def load_source(spark: SparkSession, data: DataSpec) -> DataFrame:
    """The raw table (a catalog table) or files (a path in ``format``)."""
    try:
        if data.table:
            return spark.table(data.table)
        reader = spark.read.format(data.format)
        if data.format == "csv":
            reader = reader.option("header", "true").option("inferSchema", "true")
        return reader.load(data.path)
    except AnalysisException as exc:
        what = f"table {data.table!r}" if data.table else f"path {data.path!r} ({data.format})"
        raise DataCheckError(f"data: cannot read {what}: {exc.getMessage() if hasattr(exc, 'getMessage') else exc}")


def filter_interval(df: DataFrame, partition_column: str | None, start: str | None, end: str | None) -> DataFrame:
    """Keep partitions in the half-open interval [start, end) (Airflow's data-interval convention)."""
    if start is None and end is None:
        return df
    if not partition_column:
        raise SpecError("an interval (--start/--end) needs data.partition_column in the spec",
                        (("data.partition_column", "required with --start/--end"),))
    if partition_column not in df.columns:
        raise SpecError(f"data.partition_column {partition_column!r} is not a column of the table",
                        (("data.partition_column", "unknown column"),))
    cond = F.lit(True)
    if start is not None:
        cond = cond & (F.col(partition_column) >= F.lit(start).cast("date"))
    if end is not None:
        cond = cond & (F.col(partition_column) < F.lit(end).cast("date"))
    return df.where(cond)


def apply_where(df: DataFrame, where: str | None) -> DataFrame:
    if not where:
        return df
    try:
        out = df.where(F.expr(where))
        out.schema  # force analysis so a bad filter fails here, with the field named
        return out
    except (AnalysisException, ParseException) as exc:
        raise SpecError(f"data.where {where!r} is not a valid Spark SQL filter: {_first_line(exc)}",
                        (("data.where", "invalid Spark SQL"),)) from None


def add_derived(df: DataFrame, derived: Sequence[tuple[str, str]]) -> DataFrame:
    """Add each ``derived`` column, in order (later ones may use earlier ones)."""
    for name, sql in derived:
        try:
            df = df.withColumn(name, F.expr(sql))
            df.schema
        except (AnalysisException, ParseException) as exc:
            raise SpecError(f"derived.{name}: {sql!r} is not a valid Spark SQL expression: {_first_line(exc)}",
                            ((f"derived.{name}", "invalid Spark SQL"),)) from None
    return df


def require_columns(df: DataFrame, needed: Iterable[str], context: str) -> None:
    """Raise naming every missing column, with the closest existing names."""
    have = df.columns
    missing = [c for c in dict.fromkeys(needed) if c not in have]
    if missing:
        hints = []
        for m in missing:
            close = difflib.get_close_matches(m, have, n=1)
            hints.append(f"{m!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SpecError(f"{context}: unknown column(s) {', '.join(hints)}; the table has: {', '.join(have)}",
                        tuple((m, "unknown column") for m in missing))


def read_study_frame(spark: SparkSession, spec: StudySpec, columns: Iterable[str], *, start: str | None = None,
                     end: str | None = None) -> DataFrame:
    """Rows of the study's interval with only ``columns`` (after ``where`` and ``derived``)."""
    df = load_source(spark, spec.data)
    df = filter_interval(df, spec.data.partition_column, start, end)
    df = apply_where(df, spec.data.where)
    df = add_derived(df, spec.derived)
    wanted = list(dict.fromkeys(columns))
    require_columns(df, wanted, f"{spec.source or spec.name}")
    return df.select(*wanted)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
