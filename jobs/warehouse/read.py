"""Reading a study's rows from the warehouse: table or path, partition interval, filter, derived columns.

Each step is a DataFrame -> DataFrame function; :func:`read_study_frame` composes them and
ends with a ``select`` of exactly the columns the plan needs, so Spark prunes partitions
and columns before it reads anything.
"""

from __future__ import annotations

import difflib
import glob
import re
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.errors import DataCheckError, SpecError
from causal_core.spec import DataSpec, StudySpec
from jobs.spark.collect import collect_one


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
    """Keep partitions in the half-open interval [start, end) (Airflow's data-interval convention).

    The bounds are compared in the partition column's own type: dates and timestamps as
    dates, integers (``20260103``) as integers, strings as ISO text. :func:`check_interval`
    has already checked their form before Spark started.
    """
    if start is None and end is None:
        return df
    if not partition_column:
        raise SpecError("an interval (--start/--end) needs data.partition_column in the spec",
                        (("data.partition_column", "required with --start/--end"),))
    if partition_column not in df.columns:
        raise SpecError(f"data.partition_column {partition_column!r} is not a column of the table",
                        (("data.partition_column", "unknown column"),))
    kind = df.schema[partition_column].dataType
    cond = F.lit(True)
    for bound, value in (("start", start), ("end", end)):
        if value is None:
            continue
        literal = _bound_literal(partition_column, kind, bound, value)
        cond = cond & (F.col(partition_column) >= literal if bound == "start" else F.col(partition_column) < literal)
    return df.where(cond)


def _bound_literal(column: str, kind: T.DataType, bound: str, value: str) -> Column:
    """``value`` as a literal of the partition column's type, or a SpecError saying what was expected."""
    if isinstance(kind, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        if not ISO_DATE.match(value):
            raise SpecError(f"--{bound} {value!r}: partition column {column!r} holds dates; expected YYYY-MM-DD",
                            ((f"--{bound}", "expected YYYY-MM-DD"),))
        return F.lit(value).cast("date")
    if isinstance(kind, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        digits = value.replace("-", "") if ISO_DATE.match(value) else value
        if not digits.isdigit():
            raise SpecError(f"--{bound} {value!r}: partition column {column!r} holds integers; expected an integer "
                            "such as 20260103 (or YYYY-MM-DD, read as YYYYMMDD)",
                            ((f"--{bound}", "expected an integer"),))
        return F.lit(int(digits))
    if isinstance(kind, T.StringType):
        return F.lit(value)
    raise SpecError(f"data.partition_column {column!r} has type {kind.simpleString()}; an interval needs a date, "
                    "timestamp, integer or string partition column",
                    (("data.partition_column", "date, timestamp, integer or string"),))


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_interval(spec: StudySpec, start: str | None, end: str | None) -> None:
    """Check an interval's form before Spark starts: bounds are ISO dates (YYYY-MM-DD) or
    integers, need ``data.partition_column``, and ``start`` comes before ``end``."""
    if start is None and end is None:
        return
    if not spec.data.partition_column:
        raise SpecError(f"{spec.source or spec.name}: --start/--end select partitions, but the study has no "
                        "data.partition_column", (("data.partition_column", "required with --start/--end"),))
    parsed = {}
    for bound, value in (("start", start), ("end", end)):
        if value is None:
            continue
        if ISO_DATE.match(value):
            try:
                parsed[bound] = date.fromisoformat(value).strftime("%Y%m%d")
            except ValueError:
                raise SpecError(f"--{bound} {value!r} is not a calendar date; expected YYYY-MM-DD",
                                ((f"--{bound}", "expected YYYY-MM-DD"),)) from None
        elif value.isdigit():
            parsed[bound] = value
        else:
            raise SpecError(f"--{bound} {value!r}: expected a date YYYY-MM-DD (or an integer partition value "
                            f"such as 20260103) for partition column {spec.data.partition_column!r}",
                            ((f"--{bound}", "expected YYYY-MM-DD"),))
    if len(parsed) == 2 and int(parsed["start"]) >= int(parsed["end"]):
        raise SpecError(f"--start {start} is not before --end {end}: the interval [start, end) is empty",
                        (("--end", "after --start"),))


def check_source(spec: StudySpec) -> None:
    """A local ``data.path`` that does not exist fails before Spark starts."""
    path = spec.data.path
    if not path:
        return
    scheme = urlparse(path).scheme
    if scheme in ("", "file"):
        local = Path(urlparse(path).path if scheme == "file" else path).expanduser()
        if not glob.has_magic(str(local)) and not local.exists():
            raise SpecError(f"{spec.source or spec.name}: data.path {path!r} does not exist",
                            (("data.path", "no such file or directory"),))


def describe_selection(spec: StudySpec, start: str | None, end: str | None) -> str:
    """``[start, end) of demo.customers`` / ``path /x (csv)``: where rows were looked for, for messages."""
    where = f"table {spec.data.table}" if spec.data.table else f"{spec.data.path} ({spec.data.format})"
    interval = f"[{start or '…'}, {end or '…'}) of " if (start or end) else ""
    return interval + where + (f" where {spec.data.where}" if spec.data.where else "")


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


def diagnose_empty(raw: DataFrame, column: str, role: str, selection: str) -> None:
    """Before blaming a column's type: an empty selection, or a column that is null in every
    row (a CSV infers text for both), is a data problem and says so. One small query, on
    the error path only."""
    row = collect_one(raw.agg(F.count(F.lit(1)).alias("n"), F.count(F.col(column)).alias("k")),
                      f"rows and non-null values of {column}")
    if row["n"] == 0:
        raise DataCheckError(f"0 rows in {selection}: nothing to estimate")
    if row["k"] == 0:
        raise DataCheckError(f"{role} {column!r} is null in all {row['n']:,} rows of {selection}")
