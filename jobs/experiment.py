"""The experiment pass: exposure rows -> units -> sums per arm, bucket and segment level, in
one Spark plan that ends with one small collect.

1. ``groupBy(unit)``: per unit the sums of the metric columns (a proportion's column: its
   maximum, so a unit converted if any of its rows did), the pre-period covariates (their
   maximum: a property of the unit, repeated on its rows), each segment column (its
   maximum as text), its rows, and its lowest and highest arm. A unit seen in two arms,
   or with an arm outside the declared ones, gets a pseudo-arm: it is counted and
   reported, never read out.
2. Each unit gets its bucket ``pmod(xxhash64(unit key, salt), K)`` (DESIGN.md, "The
   engine"; the same as every estimator's) and is exploded to one row per grouping set:
   ``(bucket)`` and one ``(level)`` per segment column. ``groupBy(arm, set, key)`` sums
   ``n``, ``Σv`` and ``Σv·w`` for the unit variables: the :class:`ArmSums` of each arm per
   bucket (for the bucket bootstrap) and per segment level (for the segment readouts).
3. Quantile metrics: per (arm, set, key) the unit counts of each unit value rounded to
   :data:`QUANTILE_DIGITS` significant digits (round half to even). Chosen over Spark's
   ``percentile_approx``: the resampling-free interval (Schultzberg & Ankargren 2022)
   needs the order statistics at binomial ranks, which a histogram gives and a point
   quantile does not, and ``percentile_approx``'s default rank error (n/10,000) exceeds
   that interval's half-width (about 2√(n q(1-q))) beyond a few million units; rounding
   keeps ranks exact and moves values by at most half a unit in the third digit. Histograms
   of different segments and days merge by adding counts.

Steps 2 and 3 are one query: each unit's moment rows — one by bucket, one by its segment
levels — and histogram rows are summed per (arm, bucket, segment levels, value) first, and
those partial sums are rolled up to the grouping sets, so the table is scanned and the
units shuffled once, the explosion into sets works on partial sums, and the driver gets
K × arms + arms × levels rows plus the histograms. The bucket and the segment levels are
kept in separate moment rows: crossed, they would make K × arms × the product of the
segment columns' levels partial groups (300,000 at K = 1,000 with levels 4 and 25),
which costs more than a second row per unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from causal_core.errors import EstimationError
from causal_core.experiments import ArmSums, Metric, ValueCounts
from causal_core.moments.engine import BUCKET
from causal_core.spec import StudySpec
from causal_core.study import Interval
from jobs.spark.collect import collect_arrow
from jobs.spark.engine import with_buckets
from jobs.spark.exact_sums import q
from jobs.warehouse.read import read_study_frame

QUANTILE_DIGITS = 3
MAX_COLLECTED = 2_000_000  # rows of the one collect: sums per bucket and level, histograms
TWO_ARMS, UNKNOWN_ARM = "\u0000two arms", "\u0000undeclared arm"
EXCLUDED = {TWO_ARMS: "unit seen in more than one arm", UNKNOWN_ARM: "arm not among the declared arms"}
NULL_LEVEL = "(null)"
_ARM, _SET, _KEY, _Q, _VALUE, _N, _ROWS = "__arm", "__set", "__key", "__q", "__value", "__n", "__rows"


@dataclass(frozen=True)
class Variable:
    """A unit-level variable: its name in the sums, its column and how rows make a unit's value."""

    name: str
    column: str
    how: str  # "sum" or "max"


def unit_variables(metrics: tuple[Metric, ...]) -> tuple[Variable, ...]:
    """The variables the metrics' sums need: each metric column summed (a proportion's
    column: its maximum), each covariate's maximum; named ``how(column)``."""
    out: dict[str, Variable] = {}
    for m in metrics:
        if m.kind != "quantile":
            how = "max" if m.kind == "proportion" else "sum"
            for c in (m.numerator, m.denominator):
                if c is not None:
                    out.setdefault(f"{how}({c})", Variable(f"{how}({c})", c, how))
        for c in (m.covariate, m.covariate_denominator):
            if c is not None:
                out.setdefault(f"max({c})", Variable(f"max({c})", c, "max"))
    return tuple(out.values())


def internal_metric(m: Metric) -> Metric:
    """``m`` on the variable names of :func:`unit_variables` (quantiles keep their column)."""
    if m.kind == "quantile":
        return m
    how = "max" if m.kind == "proportion" else "sum"
    name = lambda c, h=how: None if c is None else f"{h}({c})"  # noqa: E731
    return Metric(name=m.name, numerator=name(m.numerator), denominator=name(m.denominator), kind=m.kind,
                  covariate=name(m.covariate, "max"), covariate_denominator=name(m.covariate_denominator, "max"),
                  inverse=m.inverse, level=m.level)


