"""The estimators' opening pass, summed by the preparation pass of the model frame.

OLS and the propensity fits (``ipw``, ``aipw`` and the other weighting estimators) open
with the same aggregation over a model frame: the Gram sums of ``(1, d, x_1..x_p, y)`` per
bucket and treatment arm (:func:`causal_core.estimators.linear.arm_gram_sums`). When the
frame's columns are known before the preparation pass — no categorical covariate waits
for its levels, no fixed effect for its codes — that pass, which reads every row of the
interval once to count and check them, sums these products over the kept rows as well,
grouped by bucket and arm. The engine of the frame takes them as its own
(:meth:`jobs.spark.engine.SparkMomentEngine.remember_grouped`), so the first fit starts
without a pass of its own: at a million rows a whole study is then one Spark query
shorter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from causal_core.estimators.linear import ARM_LEVELS, arm_key
from causal_core.estimators.moment_batch import gram_exprs
from causal_core.moments.engine import BUCKET
from causal_core.moments.expr import Expr, Lit, col
from jobs.spark.collect import collect_arrow
from jobs.spark.compiler import compile_expr, compile_sql

_ARM = "__arm"
_SUMMED = ("n", "nulls", "kept", "t_not01")  # the preparation facts that add up over arms


@dataclass(frozen=True, eq=False)
class OpeningPass:
    """Per-bucket, per-arm Gram sums of ``(1, d, x, y)`` over a model frame's rows: the
    :meth:`grouped_sums` of ``exprs`` by ``key`` in ``levels`` groups, ``sums`` ``(K, levels, m)``."""

    exprs: tuple[Expr, ...]
    key: Expr
    levels: int
    sums: np.ndarray

    @classmethod
    def of(cls, covariates: Sequence[str], sums: np.ndarray) -> OpeningPass:
        """The pass over the model frame's ``__t``, ``covariates`` and ``__y`` whose
        ``(K, ARM_LEVELS, m)`` sums :func:`facts_with_opening` returned."""
        return cls(tuple(gram_exprs(opening_terms("__t", covariates, "__y"))), arm_key(col("__t")), ARM_LEVELS, sums)

    def seed(self, engine) -> None:
        """Give ``engine`` (the model frame's) these sums as its own pass."""
        engine.remember_grouped(self.exprs, self.key, self.levels, self.sums)


def opening_terms(treatment: str, covariates: Sequence[str], outcome: str) -> list[Expr]:
    """``(1, d, x_1..x_p, y)``: the terms whose products the opening pass sums."""
    return [Lit(1.0), col(treatment), *(col(x) for x in covariates), col(outcome)]


def facts_with_opening(staged: DataFrame, n_buckets: int, aggregates: Sequence[Column], kept: Column,
                       covariates: Sequence[str]) -> tuple[list[dict], np.ndarray]:
    """The preparation aggregation (``aggregates``, per bucket) grouped by bucket and arm of
    the kept rows, with the Gram sums of ``(1, __t, covariates, __y)`` over the kept rows
    (``kept``).

    Returns the per-bucket rows of the aggregates (as the preparation pass reads them:
    ``n``, ``nulls``, ``kept``, ``t_min``, ``t_max``, ``t_not01`` and the bucket) and the
    ``(K, ARM_LEVELS, m)`` sums, which :meth:`OpeningPass.of` names by the model frame's
    columns.
    """
    staged_gram = gram_exprs(opening_terms("__t", covariates, "__y"))
    # the rows left out form a group of their own (ARM_LEVELS): they count in the facts, and
    # their Gram sums are dropped (plain sums, no per-moment condition)
    arm = F.when(kept, F.expr(compile_sql(arm_key(col("__t"))))).otherwise(F.lit(float(ARM_LEVELS)))
    group = (F.col(BUCKET) * F.lit(ARM_LEVELS + 1) + arm.cast("int")).alias(_ARM)
    grouped = staged.groupBy(group).agg(
        *aggregates, *[F.sum(compile_expr(e)).alias(f"__g{j}") for j, e in enumerate(staged_gram)])
    table = collect_arrow(grouped, (ARM_LEVELS + 1) * n_buckets, "rows per bucket and arm")
    ids = table.column(_ARM).to_numpy().astype(np.int64)
    table = table.append_column(BUCKET, pa.array(ids // (ARM_LEVELS + 1)))
    sums = np.zeros((n_buckets, ARM_LEVELS + 1, len(staged_gram)))
    for j in range(len(staged_gram)):
        sums[ids // (ARM_LEVELS + 1), ids % (ARM_LEVELS + 1), j] = pc.fill_null(table.column(f"__g{j}"), 0.0).to_numpy()
    sums = sums[:, :ARM_LEVELS]
    per_bucket: dict[int, dict] = {}
    for r in table.select([BUCKET, *_SUMMED, "t_min", "t_max"]).to_pylist():
        row = per_bucket.setdefault(r[BUCKET], {BUCKET: r[BUCKET], **dict.fromkeys(_SUMMED, 0),
                                                "t_min": None, "t_max": None})
        for k in _SUMMED:
            row[k] += r[k] or 0
        row["t_min"] = _extreme(min, row["t_min"], r["t_min"])
        row["t_max"] = _extreme(max, row["t_max"], r["t_max"])
    return list(per_bucket.values()), sums


def _extreme(pick, a, b):
    return b if a is None else a if b is None else pick(a, b)


__all__ = ("OpeningPass", "facts_with_opening", "opening_terms")
