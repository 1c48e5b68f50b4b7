"""Order-independent sums of doubles in Spark: fixed-point limbs summed as integers.

Floating-point addition is not associative, so Spark's ``sum(double)`` depends on the
order in which rows and partial aggregates meet: the same table partitioned differently
gives sums that differ in the last bits, and DESIGN.md promises the same numbers
whatever the partitioning. Integer addition is associative. So every finite value x
with ``2^-60 <= |x| < 2^79`` is split *exactly* into six 32-bit integer limbs on a fixed
binary grid (weights ``2^48, 2^16, ..., 2^-112``, digits of x's sign), the limbs are summed as BIGINT, and
the exact total is reassembled afterwards — a small "superaccumulator" (Kulisch &
Miranker 1981; Neal 2015, "Fast exact summation using small and large
superaccumulators", arXiv:1505.05571). Zeros, tiny or huge values, NaN and infinities
go to a plain double ``rest`` sum, which is exact whenever it only ever adds zeros.

Bounds: a limb is below 2^32 in magnitude, so a group of up to 2^30 rows cannot overflow
BIGINT (under ANSI mode too). The total is rebuilt by carry propagation into
sign-magnitude digits and summed smallest first in float64: deterministic, within a few
ulps of the exact sum. Spark-side (:func:`with_total`) and driver-side
(:func:`combine_limbs`) use the same steps, so both give identical doubles.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

LIMB_EXPONENTS = (48, 16, -16, -48, -80, -112)
LIMBS = tuple(f"__l{j}" for j in range(len(LIMB_EXPONENTS)))
REST = "__rest"
EXACT_MIN = 2.0 ** -60  # smallest |x| whose lowest mantissa bit (2^-112) is on the grid
EXACT_MAX = 2.0 ** 79  # top limb |x| / 2^48 < 2^31
_SHIFT = 32
_SCALE = float(2 ** _SHIFT)


def q(name: str) -> Column:
    """A column reference that survives dots and backticks in the name."""
    return F.col("`" + name.replace("`", "``") + "`")


def with_limbs(df: DataFrame, value: str, keep: Sequence[str]) -> DataFrame:
    """``keep`` columns plus the limbs (BIGINT ``__l0..__l5``) and ``__rest`` (DOUBLE) of
    column ``value``; ``sum(limbs) * 2^e + sum(rest)`` is the exact sum of ``value``.

    Each limb step is its own projection so the running fraction is computed once; the
    steps are exact: scaling by a power of two and subtracting the integer part (rounded
    toward zero) lose no bits. Digits carry x's sign; ``combine_limbs`` normalises them.
    """
    v = q(value)
    inside = (F.abs(v) >= F.lit(EXACT_MIN)) & (F.abs(v) < F.lit(EXACT_MAX))  # false for NaN/inf
    keep_cols = [q(k) for k in keep]
    cur = df.select(*keep_cols, F.when(inside, v * F.lit(2.0 ** -LIMB_EXPONENTS[0])).otherwise(F.lit(0.0)).alias("__f"),
                    F.when(inside, F.lit(0.0)).otherwise(v).alias(REST))
    done: list[Column] = []
    for j, name in enumerate(LIMBS):
        # Truncation toward zero keeps every digit on x's side of zero, so f - trunc(f) is
        # exactly f's fractional bits (a floor would make it 1 - tiny for a tiny negative f).
        digit = F.col("__f").cast("long")
        nxt = [((F.col("__f") - digit) * F.lit(_SCALE)).alias("__f")] if j < len(LIMBS) - 1 else []
        cur = cur.select(*keep_cols, *done, F.col(REST), digit.alias(name), *nxt)
        done.append(F.col(name))
    return cur


def limb_aggregates() -> list[Column]:
    """The aggregate expressions over :func:`with_limbs` output."""
    return [F.sum(F.col(n)).alias(n) for n in LIMBS] + [F.sum(F.col(REST)).alias(REST)]


def _normalize_np(d: np.ndarray) -> np.ndarray:
    d = d.copy()
    for j in range(d.shape[1] - 1, 0, -1):
        carry = np.right_shift(d[:, j], _SHIFT)  # floor division by 2^32, also for negatives
        d[:, j] -= np.left_shift(carry, _SHIFT)
        d[:, j - 1] += carry
    return d


def combine_limbs(limbs: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Doubles from (N, 6) int64 limb sums and (N,) rest sums (driver side)."""
    d = _normalize_np(np.asarray(limbs, dtype=np.int64))
    neg = d[:, 0] < 0
    if neg.any():
        d[neg] = _normalize_np(-d[neg])
    mag = np.zeros(len(d))
    for j in range(d.shape[1] - 1, -1, -1):  # smallest digit first
        mag = mag + d[:, j].astype(np.float64) * 2.0 ** LIMB_EXPONENTS[j]
    return np.where(neg, -mag, mag) + np.asarray(rest, dtype=np.float64)


def _normalize_stage(df: DataFrame, keep: Sequence[str], names: Sequence[str]) -> DataFrame:
    """Carry propagation in Spark, one projection per digit (mirrors ``_normalize_np``)."""
    cur = df
    for j in range(len(names) - 1, 0, -1):
        lo, hi = names[j], names[j - 1]
        carry = F.shiftright(F.col(lo), _SHIFT)
        others = [F.col(n) for n in names if n not in (lo, hi)]
        cur = cur.select(*[q(k) for k in keep], *others, F.col(REST), "__neg",
                         (F.col(lo) - F.shiftleft(carry, _SHIFT)).alias(lo), (F.col(hi) + carry).alias(hi))
    return cur


def with_total(df: DataFrame, keep: Sequence[str], out: str) -> DataFrame:
    """Replace the limb-sum and rest columns by their double total ``out`` (Spark side)."""
    cur = df.withColumn("__neg", F.lit(False))
    cur = _normalize_stage(cur, keep, LIMBS)
    neg = F.col(LIMBS[0]) < 0
    cur = cur.select(*[q(k) for k in keep], F.col(REST), neg.alias("__neg"),
                     *[F.when(neg, -F.col(n)).otherwise(F.col(n)).alias(n) for n in LIMBS])
    cur = _normalize_stage(cur, keep, LIMBS)
    mag: Column = F.lit(0.0)
    for j in range(len(LIMBS) - 1, -1, -1):
        mag = mag + F.col(LIMBS[j]).cast("double") * F.lit(2.0 ** LIMB_EXPONENTS[j])
    total = F.when(F.col("__neg"), -mag).otherwise(mag) + F.col(REST)
    return cur.select(*[q(k) for k in keep], total.alias(out))
