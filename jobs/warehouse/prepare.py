"""From study rows to the numeric model frame the moment engine sums over.

The model frame holds only numeric columns with internal names — ``__t`` (treatment),
``__y`` (outcome), ``__x0..`` (encoded covariates), ``__m0..`` (mediators), ``__z0..``
(instruments) — plus discrete variables for ``id_plugin`` (string ones as level codes
0, 1, ..., their values in ``levels``), the adjustment set's ``fixed_effects`` under their
own names as level codes (0 .. G - 1 by sorted text, whatever their type; their values in
``levels``; no covariate terms unless ``encode`` names them too), segment columns,
``__unit`` and ``__bucket``. ``labels`` maps internal names back to what the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.errors import DataCheckError, EstimationError, SpecError
from causal_core.moments.engine import BUCKET, UNIT
from causal_core.spec import StudySpec
from causal_core.study import FrameColumns, ModelRequest
from jobs.spark.collect import collect_bounded, collect_one, collect_small
from jobs.warehouse.opening import OpeningPass, facts_with_opening
from jobs.warehouse.read import diagnose_empty

MAX_LEVELS = 200
MAX_FIXED_EFFECT_LEVELS = 100_000  # the level texts reach the driver once, to number the codes
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType,
            T.BooleanType)


@dataclass(frozen=True)
class ModelFrame:
    df: DataFrame
    treatment: str
    outcome: str
    covariates: tuple[str, ...]
    mediators: tuple[str, ...]
    instruments: tuple[str, ...]
    discrete: tuple[str, ...]
    labels: Mapping[str, str]
    n_rows: int
    dropped_nulls: int
    binary_treatment: bool
    treated_value: Any
    control_value: Any
    levels: Mapping[str, tuple] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # model column -> graph variable it encodes
    bucketing: str = "unit"  # "unit", "row values", or "row values and copy index"
    treatment_seen: tuple = ()  # a few distinct treatment values, for messages
    dropped: Mapping[str, int] = field(default_factory=dict)  # rows left out, by reason (only reasons > 0)
    cache: DataFrame | None = None  # what build_model_frame persisted (df reads it), if anything
    fixed_effects: tuple[tuple[str, int], ...] = ()  # level-coded column, its number of levels
    opening: OpeningPass | None = None  # the estimators' opening pass, summed while preparing

    @property
    def columns(self) -> FrameColumns:
        """The frame's columns by role and its treatment facts, as the core builds designs from them."""
        return FrameColumns(treatment=self.treatment, outcome=self.outcome, covariates=self.covariates,
                            mediators=self.mediators, instruments=self.instruments, discrete=self.discrete,
                            labels=tuple(self.labels.items()), treated_value=self.treated_value,
                            control_value=self.control_value, binary_treatment=self.binary_treatment,
                            treatment_seen=self.treatment_seen, sources=tuple(self.sources.items()),
                            fixed_effects=self.fixed_effects)

    def facts(self) -> dict[str, Any]:
        """What preparation did to the rows, for every estimate's diagnostics."""
        return {"columns": dict(self.labels), "dropped_null_rows": self.dropped_nulls,
                "dropped_rows": dict(self.dropped), "buckets_keyed_on": self.bucketing}

    def without_variable(self, variable: str) -> ModelFrame:
        """The same frame with the model columns that encode ``variable`` left out of the covariates
        (inside one segment of a variable its columns are constant)."""
        from dataclasses import replace

        return replace(self, covariates=tuple(c for c in self.covariates if self.sources.get(c) != variable),
                       fixed_effects=tuple(f for f in self.fixed_effects if f[0] != variable))

    def release(self) -> None:
        """Unpersist the cached rows (every frame derived from this one reads them), waiting until
        their blocks are freed so that the next study starts with the memory back."""
        (self.cache if self.cache is not None else self.df).unpersist(blocking=True)