@dataclass
class ExperimentSums:
    """What the pass returns: per-bucket sums of each arm (segment ``all``), totals per
    segment level (``column=level`` → arm → sums), histograms per (segment, arm, metric),
    units and rows left out by reason, and the rows read."""

    names: tuple[str, ...]
    buckets: dict[str, ArmSums]
    levels: dict[str, dict[str, dict[str, ArmSums]]] = field(default_factory=dict)
    histograms: dict[tuple[str, str, str], ValueCounts] = field(default_factory=dict)
    excluded_units: dict[str, int] = field(default_factory=dict)
    excluded_rows: dict[str, int] = field(default_factory=dict)
    rows: int = 0


def rounded(x: Column, digits: int = QUANTILE_DIGITS) -> Column:
    """``x`` rounded to ``digits`` significant digits, half to even (``rint``); the power of
    ten is always an exact double (multiplied or divided by), so every engine agrees."""
    k = F.lit(digits - 1) - F.floor(F.log10(F.abs(x)))
    up = F.rint(x * F.pow(F.lit(10.0), k)) / F.pow(F.lit(10.0), k)
    down = F.rint(x / F.pow(F.lit(10.0), -k)) * F.pow(F.lit(10.0), -k)
    return F.when((x == 0) | x.isNull(), F.lit(0.0)).when(k >= 0, up).otherwise(down)


def rounded_numpy(x, digits: int = QUANTILE_DIGITS) -> np.ndarray:
    """:func:`rounded` in numpy (the oracle's)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore"):
        k = (digits - 1) - np.floor(np.log10(np.abs(x)))
    k = np.where(x == 0, 0, k)
    out = np.where(k >= 0, np.rint(x * 10.0 ** np.abs(k)) / 10.0 ** np.abs(k),
                   np.rint(x / 10.0 ** np.abs(k)) * 10.0 ** np.abs(k))
    return np.where(x == 0, 0.0, out)


def unit_frame(raw: DataFrame, spec: StudySpec, variables: tuple[Variable, ...], quantile_columns: tuple[str, ...],
               n_buckets: int) -> DataFrame:
    """Step 1 and the bucket: one row per unit with ``__arm`` (an arm's text, or a
    pseudo-arm), ``__rows``, the variables, the quantile columns' sums, the segment
    levels as text and ``__bucket``."""
    exp, unit, t = spec.experiment, spec.data.unit_id, spec.treatment[0]
    arms = F.array(*[F.lit(a) for a in exp.arms])
    code = F.coalesce(F.array_position(arms, q(t).cast("string")), F.lit(0))  # 1.. per arm, 0 undeclared
    aggs = [F.min(code).alias("__lo"), F.max(code).alias("__hi"), F.count(F.lit(1)).alias(_ROWS)]
    aggs += [F.coalesce(getattr(F, v.how)(q(v.column).cast("double")), F.lit(0.0)).alias(v.name) for v in variables]
    aggs += [F.coalesce(F.sum(q(c).cast("double")), F.lit(0.0)).alias(f"sum({c})") for c in quantile_columns
             if f"sum({c})" not in {v.name for v in variables}]
    aggs += [F.coalesce(F.max(q(c).cast("string")), F.lit(NULL_LEVEL)).alias(f"__seg{j}")
             for j, c in enumerate(spec.segments)]
    units = raw.groupBy(q(unit).alias(unit)).agg(*aggs)
    label = (F.when(F.col("__lo") == 0, F.lit(UNKNOWN_ARM)).when(F.col("__lo") != F.col("__hi"), F.lit(TWO_ARMS))
             .otherwise(F.element_at(arms, F.col("__lo").cast("int"))))
    units = units.withColumn(_ARM, label).drop("__lo", "__hi")
    return with_buckets(units, n_buckets, unit)


def _sets(n_segments: int) -> Column:
    """The (set, key) pairs a partial row adds to: a bucket moment row (``__bucket`` >= 0)
    to the bucket's; a level moment row to each segment column's level; a histogram row
    to ``(0, "")`` (histograms are not split by bucket) and to each segment column's level."""
    bucket_row = (F.col(_Q) < 0) & (F.col(BUCKET) >= 0)
    first = F.struct(F.lit(0).alias("s"), F.when(bucket_row, F.col(BUCKET).cast("string")).otherwise(F.lit("")).alias("k"))
    levels = [F.struct(F.lit(j + 1).alias("s"), F.col(f"__seg{j}").alias("k")) for j in range(n_segments)]
    if not levels:
        return F.explode(F.array(first))
    return F.explode(F.when(bucket_row, F.array(first)).when(F.col(_Q) < 0, F.array(*levels))
                     .otherwise(F.array(first, *levels)))


