"""The Spark moment engine: per-bucket sums of row expressions, computed by Spark.

It answers the :class:`causal_core.moments.engine.MomentEngine` questions on a prepared
DataFrame (numeric model columns, ``__bucket`` from :func:`with_buckets`, and ``__unit``
when rows are clustered) with one aggregation per question; the driver receives a
K x m array and never a row. Moment arrays reach the driver only through
:func:`collect_arrow`, which refuses anything larger than the array asked for.

* expressions are compiled by :mod:`jobs.spark.compiler` (SQL text, one JVM call each);
* Moments are exploded to ``(group, position, value)`` and summed with exact
  fixed-point limbs (:mod:`jobs.spark.exact_sums`), so the arrays are bit-for-bit the same
  whatever the partitioning; ``exact=False`` uses plain ``sum(double)`` instead. The
  long layout keeps one narrow ``groupBy(__bucket, position)`` whatever m is: m wide
  sums times 7 limb columns would pass the ~100 fields where Spark gives up whole-stage
  code generation (a Gram of 20 covariates is ~1000 moments).
* passes are grouped by bucket, or by bucket and a small key (:meth:`grouped_sums`), or
  not grouped at all (:meth:`totals`: one ``agg`` over the frame, whose running sums the
  generated code keeps in locals: 28 sums over 10M cached rows take 0.45-0.75 s, grouped
  by bucket 1.0-1.7 s); they are remembered per engine, so estimators sharing a frame
  compute a common pass once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from causal_core.errors import DataCheckError, EstimationError
from causal_core.moments.engine import BUCKET, DEFAULT_BUCKETS, UNIT, Totals, triu_pairs
from causal_core.moments.expr import Compare, Expr, Lit
from jobs.spark.collect import collect_arrow, collect_bounded, collect_one
from jobs.spark.exact_sums import LIMBS, REST, combine_limbs, limb_aggregates, q, with_limbs, with_total
from jobs.spark.compiler import compile_expr, compile_sql, has_row_poisson, poisson_weight, unit_key

__all__ = ("SparkMomentEngine", "with_buckets", "with_level_codes", "collect_arrow", "duplicate_dispersion")

_POS, _VAL, _GROUP = "__pos", "__v", "__g"


COPY = "__copy"


def with_buckets(df: DataFrame, n_buckets: int, unit_column: str | None = None, salt: str = "whybatch", *,
                 copies: bool = False, flags: Sequence[str] = ()) -> DataFrame:
    """Add ``__bucket = pmod(xxhash64(key, salt), K)``, and ``__unit`` when a unit is given.

    The key of a unit is its canonical text (:func:`jobs.spark.compiler.unit_key`): the same
    ids stored as int, long, double, decimal or their digits as strings get the same
    buckets. ``__unit`` keeps the ids as stored (cluster sums group by it).

    Without a unit the hash covers every column of the row, so the bucket is a function of
    the row's values, never of its position or partition. Identical rows then share a
    bucket; ``copies=True`` numbers the copies of each distinct row (``__copy``, 1..c, by a
    window over all columns: a shuffle) and hashes that too, so each copy is a unit of
    its own — still independent of the partitioning, since copies are interchangeable.
    ``flags`` are bookkeeping columns (which rows a study keeps), not row values: the hash
    leaves them out, so a row's bucket does not depend on them.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    if unit_column is not None:
        if unit_column not in df.columns:
            raise DataCheckError(f"unit column {unit_column!r} is not in the frame (columns: {df.columns})")
        dtype = df.schema[unit_column].dataType
        df = df if unit_column == UNIT else df.withColumn(UNIT, q(unit_column))
        h = F.xxhash64(unit_key(q(UNIT), dtype), F.lit(salt))
    else:
        values = [q(c) for c in df.columns if c != COPY and c not in flags]
        if copies:
            df = df.withColumn(COPY, F.row_number().over(Window.partitionBy(*values).orderBy(*values)))
        h = F.xxhash64(*values, *([q(COPY)] if copies else []), F.lit(salt))
    return df.withColumn(BUCKET, F.pmod(h, F.lit(int(n_buckets))).cast("int"))


LEVELS_KEY = "whybatch.levels"  # column metadata of a coded column: the value of each code