def _is_numeric(df: DataFrame, name: str) -> bool:
    return isinstance(df.schema[name].dataType, _NUMERIC)


KEEP, NULL_ROW = "__keep", "__null_row"  # flags of the cached frame: kept by the study / has a null


def _any_null(columns: Sequence[str]) -> Column:
    out = F.lit(False)
    for c in columns:
        out = out | F.col(c).isNull()
    return out


def _facts(staged: DataFrame, n_buckets: int, categorical: Sequence[str], opening: Sequence[str] | None = None
           ) -> tuple[dict[str, Any], np.ndarray | None, dict[str, tuple[list, int]], Any]:
    """The preparation pass: rows, rows with a null, kept rows and what tells a constant,
    binary or other treatment among them — per bucket when the staged rows have buckets —
    and the kept rows per level of each categorical covariate, in one aggregation
    (grouping sets) whose query fills the cache: the table is read once for all of it.

    Returns the totals, the kept rows per bucket (None without buckets), per categorical
    its levels by kept rows (most first, ties by value; at most ``MAX_LEVELS + 1``) with
    its number of levels, and with ``opening`` (the staged covariate columns, given when
    there are buckets and no categorical covariates) the sums of the estimators' opening
    pass, made on the same scan (:func:`jobs.warehouse.opening.facts_with_opening`; else None).
    """
    kept, t = F.col(KEEP), F.col("__t")
    aggregates = [F.count(F.lit(1)).alias("n"), F.sum(F.col(NULL_ROW).cast("long")).alias("nulls"),
                  F.sum(kept.cast("long")).alias("kept"), F.min(F.when(kept, t)).alias("t_min"),
                  F.max(F.when(kept, t)).alias("t_max"),
                  F.sum((kept & ~t.isin(0.0, 1.0)).cast("long")).alias("t_not01")]
    keys = [BUCKET] if BUCKET in staged.columns else []
    levels: dict[str, tuple[list, int]] = {}
    first = None
    if opening is not None:
        totals_rows, first = facts_with_opening(staged, n_buckets, aggregates, kept, opening)
    elif not categorical:
        totals_rows = collect_bounded(staged.groupBy(*keys).agg(*aggregates), n_buckets, "rows per bucket")
    else:
        # grouping_id sets bit (n - 1 - i) when the i-th grouping column is left out of a set.
        columns = [*keys, *categorical]
        set_id = {name: sum(1 << (len(columns) - 1 - i) for i, c in enumerate(columns) if c != name)
                  for name in categorical}
        keys_id = sum(1 << (len(columns) - 1 - i) for i, c in enumerate(columns) if c not in keys)
        grouped = staged.groupingSets([keys, *([c] for c in categorical)], *columns).agg(
            *aggregates, F.grouping_id().alias("__set"))
        per_set = Window.partitionBy("__set")
        ranked = grouped.where((F.col("__set") == keys_id) | (F.col("kept") > 0)).select(
            "*", F.row_number().over(per_set.orderBy(F.desc("kept"), *categorical)).alias("__rank"),
            F.count(F.lit(1)).over(per_set).alias("__levels"))
        rows = collect_bounded(ranked.where((F.col("__set") == keys_id) | (F.col("__rank") <= MAX_LEVELS + 1)),
                               n_buckets + len(categorical) * (MAX_LEVELS + 1), "rows per bucket and levels")
        totals_rows = [r for r in rows if r["__set"] == keys_id]
        level_rows = sorted((r for r in rows if r["__set"] != keys_id), key=lambda r: r["__rank"])
        levels = {c: ([r[c] for r in level_rows if r["__set"] == set_id[c]],
                      next((r["__levels"] for r in level_rows if r["__set"] == set_id[c]), 0)) for c in categorical}
    counts = None
    if keys:
        counts = np.zeros(n_buckets)
        for r in totals_rows:
            counts[r[BUCKET]] = r["kept"]
    low = [r["t_min"] for r in totals_rows if r["t_min"] is not None]
    high = [r["t_max"] for r in totals_rows if r["t_max"] is not None]
    facts = {"n": sum(r["n"] for r in totals_rows), "nulls": sum(r["nulls"] or 0 for r in totals_rows),
             "kept": sum(r["kept"] or 0 for r in totals_rows), "t_not01": sum(r["t_not01"] or 0 for r in totals_rows),
             "t_min": min(low) if low else None, "t_max": max(high) if high else None}
    return facts, counts, levels, first


