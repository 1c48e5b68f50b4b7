"""From study rows to the numeric model frame the moment engine sums over.

The model frame holds only numeric columns with internal names — ``__t`` (treatment),
``__y`` (outcome), ``__x0..`` (encoded covariates), ``__m0..`` (mediators), ``__z0..``
(instruments) — plus discrete variables for ``id_plugin`` (string ones as level codes
0, 1, ..., their values in ``levels``), segment columns, ``__unit`` and ``__bucket``.
``labels`` maps internal names back to what the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.errors import DataCheckError, EstimationError, SpecError
from causal_core.moments.engine import UNIT
from causal_core.spec import StudySpec
from jobs.aggregates import collect_bounded, collect_one, collect_small

MAX_LEVELS = 200
_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType,
            T.BooleanType)


@dataclass(frozen=True)
class ModelRequest:
    """Which graph variables a fit needs, and in which role."""

    covariates: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()


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
    cache: DataFrame | None = None  # what build_model_frame persisted (df reads it)

    def without_variable(self, variable: str) -> ModelFrame:
        """The same frame with the model columns that encode ``variable`` left out of the covariates
        (inside one segment of a variable its columns are constant)."""
        from dataclasses import replace

        return replace(self, covariates=tuple(c for c in self.covariates if self.sources.get(c) != variable))

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


def _facts(model: DataFrame, n_buckets: int) -> tuple[dict[str, Any], np.ndarray]:
    """The preparation pass: per bucket, rows, rows with a null, kept rows and what tells a
    constant, binary or other treatment among them; summed (min / max taken) on the driver.
    The groupBy fills the frame's cache, so the table is read once for all of it."""
    from causal_core.moments.engine import BUCKET

    kept, t = F.col(KEEP), F.col("__t")
    rows = collect_bounded(model.groupBy(BUCKET).agg(
        F.count(F.lit(1)).alias("n"), F.sum(F.col(NULL_ROW).cast("long")).alias("nulls"),
        F.sum(kept.cast("long")).alias("kept"), F.min(F.when(kept, t)).alias("t_min"),
        F.max(F.when(kept, t)).alias("t_max"),
        F.sum((kept & ~t.isin(0.0, 1.0)).cast("long")).alias("t_not01")), n_buckets, "rows per bucket")
    counts = np.zeros(n_buckets)
    for r in rows:
        counts[r[BUCKET]] = r["kept"]
    low = [r["t_min"] for r in rows if r["t_min"] is not None]
    high = [r["t_max"] for r in rows if r["t_max"] is not None]
    return {"n": sum(r["n"] for r in rows), "nulls": sum(r["nulls"] or 0 for r in rows),
            "kept": int(counts.sum()), "t_not01": sum(r["t_not01"] or 0 for r in rows),
            "t_min": min(low) if low else None, "t_max": max(high) if high else None}, counts


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


def _values_seen(raw: DataFrame, column: str, complete: Column) -> list:
    """A few distinct values of ``column`` among the complete rows (for messages)."""
    return [r[0] for r in collect_small(raw.where(complete).select(column).distinct().limit(5), 5,
                                        f"values of {column}")]


def _check_treatment(raw: DataFrame, spec: StudySpec, treated: Any, control: Any, binary_needed: bool,
                     facts: dict[str, Any], complete: Column) -> tuple[bool, tuple]:
    """A constant or, where a binary one is needed, non-binary treatment, or a contrast
    value that does not occur: an error naming the values seen. Returns (binary, seen)."""
    t = spec.treatment[0]
    if spec.treatment_values.natural:
        values = [facts["t_min"], facts["t_max"]]
        if facts["t_min"] == facts["t_max"]:
            raise DataCheckError(f"treatment {t!r} is constant ({values[0]}) in the selection; "
                                 "there is nothing to compare")
        binary = facts["t_not01"] == 0
        if binary_needed and not binary:
            raise EstimationError(f"treatment {t!r} is not binary (values include {values}); "
                                  "set treatment_values to choose a treated and a control value")
        return binary, tuple(values)
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


def not_binary_reason(model: ModelFrame) -> str:
    """Why a binary-treatment estimator cannot run on a numeric treatment's frame."""
    seen = [f"{v:g}" if isinstance(v, float) else repr(v) for v in model.treatment_seen[:5]]
    more = ", ..." if len(model.treatment_seen) > 5 else ""
    return (f"treatment {model.labels.get(model.treatment, model.treatment)!r} is not binary (values "
            f"{{{', '.join(seen)}{more}}}); set treatment_values to choose a treated and a control value")


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