def with_level_codes(df: DataFrame, columns: Sequence[str], max_levels: int,
                     what: str = "discrete variable") -> tuple[DataFrame, dict[str, tuple[str, ...]]]:
    """Replace each of ``columns`` by its level code, a double: the position (0, 1, ...) of
    the value's text among the column's distinct texts, sorted. The levels travel in the
    coded column's metadata, as Spark ML's ``StringIndexer`` keeps its labels, where
    :meth:`SparkMomentEngine.level_labels` reads them; they are returned as well.

    One aggregation over ``df`` (meant to be the prepared, cached rows) finds them: each
    distinct (column, text) pair, numbered per column in order, and at most
    ``max_levels + 1`` per column reach the driver, with the column's count of distinct
    values. A column with more than ``max_levels`` is an :class:`EstimationError` naming
    it and the count.
    """
    if not columns:
        return df, {}
    tagged = F.explode(F.array(*[F.struct(F.lit(i).alias("v"), q(c).cast("string").alias("level"))
                                 for i, c in enumerate(columns)]))
    pairs = df.select(tagged.alias("e")).select("e.v", "e.level").where(F.col("level").isNotNull()).distinct()
    per_column = Window.partitionBy("v")
    ranked = pairs.select("v", "level", F.row_number().over(per_column.orderBy("level")).alias("k"),
                          F.count(F.lit(1)).over(per_column).alias("n")).where(F.col("k") <= max_levels + 1)
    rows = sorted(collect_bounded(ranked, len(columns) * (max_levels + 1), f"levels of {list(columns)}"),
                  key=lambda r: (r["v"], r["k"]))
    counts = {columns[r["v"]]: r["n"] for r in rows}
    for c in columns:
        if counts.get(c, 0) > max_levels:
            raise EstimationError(f"{what} {c!r} has {counts[c]} distinct values; at most {max_levels} can be "
                                  "coded as levels (coarsen it, e.g. with a derived column)")
    levels = {c: tuple(r["level"] for r in rows if columns[r["v"]] == c) for c in columns}
    coded = {c: (F.array_position(F.array(*[F.lit(v) for v in levels[c]]), q(c).cast("string")) - 1)
             .cast("double").alias(c, metadata={LEVELS_KEY: list(levels[c])}) for c in columns}
    return df.select(*[coded.get(c, q(c)) for c in df.columns]), levels


def duplicate_dispersion(bucket_counts: np.ndarray) -> float:
    """Variance over mean of the rows per bucket. Distinct rows hashed to K buckets give
    about 1 (multinomial counts; sd about sqrt(2 / K)); rows in groups of identical copies
    sharing a bucket give the size-weighted mean group size, sum c^2 / sum c."""
    counts = np.asarray(bucket_counts, dtype=np.float64)
    mean = counts.mean()
    return float(counts.var(ddof=1) / mean) if mean > 0 and len(counts) > 1 else 1.0