def _check_rows(raw: DataFrame, columns: Sequence[str], policy: str, facts: dict[str, Any], selection: str,
                roles: Mapping[str, str]) -> None:
    """Empty selections, and nulls per ``data.nulls``: dropped (counted) or an error."""
    n, nulls = facts["n"], facts["nulls"]
    if n == 0:
        raise DataCheckError(f"0 rows in {selection}: nothing to estimate")
    if nulls and (policy == "fail" or nulls == n):
        per_col = collect_one(raw.agg(*[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in columns]),
                              "null count per column")
        bad = {c: int(per_col[c]) for c in columns if per_col[c]}
        all_null = [c for c, k in bad.items() if k == n]
        if all_null:
            named = "; ".join(f"{roles.get(c, 'column')} {c!r} is null in all {n:,} rows" for c in all_null)
            raise DataCheckError(f"{named} of {selection}")
        if policy == "fail":
            raise DataCheckError(f"{nulls:,} of {n:,} rows have nulls in needed columns {bad} and data.nulls is 'fail'")
        raise DataCheckError(f"every one of the {n:,} rows has a null in some needed column (nulls per column: {bad})")


def _values_seen(raw: DataFrame, column: str, complete: Column) -> list:
    """A few distinct values of ``column`` among the complete rows (for messages)."""
    return [r[0] for r in collect_small(raw.where(complete).select(column).distinct().limit(5), 5,
                                        f"values of {column}")]


def _check_treatment(raw: DataFrame, spec: StudySpec, treated: Any, control: Any, facts: dict[str, Any],
                     complete: Column) -> tuple[bool, tuple]:
    """A constant treatment, or a contrast value that does not occur: an error naming the
    values seen. Returns whether the coded treatment is binary 0/1, and what was seen (an
    estimator that needs a binary one learns it from the frame:
    :func:`causal_core.study.treatment_obstacle`)."""
    t = spec.treatment[0]
    if spec.treatment_values.natural:
        values = [facts["t_min"], facts["t_max"]]
        if facts["t_min"] == facts["t_max"]:
            raise DataCheckError(f"treatment {t!r} is constant ({values[0]}) in the selection; "
                                 "there is nothing to compare")
        return facts["t_not01"] == 0, tuple(values)
    present = {"treated": facts["t_max"] == 1.0, "control": facts["t_min"] == 0.0}
    for v, role in ((treated, "treated"), (control, "control")):
        if not present[role]:
            seen = _values_seen(raw, t, complete)
            if len(set(seen)) == 1:
                raise DataCheckError(f"treatment {t!r} is constant ({seen[0]}) in the selection; "
                                     "there is nothing to compare")
            raise DataCheckError(f"treatment_values.{role} {v!r} does not occur in column {t!r} "
                                 f"(some values seen: {seen})")
    return True, (treated, control)


def treatment_column(df: DataFrame, spec: StudySpec, treated: Any, control: Any,
                     selection: str = "the selection") -> tuple[Column, Column]:
    """The coded treatment and which rows it keeps: 1/0 for a (treated, control) contrast,
    whose other rows (other arms of an experiment) are left out; else its own number."""
    t = spec.treatment[0]
    if spec.treatment_values.natural:
        if not _is_numeric(df, t):
            diagnose_empty(df, t, "treatment", selection)
            seen = _values_seen(df, t, F.col(t).isNotNull())
            raise SpecError(f"treatment {t!r} is not numeric (values {seen}); give treatment_values "
                            "(treated/control or arms)", (("treatment_values", "required"),))
        return F.col(t).cast("double"), F.lit(True)
    return F.when(F.col(t) == F.lit(treated), 1.0).otherwise(0.0), F.col(t).isin([treated, control])


