"""Refutation in a Spark run: the estimate-level refuters on fitted estimates, and graph
validation on the interval's rows.

The estimate-level refuters read what the fit already holds (per-bucket moments, the
grouped Gram of ``ols``), so they cost no pass over the data; graph validation takes one
aggregation over the graph's observed variables (the Gram of the numeric ones) and, when
some are text, one count per combination of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.errors import DataCheckError, EstimationError, SpecError
from causal_core.estimators.moment_batch import unpack_symmetric
from causal_core.refuters.ovb_refuter import LinearModelGram, gram_names
from causal_core.refuters.registry import FittedEstimate, Refutation, Refuter, get_refuter, refuter_names
from causal_core.spec import StudySpec
from causal_core.study import Interval
from jobs.spark.collect import collect_one, collect_small
from jobs.warehouse.read import read_study_frame

MAX_COUNT_CELLS = 100_000


def make_refuters(spec: StudySpec) -> list[Refuter]:
    """The spec's refuters with their options (options were checked against the signature
    when the spec was read; values are checked when a refuter runs)."""
    out = []
    for rs in spec.refuters:
        if rs.name not in refuter_names():
            continue
        try:
            out.append(get_refuter(rs.name)(**rs.options_dict()))
        except TypeError as exc:
            raise SpecError(f"refuters.{rs.name}: bad options {rs.options_dict()}: {exc}",
                            ((f"refuters.{rs.name}", str(exc)),)) from None
    return out


def linear_gram(estimator: Any, model) -> LinearModelGram | None:
    """The Gram summary of the additive linear model behind a fitted ``ols``: the estimator's
    own (``linear_gram_``) or its grouped pass summed over buckets and arms. Columns shifted
    by constants change no statistic the linear refuters read (slopes, t, partial R²)."""
    own = getattr(estimator, "linear_gram_", None)
    if own is not None:
        return own
    grouped = getattr(estimator, "grouped_", None)
    if grouped is None:
        return None
    names = gram_names(model.treatment, model.covariates, model.outcome)
    gram = unpack_symmetric(np.asarray(grouped).sum(axis=(0, 1)), len(names))
    return LinearModelGram(gram, names, model.treatment, model.outcome, tuple(model.covariates),
                           sources=tuple(model.sources.items()), labels=tuple(model.labels.items()))


def refute_estimate(refuters: Sequence[Refuter], estimator: Any, name: str, model, metric: str,
                    seed: np.random.SeedSequence, *, engine: Any = None, design: Any = None) -> list[Refutation]:
    """Every refuter that applies to ``name``'s whole-frame estimate (fitted by ``engine`` on
    ``design``). A refuter that cannot run records why (``details.reason``, ``passed`` None);
    it never stops the study."""
    chosen = [r for r in refuters if r.applies_to(name)]
    if not chosen:
        return []
    fit = FittedEstimate(name, metric, "all", float(estimator.result_.estimate), estimator,
                         linear_gram(estimator, model), seed, engine, design)
    out = []
    for refuter in chosen:
        try:
            out.append(refuter.refute_fit(fit))
        except EstimationError as exc:
            out.append(Refutation(refuter.name, name, metric, "all", details={"reason": str(exc)}))
    return out


def validate_graph_on_data(spark: SparkSession, spec: StudySpec, interval: Interval,
                           refuters: Sequence[Refuter]) -> dict | None:
    """The ``graph_validation`` refuter's result on the interval's rows, or None without it."""
    chosen = [r for r in refuters if r.study_level]
    if not chosen or spec.graph is None:
        return None
    refuter = chosen[0]
    try:
        refuter.check()
        implications = refuter.implications(spec.graph)
        variables = sorted({v for imp in implications for v in (imp.x, imp.y, *imp.given)})
        if not implications:
            return {"passed": True, "implications": 0, "tests": [], "rejected": [], "untested": [],
                    "alpha": refuter.alpha, "method": refuter.method}
        df = read_study_frame(spark, spec, variables, start=interval.start, end=interval.end)
        numeric = [v for v in variables if _is_numeric(df.schema[v].dataType)]
        text = [v for v in variables if v not in numeric]
        gram, n = _gram(df, numeric)
        counts = _counts(df, text)
        out = refuter.validate(implications, numeric, gram, counts, text)
        return {**out, "rows": n}
    except (DataCheckError, EstimationError, SpecError) as exc:
        return {"passed": None, "reason": str(exc)}


def _is_numeric(kind: T.DataType) -> bool:
    return isinstance(kind, (T.NumericType, T.BooleanType))


def _gram(df: DataFrame, numeric: Sequence[str]) -> tuple[np.ndarray | None, int]:
    """The Gram matrix of ``(1, *numeric)`` over rows where none is null, in one aggregation."""
    if not numeric:
        return None, int(collect_one(df.agg(F.count(F.lit(1))), "row count")[0])
    kept = df.where(_all_present(numeric)).select(*(F.col(v).cast("double").alias(v) for v in numeric))
    terms = [F.lit(1.0), *(F.col(v) for v in numeric)]
    m = len(terms)
    sums = [F.sum(terms[i] * terms[j]) for i in range(m) for j in range(i, m)]
    row = collect_one(kept.agg(*sums), "graph validation Gram")
    flat = np.array([0.0 if v is None else float(v) for v in row])
    gram = unpack_symmetric(flat, m)
    return gram, int(round(gram[0, 0]))


def _all_present(columns: Sequence[str]):
    cond = F.lit(True)
    for c in columns:
        cond = cond & F.col(c).isNotNull()
    return cond


def _counts(df: DataFrame, text: Sequence[str]) -> pd.DataFrame | None:
    if not text:
        return None
    rows = collect_small(df.where(_all_present(text)).groupBy(*text).count(), MAX_COUNT_CELLS,
                         f"value combinations of {', '.join(text)}")
    return pd.DataFrame([r.asDict() for r in rows], columns=[*text, "count"]).rename(columns={"count": "n"})


__all__ = ("linear_gram", "make_refuters", "refute_estimate", "validate_graph_on_data")
