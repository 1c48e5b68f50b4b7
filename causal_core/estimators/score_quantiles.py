"""Quantiles of the fitted linear predictor from cumulative counts, never from rows.

An engine returns sums (and extremes), never rows, so a quantile is located by counting: a coarse grid of
thresholds on ``eta = x'b`` (``sum 1[eta <= t]``, optionally weighted by an arm
indicator) finds the grid cell holding it, and a second pass with ``FINE_STEPS``
thresholds inside that cell narrows it down — a two-level histogram, the idea of
distributed quantile sketches (Greenwald & Khanna 2001) with the data reread, so the
answer is exact to the grid; cut points are then interpolated linearly in the count
(the grouped-data quantile). The coarse grid is the logit of propensity bands
(``COARSE_PROBS``), so its counts double as the overlap histogram per arm and can ride
on a pass the estimator makes anyway.

The arms' overlap in a score (:class:`ArmOverlap`) is read the same way: per arm the
smallest and largest ``eta`` (an engine's extremes) and the rows below four thresholds of
that grid, the propensity bounds of the overlap diagnostic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causal_core.estimators.moment_batch import MomentBatch, times
from causal_core.moments.expr import Expr, col, lit

COARSE_PROBS = (1e-4, 1e-3, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98,
                0.99, 0.995, 0.999, 0.9999)
COARSE_GRID = np.log(np.array(COARSE_PROBS) / (1.0 - np.array(COARSE_PROBS)))
FINE_STEPS = 16


def coarse_cdf(eta: Expr, weight: Expr | None = None) -> list[Expr]:
    """Expressions ``sum w 1[eta <= t]`` for every coarse grid threshold ``t``."""
    w = lit(1.0) if weight is None else weight
    return [times(w, eta.le(float(t))) for t in COARSE_GRID]


@dataclass(frozen=True)
class QuantileRequest:
    """The ``prob`` quantile of ``eta`` among rows weighted by ``weight``.

    ``total`` is the weighted row count and ``counts`` the coarse cumulative counts
    (from :func:`coarse_cdf`). ``prob = 0`` asks for the minimum, ``prob = 1`` the maximum.
    """

    weight: Expr | None
    total: float
    counts: np.ndarray
    prob: float


def _first_reaching(counts: np.ndarray, target: float, prob: float) -> int:
    """Index of the first cumulative count reaching the target (len if none)."""
    hit = counts > 0 if prob == 0.0 else counts >= target * (1.0 - 1e-12)
    idx = np.flatnonzero(hit)
    return int(idx[0]) if len(idx) else len(counts)


def _cell(grid: np.ndarray, j: int) -> tuple[float, float]:
    lo = float(grid[j - 1]) if j > 0 else -np.inf
    hi = float(grid[j]) if j < len(grid) else np.inf
    return lo, hi


def _refine(engine, eta: Expr, requests: Sequence[QuantileRequest]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """One pass (``FINE_STEPS - 1`` thresholds inside each request's coarse cell): per
    request, the grid (lo, fine..., hi) around its coarse cell, the cumulative counts on it
    and the index k of its fine cell. A quantile beyond the coarse grid (below 1e-4 or
    above 1 - 1e-4 on the propensity scale) gets an infinite end."""
    batch, plans = MomentBatch(), []
    for i, r in enumerate(requests):
        j = _first_reaching(r.counts, r.prob * r.total, r.prob)
        lo, hi = _cell(COARSE_GRID, j)
        c_lo = float(r.counts[j - 1]) if j > 0 else 0.0
        c_hi = float(r.counts[j]) if j < len(r.counts) else r.total
        if not (np.isfinite(lo) and np.isfinite(hi)):
            plans.append((np.array([lo, hi]), np.array([c_lo, c_hi]), None))
            continue
        fine = lo + (hi - lo) * np.arange(1, FINE_STEPS) / FINE_STEPS
        batch.add(f"q{i}", [times(lit(1.0) if r.weight is None else r.weight, eta.le(float(t))) for t in fine])
        plans.append((np.concatenate(([lo], fine, [hi])), np.array([c_lo, c_hi]), i))
    sums = batch.run_totals(engine)[0] if len(batch) else None
    out = []
    for r, (grid, ends, i) in zip(requests, plans):
        if i is None:
            out.append((grid, ends, 0))
            continue
        counts = np.concatenate(([ends[0]], np.atleast_1d(sums.total_vector(f"q{i}")), [ends[1]]))
        out.append((grid, counts, _first_reaching(counts[1:-1], r.prob * r.total, r.prob)))
    return out


def eta_quantiles(engine, eta: Expr, probs: Sequence[float], weight: Expr | None = None) -> list[float]:
    """Cut points on ``eta`` at ``probs`` (two passes), interpolated linearly in the
    cumulative count inside the fine cell (the grouped-data quantile)."""
    batch = MomentBatch()
    batch.add("total", lit(1.0) if weight is None else weight)
    batch.add("cdf", coarse_cdf(eta, weight))
    sums = batch.run_totals(engine)[0]
    total, counts = sums.total("total"), sums.total_vector("cdf")
    out = []
    found = _refine(engine, eta, [QuantileRequest(weight, total, counts, p) for p in probs])
    for p, (grid, cum, k) in zip(probs, found):
        lo, hi = grid[k], grid[k + 1]
        if not (np.isfinite(lo) and np.isfinite(hi)):
            out.append(float(hi if np.isfinite(hi) else lo))
            continue
        c_lo, c_hi = cum[k], cum[k + 1]
        frac = (p * total - c_lo) / (c_hi - c_lo) if c_hi > c_lo else 1.0
        out.append(float(lo + min(max(frac, 0.0), 1.0) * (hi - lo)))
    return out


# The arms' overlap in a score.

ARMS = (1, 0)
ARM_NAMES = {1: "treated", 0: "control"}
BEYOND = 1e300  # stands for "no row of this arm" in the min / max of eta
# The overlap diagnostic counts rows per arm with propensity at or below these: 0.05 and
# 0.95 bound the near-boundary warning, 0.1 and 0.9 are Crump, Hotz, Imbens & Mitnik's
# (2009) rule of thumb. They lie on the coarse histogram grid, so ipw reads them off the
# histogram it sums anyway, and an estimator sharing ipw's passes finds the same sums.
OVERLAP_PROBS = (0.05, 0.1, 0.9, 0.95)
OVERLAP_GRID = tuple(float(COARSE_GRID[COARSE_PROBS.index(p)]) for p in OVERLAP_PROBS)


def arm_indicator(treatment: str, arm: int) -> Expr:
    """The arm indicator ``d`` (arm 1) or ``1 - d`` (arm 0)."""
    return col(treatment) if arm == 1 else lit(1.0) - col(treatment)


def arm_eta_extremes(eta: Expr, treatment: str) -> list[Expr]:
    """Per arm (treated, control), ``eta`` on the arm's rows and +BEYOND elsewhere (its
    minimum is the arm's smallest ``eta``), then ``eta`` on the arm's rows and -BEYOND
    elsewhere (its maximum)."""
    out = []
    for a in ARMS:
        arm = arm_indicator(treatment, a)
        off = lit(1.0) - arm
        out += [arm * eta + off * lit(BEYOND), arm * eta - off * lit(BEYOND)]
    return out


def overlap_batch(eta: Expr, treatment: str) -> tuple[MomentBatch, list[Expr]]:
    """What :class:`ArmOverlap` reads: per arm the rows with ``eta <= logit(p)`` for each
    of ``OVERLAP_PROBS`` (4 sums per arm), and the per-arm extremes of ``eta``."""
    batch = MomentBatch()
    for a in ARMS:
        arm = arm_indicator(treatment, a)
        batch.add(f"below{a}", [times(arm, eta.le(t)) for t in OVERLAP_GRID])
    return batch, arm_eta_extremes(eta, treatment)


@dataclass(frozen=True, eq=False)
class ArmOverlap:
    """How far the arms overlap in a propensity score ``sigma(eta)``.

    Per arm (treated, control): ``n`` rows, the smallest and largest ``eta``, and
    ``below`` (2, 4) the rows with ``eta <= logit(p)`` for p in ``OVERLAP_PROBS``.
    """

    n: np.ndarray
    eta_low: np.ndarray
    eta_high: np.ndarray
    below: np.ndarray

    @classmethod
    def from_sums(cls, n: Sequence[float], below: np.ndarray, low: np.ndarray, high: np.ndarray) -> ArmOverlap:
        """From per-arm rows, the :func:`overlap_batch` counts and its extremes' minima
        and maxima (in the order of :func:`arm_eta_extremes`)."""
        low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        return cls(np.asarray(n, dtype=float), low[0::2].copy(), high[1::2].copy(),
                   np.asarray(below, dtype=float).reshape(2, len(OVERLAP_PROBS)))

    def outside(self, bound: float) -> np.ndarray:
        """(2,) rows per arm with propensity ``<= bound`` or ``> 1 - bound``."""
        lo = OVERLAP_PROBS.index(bound)
        hi = len(OVERLAP_PROBS) - 1 - lo  # the complement 1 - bound
        return self.below[:, lo] + self.n - self.below[:, hi]

    def propensity_range(self) -> dict[str, list[float]]:
        """Per arm name, the smallest and largest propensity ``sigma(eta)``."""
        sig = lambda v: float(1.0 / (1.0 + np.exp(-v)))  # noqa: E731
        return {ARM_NAMES[a]: [sig(self.eta_low[i]), sig(self.eta_high[i])] for i, a in enumerate(ARMS)}

    @property
    def arms_overlap(self) -> bool:
        """Whether the arms' ranges of ``eta`` intersect (judged on ``eta``, which does not
        round to 0 or 1 as the propensity does)."""
        return bool(self.eta_low[0] <= self.eta_high[1] and self.eta_low[1] <= self.eta_high[0])