def _fixed_terms(df: DataFrame, spec: StudySpec, variable: str, selection: str) -> list[tuple[str, Column]] | None:
    """(label, Column) model terms of one covariate whose terms need no data (as is, or the
    ``encode`` list of Spark SQL terms); None for a categorical one, whose terms wait for
    its levels. ``df`` holds every selected row (for telling an empty selection)."""
    how = spec.encoding(variable)
    if how == "categorical":
        return None
    if isinstance(how, tuple):
        return [(term, F.expr(term).cast("double")) for term in how]
    if not _is_numeric(df, variable):
        diagnose_empty(df, variable, "covariate", selection)
        raise SpecError(f"covariate {variable!r} is not numeric; set encode.{variable}: categorical",
                        ((f"encode.{variable}", "categorical needed"),))
    return [(variable, F.col(variable).cast("double"))]


def _categorical_terms(df: DataFrame, variable: str, levels: list, n_levels: int,
                       selection: str) -> list[tuple[str, Column]]:
    """One-hot terms of a categorical covariate from its levels among the kept rows (most
    frequent first: that one is the reference, so the remaining columns are well
    estimated)."""
    if n_levels > MAX_LEVELS:
        raise DataCheckError(f"covariate {variable!r} has {n_levels} levels; at most {MAX_LEVELS} can be one-hot "
                             f"encoded (encode.{variable}: categorical): coarsen it, e.g. with a derived column")
    if len(levels) < 2:
        diagnose_empty(df, variable, "covariate", selection)
        if not levels:
            raise DataCheckError(f"no rows of {selection} remain for covariate {variable!r} after dropping rows "
                                 "with nulls in needed columns or outside the compared treatment values")
        raise EstimationError(f"covariate {variable!r} is constant ({levels}); drop it from the graph or data")
    return [(f"{variable}={lv}", (F.col(variable) == F.lit(lv)).cast("double")) for lv in levels[1:]]


# Rows per bucket with variance / mean above this mean identical rows share buckets in
# groups large enough to matter (distinct rows give 1 +- 0.045 at K = 1000): re-bucket.
DUPLICATE_DISPERSION = 1.25
ROLES = (("x", "covariates"), ("m", "mediators"), ("z", "instruments"))  # column prefix, request field


