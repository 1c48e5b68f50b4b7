"""The ``marginal_sensitivity`` refuter: bounds on a weighting estimate under the marginal
sensitivity model.

Tan (2006), "A distributional approach for causal inference using propensity scores",
*JASA* 101(476); Zhao, Small & Bhattacharya (2019), "Sensitivity analysis for inverse
probability weighting estimators via the percentile bootstrap", *JRSS-B* 81(4), 735-761.
An unobserved confounder may move each unit's odds of treatment away from the fitted
propensity's by a factor of at most Λ: the true weight of a treated unit (ATE) is
``1 + s·(1 - e)/e`` for some ``s`` in ``[1/Λ, Λ]``, of a control unit ``1 + s·e/(1 - e)``;
an ATT's control weight is ``s·e/(1 - e)`` (the treated keep weight 1), an ATC's treated
weight ``s·(1 - e)/e``. Each arm's Hajek mean ``Σ w y / Σ w`` is then bounded by a linear
fractional program whose optimum gives weight Λ to the units above a threshold in ``y`` and
1/Λ below it (Zhao et al., Proposition 2), so the effect lies in
``[μ1⁻ - μ0⁺, μ1⁺ - μ0⁻]``. At Λ = 1 both ends are the Hajek estimate itself.

The threshold needs ``y`` in order, which moments do not carry: one more aggregation
(after one for the range of ``y``) sums, per bucket, arm and bin of ``y`` (``bins``
equal-width bins; the bin of a unit is its nearest grid point), the kept rows, their odds
part ``o`` of the weight, ``y``, ``o·y`` and ``y²``. Thresholds at bin edges give an *inner*
bound (attained by a weight allocation, so within the true bound); replacing each unit's
``y`` by its bin's highest (lowest) possible value gives an *outer* bound, which contains
the true one — a bin whose ``y`` is constant (a 0/1 outcome) is exact. The reported
``bounds`` are the outer ones; ``inner`` shows how much the binning widened them. The
interval is Zhao et al.'s percentile bootstrap (Theorem 4), over buckets: the α/2 quantile
of the replicates' lower bounds and the 1 - α/2 quantile of their upper bounds.

The bounds describe the ATE (ATT, ATC) under the propensity model, not one estimator: for
``aipw`` they use its propensity fit and the Hajek form.

Pass rule: with ``plausible`` (a Λ the analyst considers possible), the estimate passes when
the bootstrap interval of the bounds at that Λ excludes 0; without it ``passed`` is None.
Always reported: the breakdown Λ* at which the bounds (and their interval) first reach 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.weighting import PropensityWeights
from causal_core.moments.bootstrap import bucket_weights
from causal_core.moments.expr import Expr, col, exp, lit
from causal_core.refuters.registry import FittedEstimate, Refutation, Refuter, register_refuter

_N, _O, _Y, _OY, _YY = range(5)
LAMBDA_MAX = 1e4


@dataclass(frozen=True)
class ArmBins:
    """One arm's sums per bin of ``y`` (bins ascending): kept rows ``n``, odds part ``o``, ``y``,
    ``o·y``; the constant part ``c`` of its weight ``c + s·o``; each bin's highest and lowest
    possible ``y`` (for the outer bound). Arrays may carry leading replicate axes."""

    n: np.ndarray
    o: np.ndarray
    y: np.ndarray
    oy: np.ndarray
    c: float
    y_high: np.ndarray
    y_low: np.ndarray


def _extreme_mean(a: ArmBins, lam: float, upper: bool, outer: bool) -> np.ndarray:
    """The largest (``upper``) or smallest Hajek mean over weights ``c + s·o``, s in [1/Λ, Λ],
    with thresholds at bin edges; ``outer``: each bin's ``y`` at its highest (lowest) value."""
    big = a.c * a.n + lam * a.o
    small = a.c * a.n + a.o / lam
    if outer:
        yv = a.y_high if upper else a.y_low
        ny_big, ny_small = big * yv, small * yv
    else:
        ny_big, ny_small = a.c * a.y + lam * a.oy, a.c * a.y + a.oy / lam
    if not upper:  # the low bins get the big weights: reverse the order
        big, small, ny_big, ny_small = (np.flip(v, axis=-1) for v in (big, small, ny_big, ny_small))
    zero = np.zeros(big.shape[:-1] + (1,))
    # threshold k = 0..L: bins >= k weighted big, bins < k small
    den = np.concatenate([zero, np.cumsum(small, axis=-1)], axis=-1) + \
        np.concatenate([np.flip(np.cumsum(np.flip(big, axis=-1), axis=-1), axis=-1), zero], axis=-1)
    num = np.concatenate([zero, np.cumsum(ny_small, axis=-1)], axis=-1) + \
        np.concatenate([np.flip(np.cumsum(np.flip(ny_big, axis=-1), axis=-1), axis=-1), zero], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.nanmax(ratio, axis=-1) if upper else np.nanmin(ratio, axis=-1)


def effect_bounds(treated: ArmBins, control: ArmBins, lam: float, *, outer: bool = True) -> tuple:
    """``(lower, upper)`` of μ1 - μ0 under the marginal sensitivity model with parameter Λ."""
    if lam < 1:
        raise EstimationError(f"marginal sensitivity: Λ must be >= 1, got {lam}")
    low = _extreme_mean(treated, lam, False, outer) - _extreme_mean(control, lam, True, outer)
    high = _extreme_mean(treated, lam, True, outer) - _extreme_mean(control, lam, False, outer)
    return low, high


# Per target and arm: the constant part c of the weight and the sign of eta in its odds part
# o = exp(sign * eta) (0: no odds part, the arm's weight is fixed): w = c + o at s = 1.
TARGET_PARTS = {"ate": {1: (1.0, -1), 0: (1.0, 1)},
                "att": {1: (1.0, 0), 0: (0.0, 1)},
                "atc": {1: (0.0, -1), 0: (1.0, 0)}}


def _odds(pw: PropensityWeights, arm: int) -> Expr:
    sign = TARGET_PARTS[pw.target][arm][1]
    return lit(0.0) if sign == 0 else exp(pw.eta_used if sign > 0 else -pw.eta_used)


def binned_sums(engine, treatment: str, outcome: str, pw: PropensityWeights, bins: int) -> tuple:
    """The two passes: the range of ``y``, then the per-bucket sums ``(K, 2, bins, 5)`` by arm
    and bin; returns them with the grid ``(low, step)``."""
    y, d = col(outcome), col(treatment)
    tot = engine.totals([], [y])
    lo, hi = float(tot.low[0]), float(tot.high[0])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise EstimationError("marginal sensitivity: the outcome has no finite values")
    levels = bins if hi > lo else 1
    step = (hi - lo) / (levels - 1) if levels > 1 else 1.0
    odds = d * _odds(pw, 1) + (lit(1.0) - d) * _odds(pw, 0)
    keep = pw.keep
    exprs = [keep, keep * odds, keep * y, keep * odds * y, keep * y * y]
    key = d * lit(float(levels)) + (y - lit(lo)) / lit(step) + lit(0.5)
    sums = np.asarray(engine.grouped_sums(exprs, key, 2 * levels), dtype=float)
    return sums.reshape(sums.shape[0], 2, levels, 5), lo, step


def arm_bins(sums: np.ndarray, arm: int, target: str, lo: float, step: float, y_max: float) -> ArmBins:
    """:class:`ArmBins` of ``arm`` from (2, L, 5) sums (arm 0 first) on the grid ``lo + j·step``."""
    s = sums[arm]
    levels = s.shape[0]
    grid = lo + step * np.arange(levels)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s[:, _Y] / s[:, _N]
        spread = s[:, _YY] / s[:, _N] - mean ** 2
    constant = (s[:, _N] > 0) & (spread <= 1e-12 * np.maximum(1.0, mean ** 2))
    half = 0.5 * step if levels > 1 else 0.0
    high = np.where(constant, mean, np.minimum(grid + half, y_max))
    low = np.where(constant, mean, np.maximum(grid - half, lo))
    c = TARGET_PARTS[target][arm][0]
    return ArmBins(s[:, _N], s[:, _O], s[:, _Y], s[:, _OY], c, np.nan_to_num(high), np.nan_to_num(low))


def breakdown(bounds_at, estimate: float) -> float:
    """The least Λ in [1, LAMBDA_MAX] at which ``bounds_at(Λ)`` (lower, upper) contains 0, by
    bisection on log Λ (the bounds widen with Λ); 1.0 when they contain 0 already."""
    def reaches(lam: float) -> bool:
        low, high = bounds_at(lam)
        return bool(low <= 0 <= high) if estimate != 0 else True

    if reaches(1.0):
        return 1.0
    if not reaches(LAMBDA_MAX):
        return float("inf")
    a, b = 0.0, np.log(LAMBDA_MAX)
    for _ in range(50):
        mid = 0.5 * (a + b)
        a, b = (a, mid) if reaches(float(np.exp(mid))) else (mid, b)
    return float(np.exp(b))


@register_refuter
class MarginalSensitivityRefuter(Refuter):
    """Bounds on ``ipw`` and ``aipw`` estimates under the marginal sensitivity model (module docstring).

    ``lambdas``: the Λ grid reported; ``plausible``: the Λ the pass rule uses (None: no rule);
    ``bins``: bins of the outcome; ``replicates``: bucket-bootstrap replicates of the bounds;
    ``alpha``: the interval's level."""

    name: ClassVar[str] = "marginal_sensitivity"
    refutes: ClassVar[frozenset[str]] = frozenset({"ipw", "aipw"})
    reads_rows: ClassVar[bool] = True  # the outcome's range, then its binned sums

    def __init__(self, *, lambdas: Sequence[float] = (1.1, 1.25, 1.5, 2.0, 3.0), plausible: float | None = None,
                 bins: int = 200, replicates: int = 200, alpha: float = 0.05) -> None:
        self.lambdas = lambdas
        self.plausible = plausible
        self.bins = bins
        self.replicates = replicates
        self.alpha = alpha

    def _check(self) -> tuple[float, ...]:
        lambdas = (float(self.lambdas),) if isinstance(self.lambdas, (int, float)) else tuple(map(float, self.lambdas))
        if not lambdas or min(lambdas) < 1 or (self.plausible is not None and float(self.plausible) < 1):
            raise EstimationError(f"marginal_sensitivity: every Λ must be >= 1, got lambdas {self.lambdas}, "
                                  f"plausible {self.plausible}")
        if not isinstance(self.bins, int) or self.bins < 2 or not isinstance(self.replicates, int) \
                or self.replicates < 20 or not 0 < self.alpha < 1:
            raise EstimationError(f"marginal_sensitivity: need bins >= 2, replicates >= 20 and 0 < alpha < 1, got "
                                  f"{self.bins}, {self.replicates}, {self.alpha}")
        return lambdas

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        lambdas = self._check()
        model, design = fit.fitted, fit.design
        propensity = getattr(model, "propensity_", None)
        if propensity is None or fit.engine is None or design is None:
            raise EstimationError(f"{fit.estimator}: no propensity fit and data to bound")
        pw = PropensityWeights.build(propensity, design.target, trim=model.trim, clip=model.clip)
        sums, lo, step = binned_sums(fit.engine, design.treatment, design.outcome, pw, self.bins)
        y_max = lo + step * (sums.shape[2] - 1)
        arms = [arm_bins(sums.sum(axis=0), a, pw.target, lo, step, y_max) for a in (1, 0)]
        weights = bucket_weights(self.replicates, sums.shape[0], seed=fit.rng(self.name).integers(2 ** 63))
        boot = np.tensordot(weights, sums, axes=(1, 0))  # (B, 2, L, 5)
        bootstrap = [_with_sums(arms[i], boot[:, 1 - i]) for i in range(2)]
        alpha = float(self.alpha)

        def interval(lam: float) -> tuple[float, float]:
            low, high = effect_bounds(*bootstrap, lam)
            return float(np.nanquantile(low, alpha / 2)), float(np.nanquantile(high, 1 - alpha / 2))

        rows = []
        for lam in sorted(set(lambdas) | ({float(self.plausible)} if self.plausible is not None else set())):
            low, high = effect_bounds(*arms, lam)
            inner = effect_bounds(*arms, lam, outer=False)
            ci = interval(lam)
            rows.append({"lambda": lam, "lower": float(low), "upper": float(high), "inner_lower": float(inner[0]),
                         "inner_upper": float(inner[1]), "ci_low": ci[0], "ci_high": ci[1],
                         "excludes_zero": not (ci[0] <= 0 <= ci[1])})
        point = lambda lam: effect_bounds(*arms, lam)  # noqa: E731
        at = next((r for r in rows if self.plausible is not None and r["lambda"] == float(self.plausible)), rows[-1])
        new_effect = at["lower"] if fit.estimate >= 0 else at["upper"]  # the end nearest the null
        details = {"bounds": rows, "breakdown_lambda": breakdown(point, fit.estimate),
                   "breakdown_lambda_ci": breakdown(interval, fit.estimate), "plausible": self.plausible,
                   "target": pw.target, "bins": int(sums.shape[2]), "bin_width": float(step),
                   "replicates": int(self.replicates), "alpha": alpha,
                   "hajek_at_1": float(effect_bounds(*arms, 1.0, outer=False)[0])}
        passed = None if self.plausible is None else bool(at["excludes_zero"])
        return Refutation(self.name, fit.estimator, fit.metric, fit.segment, new_effect=float(new_effect),
                          passed=passed, details=details)


def _with_sums(a: ArmBins, s: np.ndarray) -> ArmBins:
    """``a``'s bins with replicate sums ``s`` (B, L, 5); the bins' y range stays the full data's."""
    return ArmBins(s[..., _N], s[..., _O], s[..., _Y], s[..., _OY], a.c, a.y_high, a.y_low)


__all__ = ("ArmBins", "MarginalSensitivityRefuter", "TARGET_PARTS", "binned_sums", "breakdown", "effect_bounds")
