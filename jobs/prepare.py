"""From study rows to the numeric model frame the moment engine sums over.

The model frame holds only numeric columns with internal names — ``__t`` (treatment),
``__y`` (outcome), ``__x0..`` (encoded covariates), ``__m0..`` (mediators), ``__z0..``
(instruments) — plus raw discrete variables for ``id_plugin``, segment columns, ``__unit``
and ``__bucket``. ``labels`` maps internal names back to what the user wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.errors import DataCheckError, EstimationError, SpecError
from causal_core.moments.engine import UNIT
from causal_core.spec import StudySpec
from jobs.aggregates import collect_one, collect_small

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
    treatment_seen: tuple = ()  # up to 3 distinct treatment values, for messages

    def without_variable(self, variable: str) -> ModelFrame:
        """The same frame with the model columns that encode ``variable`` left out of the covariates
        (inside one segment of a variable its columns are constant)."""
        from dataclasses import replace

        return replace(self, covariates=tuple(c for c in self.covariates if self.sources.get(c) != variable))


def _is_numeric(df: DataFrame, name: str) -> bool:
    return isinstance(df.schema[name].dataType, _NUMERIC)


def handle_nulls(df: DataFrame, columns: Sequence[str], policy: str,
                 facts: Sequence[Column] = ()) -> tuple[DataFrame, int, int, Row]:
    """Drop rows with a null in ``columns`` (reporting the count) or fail, per ``data.nulls``.

    ``facts`` are functions from the keep-row condition to aggregate columns over the kept
    rows (:func:`treatment_facts`); they ride on the same pass and come back as the last item.
    """
    any_null = F.lit(False)
    for c in columns:
        any_null = any_null | F.col(c).isNull()
    row = collect_one(df.agg(F.count(F.lit(1)).alias("n"), F.sum(any_null.cast("long")).alias("nulls"),
                             *[f(~any_null) for f in facts]), "null count")
    n, nulls = int(row["n"]), int(row["nulls"] or 0)
    if n == 0:
        raise DataCheckError("the selection is empty: no rows in the requested interval and filter")
    if nulls and policy == "fail":
        per_col = collect_one(df.agg(*[F.sum(F.col(c).isNull().cast("long")).alias(c) for c in columns]),
                              "null count per column")
        bad = {c: int(per_col[c]) for c in columns if per_col[c]}
        raise DataCheckError(f"{nulls} of {n} rows have nulls in needed columns {bad} and data.nulls is 'fail'")
    if nulls:
        df = df.where(~any_null)
        if nulls == n:
            raise DataCheckError(f"every one of the {n} rows has a null in a needed column {list(columns)}")
    return df, n - nulls, nulls, row


def treatment_facts(df: DataFrame, spec: StudySpec, treated: Any, control: Any) -> list:
    """Aggregates over the kept rows that tell a constant, binary or other treatment and
    whether a contrast's values occur: they ride on the null-count pass."""
    t = F.col(spec.treatment[0])
    facts = [lambda keep: F.min(F.when(keep, t)).alias("t_min"), lambda keep: F.max(F.when(keep, t)).alias("t_max")]
    if _is_numeric(df, spec.treatment[0]) or isinstance(df.schema[spec.treatment[0]].dataType, T.BooleanType):
        other = ~t.cast("double").isin(0.0, 1.0)
        facts.append(lambda keep: F.sum((keep & other).cast("long")).alias("t_not01"))
    if not spec.treatment_values.natural:
        for v, role in ((treated, "treated"), (control, "control")):
            facts.append(lambda keep, v=v, role=role: F.max((keep & (t == F.lit(v))).cast("int")).alias(role))
    return facts


def not_binary_reason(model: ModelFrame) -> str:
    """Why a binary-treatment estimator cannot run on a numeric treatment's frame."""
    return (f"treatment {model.labels.get(model.treatment, model.treatment)!r} is not binary (values include "
            f"{list(model.treatment_seen)}); set treatment_values to choose a treated and a control value")


def treatment_column(df: DataFrame, spec: StudySpec, treated: Any, control: Any,
                     binary_needed: bool, facts: Row) -> tuple[DataFrame, Column, bool, tuple]:
    """Code the treatment: 1/0 for a (treated, control) contrast, else its own number.

    Rows with other treatment values are left out of a contrast (other arms of an
    experiment). A constant or, where a binary one is needed, non-binary treatment is an
    error naming the values seen. ``facts`` are the :func:`treatment_facts` aggregates.
    """
    t = spec.treatment[0]
    values = [facts["t_min"], facts["t_max"]]
    if facts["t_min"] == facts["t_max"]:
        raise DataCheckError(f"treatment {t!r} is constant ({values[0]}) in the selection; "
                             "there is nothing to compare")
    binary = "t_not01" in facts.asDict() and facts["t_not01"] == 0
    if spec.treatment_values.natural:
        if not _is_numeric(df, t):
            raise SpecError(f"treatment {t!r} is not numeric (values {values[:5]}); give treatment_values "
                            "(treated/control or arms)", (("treatment_values", "required"),))
        if binary_needed and not binary:
            raise EstimationError(f"treatment {t!r} is not binary (values include {values}); "
                                  "set treatment_values to choose a treated and a control value")
        return df, F.col(t).cast("double"), binary, tuple(values)
    for v, role in ((treated, "treated"), (control, "control")):
        if not facts[role]:
            raise DataCheckError(f"treatment_values.{role} {v!r} does not occur in column {t!r} "
                                 f"(some values seen: {values})")
    df = df.where(F.col(t).isin([treated, control]))
    return df, F.when(F.col(t) == F.lit(treated), 1.0).otherwise(0.0), True, (treated, control)