def build_model_frame(df: DataFrame, spec: StudySpec, metric: str, request: ModelRequest, *,
                      treated: Any, control: Any, n_buckets: int, selection: str = "the selection",
                      opening: bool = False, cached: bool = True) -> ModelFrame:
    """Code, encode, drop nulls and bucket: the frame every estimator of one contrast uses.

    One pass over the table: the staged frame — every selected row, coded, flagged as
    kept or not (a null in a needed column, or outside the contrast), categorical
    covariates still raw — is cached, and the aggregation that fills the cache counts
    rows, nulls and kept rows, the treatment facts the checks need and the levels of
    each categorical covariate (:func:`_facts`). The model frame is the kept rows of
    that cache with the categorical covariates one-hot encoded; the caller releases it
    (:meth:`ModelFrame.release`).

    With ``opening`` (an estimator of the frame opens with the per-bucket, per-arm Gram of
    ``(1, d, x, y)``) and the model columns known before the pass, the pass sums that too
    (:mod:`jobs.warehouse.opening`; ``ModelFrame.opening``) and, without ``cached`` (at most one
    pass reads the frame after it), caches no rows read from files: filling a cache costs more
    than one pass saves.

    Buckets hash the unit id, or without one the model row's values: those are known
    before the pass unless a categorical covariate waits for its levels, in which case
    the buckets are hashed from the cache after it. Rows without a unit id whose values
    repeat enough to pile into buckets are re-bucketed with a copy index (see
    :func:`with_buckets`).
    """
    from jobs.spark.engine import duplicate_dispersion, with_buckets, with_level_codes

    raw_needed = list(dict.fromkeys((*spec.treatment, metric, *request.covariates, *request.mediators,
                                     *request.instruments, *request.discrete, *spec.segments)
                                    + ((spec.data.unit_id,) if spec.data.unit_id else ())))
    df = df.select(*raw_needed)
    if len(spec.treatment) > 1:
        raise EstimationError(f"estimation needs one treatment column; the study names {list(spec.treatment)}")
    t_col, in_contrast = treatment_column(df, spec, treated, control, selection)
    if not _is_numeric(df, metric):
        diagnose_empty(df, metric, "outcome", selection)
        raise EstimationError(f"outcome {metric!r} is not numeric ({df.schema[metric].dataType.simpleString()})")
    complete = ~_any_null(raw_needed)
    keep = complete & in_contrast
    absorbed = [v for v in spec.fixed_effects if v in request.covariates]  # level-coded, not encoded
    fixed = {(p, v): _fixed_terms(df, spec, v, selection) for p, role in ROLES for v in getattr(request, role)
             if not (p == "x" and v in absorbed and v not in dict(spec.encode))}
    categorical = list(dict.fromkeys(v for (_, v), terms in fixed.items() if terms is None))
    staged_terms = {key: [(f"__s{k}_{j}", label, expr) for j, (label, expr) in enumerate(terms)]
                    for k, (key, terms) in enumerate(fixed.items()) if terms is not None}
    passed = list(dict.fromkeys((*request.discrete, *spec.segments)))
    unit = UNIT if spec.data.unit_id else None
    staged = df.select(t_col.alias("__t"), F.col(metric).cast("double").alias("__y"),
                       *[expr.alias(name) for terms in staged_terms.values() for name, _, expr in terms],
                       *[F.col(c) for c in dict.fromkeys((*passed, *categorical, *absorbed))],
                       *([F.col(spec.data.unit_id).alias(UNIT)] if unit else []),
                       keep.alias(KEEP), (~complete).alias(NULL_ROW))
    if unit or not categorical:  # the buckets are known before the pass
        staged = with_buckets(staged, n_buckets, unit, flags=(KEEP, NULL_ROW))
    # with ``opening`` (an estimator of the frame opens with the arm-Gram pass), that pass
    # rides on this one when the model columns are known before it
    staged_x = None
    if opening and BUCKET in staged.columns and not (categorical or absorbed or spec.data.exact_sums or request.mediators
                                         or request.instruments):
        staged_x = [n for (p, _), ts in staged_terms.items() if p == "x" for n, _, _ in ts]
    coded = [v for v in request.discrete if not _is_numeric(df, v)]  # level codes: a pass over the rows
    # a catalog table lists its partitions per query; a path's files are listed once, when read
    reread = not (cached or staged_x is None or coded or spec.data.table)
    cache = None if reread else staged.persist()  # persist() returns staged itself
    try:
        facts, counts, levels, first = _facts(staged, n_buckets, categorical, staged_x)
        roles = {**{c: "covariate" for c in raw_needed}, **{c: "mediator" for c in request.mediators},
                 **{c: "instrument" for c in request.instruments}, **{c: "segment column" for c in spec.segments},
                 **({spec.data.unit_id: "unit id"} if spec.data.unit_id else {}),
                 spec.treatment[0]: "treatment", metric: "outcome"}
        _check_rows(df, raw_needed, spec.data.nulls, facts, selection, roles)
        binary, seen = _check_treatment(df, spec, treated, control, facts, complete)
        if spec.treatment_values.natural and not binary:
            seen = tuple(sorted(r[0] for r in collect_small(
                staged.where(F.col(KEEP)).select("__t").distinct().limit(6), 6, "treatment values")))
        cols: list[Column] = [F.col("__t"), F.col("__y")]
        labels = {"__t": spec.treatment[0], "__y": metric}
        names: dict[str, list[str]] = {p: [] for p, _ in ROLES}
        sources: dict[str, str] = {}
        for (prefix, v), terms in fixed.items():
            terms = _categorical_terms(df, v, *levels[v], selection) if terms is None else \
                [(label, F.col(name)) for name, label, _ in staged_terms[(prefix, v)]]
            for label, expr in terms:
                name = f"__{prefix}{len(names[prefix])}"
                names[prefix].append(name)
                labels[name], sources[name] = label, v
                cols.append(expr.alias(name))
        model = staged.where(F.col(KEEP)).select(*cols, *dict.fromkeys((*passed, *absorbed)),
                                                 *([UNIT] if unit else []),
                                                 *([BUCKET] if BUCKET in staged.columns else []))
        bucketing = "unit" if unit else "row values"
        if BUCKET not in model.columns:  # hashed from the encoded rows of the cache
            model = with_buckets(model, n_buckets)
            counts = _rows_per_bucket(model, n_buckets)
        if unit is None and duplicate_dispersion(counts) > DUPLICATE_DISPERSION:
            model = cache = with_buckets(model.drop(BUCKET), n_buckets, copies=True).persist()
            _rows_per_bucket(model, n_buckets)  # fills the new cache from the staged one before that goes
            staged.unpersist()
            bucketing = "row values and copy index"
            first = None  # summed by the buckets the copies replace
        # String discrete variables (id_plugin's) become level codes; their levels come from one
        # aggregation over the cached rows, not from another read of the table.
        model, discrete_levels = with_level_codes(model, coded, MAX_LEVELS, "id_plugin variable")
        model, fe_levels = with_level_codes(model, absorbed, MAX_FIXED_EFFECT_LEVELS, "fixed-effect variable")
    except Exception:
        staged.unpersist()
        if cache is not None:
            cache.unpersist()
        raise
    return ModelFrame(df=model, treatment="__t", outcome="__y", covariates=tuple(names["x"]),
                      mediators=tuple(names["m"]), instruments=tuple(names["z"]), discrete=tuple(request.discrete),
                      labels=labels, n_rows=facts["kept"], dropped_nulls=facts["nulls"], binary_treatment=binary,
                      treated_value=treated, control_value=control, sources=sources, bucketing=bucketing,
                      treatment_seen=seen, cache=cache, levels={**discrete_levels, **fe_levels},
                      fixed_effects=tuple((v, len(fe_levels[v])) for v in absorbed),
                      dropped=_dropped(spec, facts, treated, control),
                      opening=None if first is None else OpeningPass.of(names["x"], first))


def _rows_per_bucket(model: DataFrame, n_buckets: int) -> np.ndarray:
    """Rows per bucket of a frame read from the cache (one aggregation over it)."""
    counts = np.zeros(n_buckets)
    for r in collect_bounded(model.groupBy(BUCKET).count(), n_buckets, "rows per bucket"):
        counts[r[BUCKET]] = r["count"]
    return counts


def _dropped(spec: StudySpec, facts: dict[str, Any], treated: Any, control: Any) -> dict[str, int]:
    """Rows the study leaves out, by reason (reasons with no rows are omitted)."""
    t = spec.treatment[0]
    outside = facts["n"] - facts["nulls"] - facts["kept"]
    if spec.treatment_values.arms:
        why = f"{t} in another arm (compared with {control!r} in its own contrast)"
    else:
        why = f"{t} is neither treated ({treated!r}) nor control ({control!r})"
    out = {"null in a needed column": int(facts["nulls"]), why: int(outside)}
    return {k: v for k, v in out.items() if v > 0}