def encode_terms(df: DataFrame, spec: StudySpec, variable: str, selection: str = "the selection",
                 raw: DataFrame | None = None) -> list[tuple[str, Column]]:
    """(label, Column) model terms for one covariate, per its ``encode`` entry. ``df`` holds
    the rows the study keeps, ``raw`` every selected row (for telling an empty selection)."""
    raw = df if raw is None else raw
    how = spec.encoding(variable)
    if how == "categorical":
        rows = collect_small(df.groupBy(variable).count().orderBy(F.desc("count"), variable), MAX_LEVELS,
                             f"levels of {variable}")
        levels = [r[0] for r in rows]
        if len(levels) < 2:
            diagnose_empty(raw, variable, "covariate", selection)
            if not levels:
                raise DataCheckError(f"no rows of {selection} remain for covariate {variable!r} after dropping rows "
                                     "with nulls in needed columns or outside the compared treatment values")
            raise EstimationError(f"covariate {variable!r} is constant ({levels}); drop it from the graph or data")
        # The most frequent level is the reference, so the remaining columns are well estimated.
        return [(f"{variable}={lv}", (F.col(variable) == F.lit(lv)).cast("double")) for lv in levels[1:]]
    if isinstance(how, tuple):
        return [(term, F.expr(term).cast("double")) for term in how]
    if not _is_numeric(df, variable):
        diagnose_empty(raw, variable, "covariate", selection)
        raise SpecError(f"covariate {variable!r} is not numeric; set encode.{variable}: categorical",
                        ((f"encode.{variable}", "categorical needed"),))
    return [(variable, F.col(variable).cast("double"))]


# Rows per bucket with variance / mean above this mean identical rows share buckets in
# groups large enough to matter (distinct rows give 1 +- 0.045 at K = 1000): re-bucket.
DUPLICATE_DISPERSION = 1.25


def build_model_frame(df: DataFrame, spec: StudySpec, metric: str, request: ModelRequest, *,
                      treated: Any, control: Any, binary_needed: bool, n_buckets: int,
                      selection: str = "the selection") -> ModelFrame:
    """Code, encode, drop nulls and bucket: the frame every estimator of one contrast uses.

    One pass over the table: the coded frame — every selected row, flagged as kept or not
    (a null in a needed column, or outside the contrast) — is cached, and the groupBy that
    fills the cache counts rows, nulls and kept rows per bucket and the treatment facts the
    checks need. The frame comes back as the kept rows of that cache; the caller releases
    it (:meth:`ModelFrame.release`). Rows without a unit id whose values repeat enough to
    pile into buckets are re-bucketed with a copy index (see :func:`with_buckets`).
    """
    from jobs.spark_engine import duplicate_dispersion, with_buckets, with_level_codes

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
    cols: list[Column] = [t_col.alias("__t"), F.col(metric).cast("double").alias("__y")]
    labels = {"__t": spec.treatment[0], "__y": metric}
    names: dict[str, list[str]] = {"x": [], "m": [], "z": []}
    sources: dict[str, str] = {}
    for prefix, variables in (("x", request.covariates), ("m", request.mediators), ("z", request.instruments)):
        for v in variables:
            for label, expr in encode_terms(df.where(keep), spec, v, selection, raw=df):
                name = f"__{prefix}{len(names[prefix])}"
                names[prefix].append(name)
                labels[name] = label
                sources[name] = v
                cols.append(expr.alias(name))
    cols += [F.col(c) for c in dict.fromkeys((*request.discrete, *spec.segments))]
    if spec.data.unit_id:
        cols.append(F.col(spec.data.unit_id).alias(UNIT))
    frame = df.select(*cols, keep.alias(KEEP), (~complete).alias(NULL_ROW))
    unit = UNIT if spec.data.unit_id else None
    cached = with_buckets(frame, n_buckets, unit, flags=(KEEP, NULL_ROW)).persist()
    try:
        facts, counts = _facts(cached, n_buckets)
        roles = {**{c: "covariate" for c in raw_needed}, **{c: "mediator" for c in request.mediators},
                 **{c: "instrument" for c in request.instruments}, **{c: "segment column" for c in spec.segments},
                 **({spec.data.unit_id: "unit id"} if spec.data.unit_id else {}),
                 spec.treatment[0]: "treatment", metric: "outcome"}
        _check_rows(df, raw_needed, spec.data.nulls, facts, selection, roles)
        binary, seen = _check_treatment(df, spec, treated, control, binary_needed, facts, complete)
        if spec.treatment_values.natural and not binary:
            seen = tuple(sorted(r[0] for r in collect_small(
                cached.where(F.col(KEEP)).select("__t").distinct().limit(6), 6, "treatment values")))
    except Exception:
        cached.unpersist()
        raise
    model, bucketing = cached.where(F.col(KEEP)).drop(KEEP, NULL_ROW), ("unit" if unit else "row values")
    if unit is None and duplicate_dispersion(counts) > DUPLICATE_DISPERSION:
        cached.unpersist()
        kept = frame.where(F.col(KEEP)).drop(KEEP, NULL_ROW)
        model = cached = with_buckets(kept, n_buckets, copies=True).persist()
        bucketing = "row values and copy index"
    # String discrete variables (id_plugin's) become level codes; their levels come from one
    # aggregation over the cached rows, not from another read of the table.
    try:
        model, levels = with_level_codes(model, [v for v in request.discrete if not _is_numeric(df, v)],
                                         MAX_LEVELS, "id_plugin variable")
    except Exception:
        cached.unpersist()
        raise
    return ModelFrame(df=model, treatment="__t", outcome="__y", covariates=tuple(names["x"]),
                      mediators=tuple(names["m"]), instruments=tuple(names["z"]), discrete=tuple(request.discrete),
                      labels=labels, n_rows=facts["kept"], dropped_nulls=facts["nulls"], binary_treatment=binary,
                      treated_value=treated, control_value=control, sources=sources, bucketing=bucketing,
                      treatment_seen=seen, cache=cached, levels=levels, dropped=_dropped(spec, facts, treated, control))


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