def encode_terms(df: DataFrame, spec: StudySpec, variable: str) -> list[tuple[str, Column]]:
    """(label, Column) model terms for one covariate, per its ``encode`` entry."""
    how = spec.encoding(variable)
    if how == "categorical":
        rows = collect_small(df.groupBy(variable).count().orderBy(F.desc("count"), variable), MAX_LEVELS,
                             f"levels of {variable}")
        levels = [r[0] for r in rows]
        if len(levels) < 2:
            raise EstimationError(f"covariate {variable!r} is constant ({levels}); drop it from the graph or data")
        # The most frequent level is the reference, so the remaining columns are well estimated.
        return [(f"{variable}={lv}", (F.col(variable) == F.lit(lv)).cast("double")) for lv in levels[1:]]
    if isinstance(how, tuple):
        return [(term, F.expr(term).cast("double")) for term in how]
    if not _is_numeric(df, variable):
        raise SpecError(f"covariate {variable!r} is not numeric; set encode.{variable}: categorical",
                        ((f"encode.{variable}", "categorical needed"),))
    return [(variable, F.col(variable).cast("double"))]


# Rows per bucket with variance / mean above this mean identical rows share buckets in
# groups large enough to matter (distinct rows give 1 +- 0.045 at K = 1000): re-bucket.
DUPLICATE_DISPERSION = 1.25


def _bucket_rows(frame: DataFrame, n_buckets: int) -> tuple[DataFrame, str, int]:
    """Bucket rows without a unit id: by their values, or — when identical rows are common
    enough that sharing a bucket would act as clusters and widen the bucket bootstrap
    (discrete data) — by their values and a copy index. One pass counts rows per bucket."""
    from causal_core.moments.engine import BUCKET
    from jobs.spark_engine import duplicate_dispersion, with_buckets

    model = with_buckets(frame, n_buckets).persist()  # the count below fills the cache
    rows = collect_small(model.groupBy(BUCKET).count(), n_buckets, "rows per bucket")
    counts = np.zeros(n_buckets)
    for bucket, count in rows:
        counts[bucket] = count
    if duplicate_dispersion(counts) <= DUPLICATE_DISPERSION:
        return model, "row values", int(counts.sum())
    model.unpersist()
    return with_buckets(frame, n_buckets, copies=True).persist(), "row values and copy index", int(counts.sum())


def build_model_frame(df: DataFrame, spec: StudySpec, metric: str, request: ModelRequest, *,
                      treated: Any, control: Any, binary_needed: bool, n_buckets: int) -> ModelFrame:
    """Code, encode, drop nulls and bucket: the frame every estimator of one contrast uses.

    The frame comes back persisted (its row or bucket count fills the cache, so the
    estimators' first pass reads the cache instead of the table); the caller unpersists.
    """
    from jobs.spark_engine import with_buckets

    raw_needed = list(dict.fromkeys((*spec.treatment, metric, *request.covariates, *request.mediators,
                                     *request.instruments, *request.discrete, *spec.segments)
                                    + ((spec.data.unit_id,) if spec.data.unit_id else ())))
    df = df.select(*raw_needed)
    if len(spec.treatment) > 1:
        raise EstimationError(f"estimation needs one treatment column; the study names {list(spec.treatment)}")
    df, n_rows, dropped, facts = handle_nulls(df, raw_needed, spec.data.nulls,
                                              treatment_facts(df, spec, treated, control))
    df, t_col, binary, seen = treatment_column(df, spec, treated, control, binary_needed, facts)
    if not _is_numeric(df, metric):
        raise EstimationError(f"outcome {metric!r} is not numeric ({df.schema[metric].dataType.simpleString()})")
    cols: list[Column] = [t_col.alias("__t"), F.col(metric).cast("double").alias("__y")]
    labels = {"__t": spec.treatment[0], "__y": metric}
    names: dict[str, list[str]] = {"x": [], "m": [], "z": []}
    sources: dict[str, str] = {}
    for prefix, variables in (("x", request.covariates), ("m", request.mediators), ("z", request.instruments)):
        for v in variables:
            for label, expr in encode_terms(df, spec, v):
                name = f"__{prefix}{len(names[prefix])}"
                names[prefix].append(name)
                labels[name] = label
                sources[name] = v
                cols.append(expr.alias(name))
    keep = list(dict.fromkeys((*request.discrete, *spec.segments)))
    cols += [F.col(c) for c in keep]
    if spec.data.unit_id:
        cols.append(F.col(spec.data.unit_id).alias(UNIT))
    frame = df.select(*cols)
    if spec.data.unit_id:
        model, bucketing = with_buckets(frame, n_buckets, UNIT).persist(), "unit"
        n_contrast = n_rows if spec.treatment_values.natural else \
            int(collect_one(model.agg(F.count(F.lit(1)).alias("n")), "row count")["n"])
    else:
        model, bucketing, n_contrast = _bucket_rows(frame, n_buckets)
    return ModelFrame(df=model, treatment="__t", outcome="__y", covariates=tuple(names["x"]),
                      mediators=tuple(names["m"]), instruments=tuple(names["z"]), discrete=tuple(request.discrete),
                      labels=labels, n_rows=n_contrast, dropped_nulls=dropped, binary_treatment=binary,
                      treated_value=treated, control_value=control, sources=sources, bucketing=bucketing,
                      treatment_seen=seen)

