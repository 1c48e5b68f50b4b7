"""Quantile metrics (median, p90 latency...) from per-arm value counts, without rows.

Per arm the warehouse returns the distinct values (or the upper edges of fine bins) and
their unit counts: a histogram. From it:

- the q-quantile is the order statistic ``x_(⌈nq⌉)`` (the inverse empirical CDF);
- its ``1 - α`` interval is the *outer-quantile bootstrap* of Schultzberg & Ankargren
  (2022), "Resampling-free bootstrap inference for quantiles": under the Poisson
  bootstrap the rank of the resampled q-quantile is approximately Binomial(n, q), so the
  bootstrap percentile interval is the pair of order statistics at ranks
  ``Binom(n, q).ppf(α/2)`` and ``Binom(n, q).ppf(1 - α/2) + 1`` — found in the histogram,
  no resampling and no density estimate;
- for the difference between arms, each arm's standard error is that interval's width
  over ``2 z_{1-α/2}``, and the lift is tested with the normal approximation (as
  GrowthBook's ``QuantileStatistic`` does from the same per-arm interval).

Why this and not the joint outer-quantile bootstrap of the difference: the normal
approximation needs only each arm's own histogram (one pass, mergeable across buckets
and days), handles relative lifts through the delta method like every other metric, and
its coverage is checked by simulation in the tests. Ties (a coarse histogram) make the
interval conservative, never narrower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from causal_core.errors import EstimationError
from causal_core.experiments.frequentist import LiftResult, compare
from causal_core.experiments.metrics import ArmEstimate


@dataclass(frozen=True, eq=False)
class ValueCounts:
    """One arm's histogram: increasing ``values`` and the unit ``counts`` at each."""

    values: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        v, c = np.asarray(self.values, dtype=float), np.asarray(self.counts, dtype=float)
        if v.ndim != 1 or v.shape != c.shape or len(v) == 0:
            raise EstimationError("ValueCounts needs one count per value (non-empty 1-d arrays)")
        if np.any(np.diff(v) <= 0) or np.any(c < 0):
            raise EstimationError("ValueCounts: values must increase strictly and counts be >= 0")
        v.setflags(write=False)
        c.setflags(write=False)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "counts", c)

    @classmethod
    def from_units(cls, y) -> "ValueCounts":
        values, counts = np.unique(np.asarray(y, dtype=float), return_counts=True)
        return cls(values, counts)

    def __add__(self, other: "ValueCounts") -> "ValueCounts":
        values = np.union1d(self.values, other.values)
        counts = np.zeros(len(values))
        counts[np.searchsorted(values, self.values)] += self.counts
        counts[np.searchsorted(values, other.values)] += other.counts
        return ValueCounts(values, counts)

    @property
    def n(self) -> float:
        return float(self.counts.sum())

    def order_statistic(self, rank) -> np.ndarray:
        """``x_(rank)`` (1-based), ranks clipped to ``[1, n]``."""
        cum = np.cumsum(self.counts)
        r = np.clip(np.asarray(rank, dtype=float), 1, self.n)
        return self.values[np.searchsorted(cum, r, side="left")]


@dataclass(frozen=True)
class QuantileEstimate:
    """An arm's q-quantile, its outer-quantile interval and the normal-approximation se."""

    q: float
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    n: float
    ranks: tuple[int, int]


def quantile_estimate(arm: ValueCounts, q: float, *, alpha: float = 0.05) -> QuantileEstimate:
    """The q-quantile with its outer-quantile bootstrap interval (Schultzberg & Ankargren
    2022): ranks ``Binom(n, q).ppf(α/2)`` and ``Binom(n, q).ppf(1-α/2) + 1``."""
    if not 0 < q < 1:
        raise EstimationError(f"quantile level must be in (0, 1), got {q}")
    n = arm.n
    lo_rank = int(stats.binom.ppf(alpha / 2, n, q))
    hi_rank = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    if lo_rank < 1 or hi_rank > n:
        raise EstimationError(f"too few units ({n:g}) for a {1 - alpha:.0%} interval of the "
                              f"{q:g}-quantile")
    est, lo, hi = arm.order_statistic([np.ceil(n * q), lo_rank, hi_rank])
    se = (hi - lo) / (2 * stats.norm.ppf(1 - alpha / 2))
    return QuantileEstimate(q=q, estimate=float(est), ci_low=float(lo), ci_high=float(hi),
                            se=float(se), n=n, ranks=(lo_rank, hi_rank))


def quantile_lift(control: ValueCounts, treatment: ValueCounts, q: float, *, relative: bool = False,
                  alpha: float = 0.05) -> LiftResult:
    """Difference (or relative difference) of the arms' q-quantiles, normal approximation
    with each arm's se from its outer-quantile interval; z test."""
    a, b = (quantile_estimate(arm, q, alpha=alpha) for arm in (control, treatment))
    ea = ArmEstimate(a.estimate, a.se ** 2 * a.n, a.n, a.estimate)
    eb = ArmEstimate(b.estimate, b.se ** 2 * b.n, b.n, b.estimate)
    return compare(ea, eb, relative=relative, alpha=alpha, test="z")