class SparkMomentEngine:
    """Per-bucket moment sums over a prepared Spark DataFrame (see the module docstring).

    ``persist()`` caches the frame (optionally projected to the columns a fit needs) for
    estimators that take several passes; ``with engine.persist(): ...`` unpersists on exit.
    """

    def __init__(self, df: DataFrame, *, n_buckets: int = DEFAULT_BUCKETS, exact: bool = True) -> None:
        if BUCKET not in df.columns:
            raise DataCheckError(f"the frame has no {BUCKET!r} column; prepare it with with_buckets()")
        self._source = df
        self._frame = df
        self._n = int(n_buckets)
        self.exact = exact
        self.unit_column = UNIT if UNIT in df.columns else None
        self._cached: DataFrame | None = None
        self._unit_counts: np.ndarray | None = None
        # Passes already computed on this frame, by their expressions: estimators sharing
        # the engine (one study, one model frame) open with the same arm-Gram pass.
        self._memo: dict[tuple, np.ndarray] = {}
        self._sum_memo: dict[Expr, float] = {}  # totals, per expression
        self._extreme_memo: dict[Expr, tuple[float, float]] = {}

    @property
    def n_buckets(self) -> int:
        return self._n

    def level_labels(self, column: str) -> tuple[str, ...] | None:
        """The values the codes of a column coded by :func:`with_level_codes` stand for
        (code k is ``labels[k]``); None for a column that was not coded."""
        if column not in self._source.columns:
            return None
        labels = self._source.schema[column].metadata.get(LEVELS_KEY)
        return None if labels is None else tuple(labels)

    def persist(self, columns: Sequence[str] | None = None) -> SparkMomentEngine:
        self.unpersist()
        frame = self._source
        if columns is not None:
            keep = list(dict.fromkeys([*columns, BUCKET, *([UNIT] if self.unit_column else [])]))
            frame = frame.select(*[q(c) for c in keep])
        self._cached = frame.persist()
        self._frame = self._cached
        return self

    def unpersist(self) -> None:
        if self._cached is not None:
            self._cached.unpersist()
        self._cached = None
        self._frame = self._source

    def __enter__(self) -> SparkMomentEngine:
        if self._cached is None:
            self.persist()
        return self

    def __exit__(self, *exc) -> None:
        self.unpersist()

    def _key(self) -> Column:
        """What row-level draws are keyed on: the unit's canonical text (the key its bucket
        hashes), or a hash of the row's values."""
        if self.unit_column is not None:
            return unit_key(q(UNIT), self._source.schema[UNIT].dataType)
        return F.xxhash64(*[q(c) for c in self._source.columns if c != BUCKET])

    def _values(self, exprs: Sequence[Expr]) -> Column:
        key = self._key()
        return F.array(*[compile_expr(e, key) for e in exprs])

    def _projected(self, exprs: Sequence[Expr], text: bool = False) -> tuple[DataFrame, list[Column] | list[str]]:
        """The frame with repeated subexpressions projected once, and the compiled moments
        (with ``text``: their SQL text when every one has one)."""
        from jobs.spark.cse import eliminate

        key: list[Column] = []  # the row key is built only if a RowPoisson draw needs it

        def compile_one(e: Expr) -> Column:
            if not key and has_row_poisson(e):
                key.append(self._key())
            return compile_expr(e, key[0] if key else None)

        return eliminate(self._frame, exprs, compile_one,
                         lambda e: None if has_row_poisson(e) else compile_sql(e), text=text)

    def _group(self, key: Expr | None, levels: int) -> Column:
        """The aggregation group: the bucket, or ``bucket * levels + key``."""
        if key is None:
            return q(BUCKET)
        k = F.expr(compile_sql(key))
        return q(BUCKET) * F.lit(int(levels)) + k.cast("int")

    def _wide_bucket_sums(self, exprs: Sequence[Expr], key: Expr | None = None, levels: int = 1) -> np.ndarray:
        """One ``groupBy(group).agg(sum, sum, ...)``: the fast path (plain double sums)."""
        frame, cols = self._projected(exprs)
        n_groups = self._n * levels
        agg = frame.groupBy(self._group(key, levels).alias(_GROUP)).agg(
            *[F.sum(c).alias(f"__s{j}") for j, c in enumerate(cols)])
        table = collect_arrow(agg, n_groups, "bucket sums")
        group = table.column(_GROUP).to_numpy().astype(np.int64)
        out = np.zeros((n_groups, len(exprs)))
        if len(group) and (group.min() < 0 or group.max() >= n_groups):
            raise DataCheckError(f"bucket sums: group ids outside [0, {n_groups})")
        for j in range(len(exprs)):
            out[group, j] = table.column(f"__s{j}").to_numpy(zero_copy_only=False)
        return out

    def _sum_long(self, long: DataFrame, groups: Sequence[str]) -> DataFrame:
        """Sum ``__v`` by ``groups``: exact limbs, or plain double sums."""
        if not self.exact:
            return long.groupBy(*[q(g) for g in groups]).agg(F.sum(F.col(_VAL)).alias(_VAL))
        return with_limbs(long, _VAL, groups).groupBy(*[q(g) for g in groups]).agg(*limb_aggregates())

    def _dense(self, agg: DataFrame, n_groups: int, m: int, what: str) -> np.ndarray:
        hint = f" (n_buckets={self._n}: is that the K with_buckets() used?)" if n_groups == self._n else ""
        table = collect_arrow(agg, n_groups * m, what + hint)
        group = table.column(_GROUP).to_numpy().astype(np.int64)
        pos = table.column(_POS).to_numpy().astype(np.int64)
        if self.exact:
            limbs = np.column_stack([table.column(n).to_numpy() for n in LIMBS]) if len(group) else \
                np.zeros((0, len(LIMBS)), dtype=np.int64)
            values = combine_limbs(limbs, table.column(REST).to_numpy())
        else:
            values = table.column(_VAL).to_numpy()
        if len(group) and (group.min() < 0 or group.max() >= n_groups):
            raise DataCheckError(f"{what}: group ids outside [0, {n_groups}){hint}")
        out = np.zeros((n_groups, m))
        out[group, pos] = values
        return out

    def _remembered(self, key: tuple, compute) -> np.ndarray:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key].copy()

    def bucket_sums(self, exprs: Sequence[Expr]) -> np.ndarray:
        return self._remembered(("sums", tuple(exprs)), lambda: self._bucket_sums(exprs))

    def _bucket_sums(self, exprs: Sequence[Expr]) -> np.ndarray:
        if not exprs:
            return np.zeros((self._n, 0))
        if not self.exact:
            return self._wide_bucket_sums(exprs)
        frame, cols = self._projected(exprs)
        long = frame.select(q(BUCKET).alias(_GROUP), F.posexplode(F.array(*cols)).alias(_POS, _VAL))
        return self._dense(self._sum_long(long, [_GROUP, _POS]), self._n, len(exprs), "bucket sums")

    @staticmethod
    def _grouped_key(exprs: Sequence[Expr], key: Expr, levels: int) -> tuple:
        return "grouped", tuple(exprs), key, int(levels)

    def grouped_sums(self, exprs: Sequence[Expr], key: Expr, levels: int) -> np.ndarray:
        return self._remembered(self._grouped_key(exprs, key, levels),
                                lambda: self._grouped_sums(exprs, key, int(levels)))

    def remember_grouped(self, exprs: Sequence[Expr], key: Expr, levels: int, sums: np.ndarray) -> None:
        """Take ``sums`` ``(K, levels, m)`` as this frame's :meth:`grouped_sums` of ``exprs`` by
        ``key``: a pass made while the frame was prepared (:func:`jobs.warehouse.prepare.build_model_frame`)."""
        sums = np.asarray(sums, dtype=np.float64)
        if sums.shape != (self._n, int(levels), len(exprs)):
            raise ValueError(f"grouped sums of shape {sums.shape}; expected {(self._n, int(levels), len(exprs))}")
        self._memo[self._grouped_key(exprs, key, levels)] = sums.copy()

    def remembers_grouped(self, exprs: Sequence[Expr], key: Expr, levels: int) -> bool:
        """Whether :meth:`grouped_sums` of these would cost no pass."""
        return self._grouped_key(exprs, key, levels) in self._memo

    def _grouped_sums(self, exprs: Sequence[Expr], key: Expr, levels: int) -> np.ndarray:
        if not exprs:
            return np.zeros((self._n, levels, 0))
        bad = Compare("<", key, Lit(0.0)) + Compare(">=", key, Lit(float(levels))) + \
            Compare("!=", key, key)  # below, above, or NaN: counted, refused below
        if not self.exact:
            out = self._wide_bucket_sums([*exprs, bad], key * Compare("==", bad, Lit(0.0)), levels)
        else:
            frame, cols = self._projected([*exprs, bad])
            safe = key * Compare("==", bad, Lit(0.0))
            long = frame.select(self._group(safe, levels).alias(_GROUP),
                                F.posexplode(F.array(*cols)).alias(_POS, _VAL))
            out = self._dense(self._sum_long(long, [_GROUP, _POS]), self._n * levels, len(exprs) + 1,
                              "grouped sums")
        if out[:, -1].sum() > 0:
            raise ValueError(f"grouped sums: the key takes values outside [0, {levels})")
        return out[:, :-1].reshape(self._n, levels, len(exprs))

    def totals(self, exprs: Sequence[Expr], extremes: Sequence[Expr] = ()) -> Totals:
        """Remembered per expression: a pass that summed more (a Newton step with a
        final batch riding on it) answers a later pass asking for part of it."""
        sums = [e for e in dict.fromkeys(exprs) if e not in self._sum_memo]
        ends = [e for e in dict.fromkeys(extremes) if e not in self._extreme_memo]
        if sums or ends:
            total, low, high = self._totals(sums, ends)
            self._sum_memo.update(zip(sums, total))
            self._extreme_memo.update(zip(ends, zip(low, high)))
        return Totals(np.array([self._sum_memo[e] for e in exprs], dtype=np.float64),
                      np.array([self._extreme_memo[e][0] for e in extremes], dtype=np.float64),
                      np.array([self._extreme_memo[e][1] for e in extremes], dtype=np.float64))

    def _totals(self, exprs: list[Expr], extremes: list[Expr]) -> tuple[np.ndarray, ...]:
        m, k = len(exprs), len(extremes)
        if m == 0 and k == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        frame, cols = self._projected([*exprs, *extremes], text=not self.exact)
        if cols and isinstance(cols[0], str):  # one selectExpr: one JVM call for every aggregate
            row = collect_one(frame.selectExpr(*[f"sum({c})" for c in cols[:m]], *[f"min({c})" for c in cols[m:]],
                                               *[f"max({c})" for c in cols[m:]]), "totals")
        else:
            aggs = [] if self.exact else [F.sum(c) for c in cols[:m]]
            aggs += [F.min(c) for c in cols[m:]] + [F.max(c) for c in cols[m:]]
            row = collect_one(frame.agg(*aggs), "totals") if aggs else ()
        as_float = lambda v, empty: empty if v is None else float(v)  # noqa: E731 (no rows: null)
        if self.exact:
            long = frame.select(F.lit(0).alias(_GROUP), F.posexplode(F.array(*cols[:m])).alias(_POS, _VAL))
            sums = self._dense(self._sum_long(long, [_GROUP, _POS]), 1, m, "totals")[0] if m else np.zeros(0)
            rest = list(row)
        else:
            sums = np.array([as_float(v, 0.0) for v in row[:m]])
            rest = list(row[m:])
        low = np.array([as_float(v, np.inf) for v in rest[:k]])
        high = np.array([as_float(v, -np.inf) for v in rest[k:]])
        return sums, low, high

    def cluster_cross_sums(self, exprs: Sequence[Expr]) -> np.ndarray:
        m = len(exprs)
        pairs = triu_pairs(m)
        if self.unit_column is None:  # every row is its own unit
            return self.bucket_sums([exprs[i] * exprs[j] for i, j in pairs])
        long = self._frame.select(q(UNIT), q(BUCKET), F.posexplode(self._values(exprs)).alias(_POS, _VAL))
        keys = [UNIT, BUCKET, _POS]
        per_unit = self._sum_long(long, keys)
        if self.exact:
            per_unit = with_total(per_unit, keys, _VAL)
        scores = per_unit.groupBy(q(UNIT), q(BUCKET)).agg(
            F.map_from_entries(F.collect_list(F.struct(F.col(_POS), F.col(_VAL)))).alias("__s"))
        s = F.col("__s")
        # One row per unit here, so a trailing constant 1 counts the units per bucket: the
        # cluster count of the small-sample factor comes with the meat, not in another job.
        products = F.array(*[F.element_at(s, F.lit(i)) * F.element_at(s, F.lit(j)) for i, j in pairs], F.lit(1.0))
        long2 = scores.select(q(BUCKET).alias(_GROUP), F.posexplode(products).alias(_POS, _VAL))
        out = self._dense(self._sum_long(long2, [_GROUP, _POS]), self._n, len(pairs) + 1, "cluster cross sums")
        self._unit_counts = out[:, -1].copy()
        return out[:, :-1]

    def unit_counts(self) -> np.ndarray:
        """Units per bucket; remembered (the frame does not change), and filled in as a
        by-product of :meth:`cluster_cross_sums`."""
        if self._unit_counts is not None:
            return self._unit_counts.copy()
        count = F.count_distinct(q(UNIT)) if self.unit_column else F.count(F.lit(1))
        agg = self._frame.groupBy(q(BUCKET).alias(_GROUP)).agg(count.alias(_VAL))
        table = collect_arrow(agg, self._n, "unit counts")
        out = np.zeros(self._n)
        out[table.column(_GROUP).to_numpy().astype(np.int64)] = table.column(_VAL).to_numpy()
        self._unit_counts = out
        return out.copy()

    def replicate_sums(self, exprs: Sequence[Expr], n_replicates: int, seed: int) -> np.ndarray:
        """Exact row-level Poisson bootstrap totals: each row is exploded into its B
        replicate weights (the same draws as ``RowPoisson(b, seed)``), one aggregation."""
        b, m = int(n_replicates), len(exprs)
        if b < 1 or m == 0:
            return np.zeros((max(b, 0), m))
        base = self._frame.select(self._key().alias("__key"), self._values(exprs).alias("__vals"))
        reps = base.select("__key", "__vals", F.explode(F.sequence(F.lit(0), F.lit(b - 1))).alias(_GROUP))
        w = poisson_weight(F.col("__key"), seed, F.col(_GROUP))
        weighted = reps.select(_GROUP, w.alias("__w"), "__vals").select(
            _GROUP, F.posexplode(F.transform(F.col("__vals"), lambda v: v * F.col("__w"))).alias(_POS, _VAL))
        return self._dense(self._sum_long(weighted, [_GROUP, _POS]), b, m, "replicate sums")