def sums_and_histograms(units: DataFrame, names: tuple[str, ...], quantile_columns: tuple[str, ...],
                        n_segments: int) -> DataFrame:
    """Steps 2 and 3 as one query of two aggregations. Each unit becomes a bucket moment row
    (``__q`` = -1, its bucket, no levels: n, rows and sums), a level moment row when there
    are segments (``__q`` = -1, bucket -1, its levels) and one row per quantile column
    (``__q`` = i, bucket -1, its levels and rounded value); the first aggregation sums them
    per (arm, bucket, every segment level, ``__q``, value) and the second rolls those partial
    sums up to each grouping set (:func:`_sets`)."""
    segs = [f"__seg{j}" for j in range(n_segments)]
    blank = [F.lit(None).cast("string").alias(g) for g in segs]

    def row(i: int, bucket: Column, levels: list[Column], value: Column) -> Column:
        return F.struct(F.lit(i).alias("i"), bucket.alias("b"), *levels, value.alias("v"))

    mine = [F.col(g) for g in segs]
    parts = [row(-1, F.col(BUCKET), blank, F.lit(0.0))]
    parts += [row(-1, F.lit(-1), mine, F.lit(0.0))] if n_segments else []
    parts += [row(i, F.lit(-1), mine, rounded(q(f"sum({c})"))) for i, c in enumerate(quantile_columns)]
    rows = units.select(_ARM, _ROWS, *[q(n) for n in names], F.explode(F.array(*parts)).alias("h")).select(
        _ARM, F.col("h.b").alias(BUCKET), *[F.col(f"h.{g}").alias(g) for g in segs],
        F.col("h.i").alias(_Q), F.col("h.v").alias(_VALUE), _ROWS, *[q(n) for n in names])
    moment = F.col(_Q) < 0
    pairs = [(i, j) for i in range(len(names)) for j in range(i, len(names))]
    sums = [f"s{i}" for i in range(len(names))] + [f"c{i}_{j}" for i, j in pairs]
    partial = rows.groupBy(_ARM, BUCKET, *segs, _Q, _VALUE).agg(
        F.count(F.lit(1)).alias(_N), F.sum(F.when(moment, F.col(_ROWS))).alias(_ROWS),
        *[F.sum(F.when(moment, q(n))).alias(f"s{i}") for i, n in enumerate(names)],
        *[F.sum(F.when(moment, q(names[i]) * q(names[j]))).alias(f"c{i}_{j}") for i, j in pairs])
    by_set = partial.select(_ARM, _Q, _VALUE, _N, _ROWS, *sums, _sets(n_segments).alias("g")).select(
        _ARM, F.col("g.s").alias(_SET), F.col("g.k").alias(_KEY), _Q, _VALUE, _N, _ROWS, *sums)
    return by_set.groupBy(_ARM, _SET, _KEY, _Q, _VALUE).agg(
        *[F.sum(c).alias(c) for c in (_N, _ROWS, *sums)])


def experiment_sums(spark: SparkSession, spec: StudySpec, metrics: tuple[Metric, ...], interval: Interval = Interval(),
                    n_buckets: int | None = None) -> ExperimentSums:
    """Run the pass (module docstring) on the study's interval and arrange its one collect
    as :class:`ArmSums` and :class:`ValueCounts` (segment levels: every level; the readout
    keeps the top ones)."""
    k = n_buckets or spec.data.buckets
    variables = unit_variables(metrics)
    names = tuple(v.name for v in variables)
    quantile_columns = tuple(dict.fromkeys(m.numerator for m in metrics if m.kind == "quantile"))
    columns = [spec.data.unit_id, spec.treatment[0], *{v.column for v in variables}, *quantile_columns,
               *spec.segments]
    raw = read_study_frame(spark, spec, sorted(set(columns)), start=interval.start, end=interval.end)
    units = unit_frame(raw, spec, variables, quantile_columns, k)
    table = collect_arrow(sums_and_histograms(units, names, quantile_columns, len(spec.segments)), MAX_COLLECTED,
                          "experiment sums per arm, bucket and segment level")
    arrays = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}
    return arrange(arrays, spec, names, quantile_columns, k)


