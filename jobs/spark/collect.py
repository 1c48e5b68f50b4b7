"""The one door through which data reaches the driver: small aggregates only.

Everything the driver sees — per-bucket moment sums, category levels, row counts — goes
through :func:`collect_small` (or, for aggregates grouped by bounded ids, :func:`collect_bounded`
and :func:`collect_arrow`), which refuses results larger than ``max_rows`` so that a
mistake cannot pull a table's rows into the driver.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Row

from causal_core.errors import DataCheckError

MAX_ROWS = 200_000


def collect_small(df: DataFrame, max_rows: int = MAX_ROWS, what: str = "aggregate") -> list[Row]:
    """Collect an aggregate known to be small; fail clearly if it is not."""
    rows = df.limit(max_rows + 1).collect()
    if len(rows) > max_rows:
        raise DataCheckError(f"{what}: more than {max_rows} rows would reach the driver; "
                             "this is a bug or a column with far too many levels")
    return rows


def collect_bounded(df: DataFrame, max_rows: int, what: str = "aggregate") -> list[Row]:
    """Collect an aggregate grouped by ids that are bounded by construction (bucket ids in
    [0, K)): no ``limit`` — which makes Spark run the query as several jobs, one more
    partition at a time — only the check that the bound held."""
    rows = df.collect()
    if len(rows) > max_rows:
        raise DataCheckError(f"{what}: {len(rows)} rows came back where at most {max_rows} can; this is a bug")
    return rows


def collect_one(df: DataFrame, what: str = "aggregate") -> Row:
    rows = collect_small(df, 1, what)
    if not rows:
        raise DataCheckError(f"{what}: the aggregate returned no row")
    return rows[0]


def collect_arrow(df: DataFrame, max_rows: int, what: str):
    """Collect a small aggregate as an Arrow table; refuse more than ``max_rows`` rows.

    For aggregates grouped by ids in ``[0, max_rows)`` by construction (the engine's): no
    ``limit`` (which runs a query as several jobs, one more partition at a time), only the
    check that the bound held."""
    table = df.toArrow()
    if table.num_rows > max_rows:
        raise DataCheckError(f"{what}: more than {max_rows} rows would reach the driver; this is a bug")
    return table