def arrange(cols: dict, spec: StudySpec, names: tuple[str, ...], quantile_columns: tuple[str, ...],
            n_buckets: int) -> ExperimentSums:
    """The collected rows (column name → numpy array; a histogram row's sums are null, NaN
    here) as :class:`ExperimentSums`."""
    p = len(names)
    qi, sets = (np.asarray(cols[c], dtype=np.int64) for c in (_Q, _SET))
    arm, key = (np.asarray(cols[c], dtype=object) for c in (_ARM, _KEY))
    n = np.asarray(cols[_N], dtype=float)
    sums = np.column_stack([np.asarray(cols[f"s{i}"], dtype=float) for i in range(p)]) if p else np.zeros((len(n), 0))
    cross = np.zeros((len(n), p, p))
    for i in range(p):
        for j in range(i, p):
            cross[:, i, j] = cross[:, j, i] = np.asarray(cols[f"c{i}_{j}"], dtype=float)
    rows_read = np.asarray(cols[_ROWS], dtype=float)  # row counts: exact in a double below 2**53
    out = ExperimentSums(names=names, buckets={})
    moments = qi < 0
    for a in spec.experiment.arms:
        rows = np.flatnonzero(moments & (arm == a) & (sets == 0))
        b = key[rows].astype(np.int64)
        nb, sb, cb = np.zeros(n_buckets), np.zeros((n_buckets, p)), np.zeros((n_buckets, p, p))
        nb[b], sb[b], cb[b] = n[rows], sums[rows], cross[rows]
        out.buckets[a] = ArmSums(names, nb, sb, cb)
    overall = moments & (sets == 0)
    out.rows = int(rows_read[overall].sum())
    for pseudo, why in EXCLUDED.items():
        mine = overall & (arm == pseudo)
        out.excluded_units[why] = int(n[mine].sum())
        out.excluded_rows[why] = int(rows_read[mine].sum())
    for j, column in enumerate(spec.segments):
        rows = np.flatnonzero(moments & (sets == j + 1) & np.isin(arm, list(spec.experiment.arms)))
        for r in rows:
            out.levels.setdefault(column, {}).setdefault(key[r], {})[arm[r]] = ArmSums(names, n[r], sums[r], cross[r])
    if quantile_columns:
        _histograms(out, np.asarray(cols[_VALUE], dtype=float), n, qi, arm, sets, key, spec, quantile_columns)
    return out


def _histograms(out: ExperimentSums, value: np.ndarray, n: np.ndarray, qi, arm, sets, key, spec: StudySpec,
                quantile_columns: tuple[str, ...]) -> None:
    """``out.histograms[(set text, arm, column)]`` from the ``__q`` >= 0 rows; the set text
    is ``all`` or ``column=level``. The rows are numbered by group and sorted once by group,
    then value."""
    rows = np.flatnonzero((qi >= 0) & np.isin(arm, list(spec.experiment.arms)))
    if not len(rows):
        return
    groups = pd.DataFrame({"s": sets[rows], "k": key[rows], "a": arm[rows], "q": qi[rows]}).groupby(
        ["s", "k", "a", "q"], sort=False).ngroup().to_numpy()
    by = np.lexsort((value[rows], groups))
    for idx in np.split(rows[by], np.flatnonzero(np.diff(groups[by])) + 1):
        r = idx[0]
        where = "all" if sets[r] == 0 else f"{spec.segments[sets[r] - 1]}={key[r]}"
        out.histograms[where, arm[r], quantile_columns[int(qi[r])]] = ValueCounts(value[idx], n[idx])


def check_proportions(sums: ExperimentSums, metrics: tuple[Metric, ...]) -> None:
    """A proportion's unit values must be 0 or 1: then Σy² = Σy in every arm."""
    for m in metrics:
        if m.kind != "proportion":
            continue
        for a, s in sums.buckets.items():
            t, i = s.total(), s.index(m.numerator)
            if not np.isclose(t.cross[i, i], t.sums[i]) or t.sums[i] < 0:
                raise EstimationError(f"metric {m.name!r} is a proportion, but its unit values in arm {a!r} are not "
                                      f"all 0 or 1 (Σy = {t.sums[i]:g}, Σy² = {t.cross[i, i]:g})")


__all__ = ("ExperimentSums", "Variable", "experiment_sums", "internal_metric", "rounded", "rounded_numpy",
           "unit_variables")
