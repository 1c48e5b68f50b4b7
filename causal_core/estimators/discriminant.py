"""The linear discriminant's log-odds of treatment, from per-arm Gram matrices alone.

Its coefficients need only the arms' counts, means and pooled covariance (Efron 1975;
:func:`discriminant`): moments that the first pass of every back-door estimator has, so
it costs no pass. Two estimators use it: the logistic propensity fit starts Newton from
it (:mod:`~causal_core.estimators.propensity`), and regression adjustment, which fits
no propensity model, scores the rows with it to report the arms' overlap
(:class:`DiscriminantScore`; :mod:`~causal_core.estimators.ols`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causal_core.estimators.moment_batch import BucketMoments
from causal_core.estimators.score_quantiles import ARMS, ArmOverlap
from causal_core.moments.expr import Expr, linear


def discriminant(xx: np.ndarray, dxx: np.ndarray) -> np.ndarray | None:
    """The linear discriminant's log-odds coefficients (intercept first) from the Gram
    matrices of ``(1, x)`` over all rows (``xx``) and over the treated rows (``dxx``).

    With normal covariates of a common covariance in both arms the log-odds of treatment
    are exactly linear, ``log(n1/n0) - (m1 + m0)' S^-1 (m1 - m0) / 2 + x' S^-1 (m1 - m0)``
    with the arm means m1, m0 and the pooled within-arm covariance S (divisor n - 2;
    Efron 1975, "The efficiency of logistic regression compared to normal discriminant
    analysis", sec. 2). ``None`` when S is singular or the result is not finite.
    """
    n1, n = dxx[0, 0], xx[0, 0]
    n0 = n - n1
    if xx.shape[0] == 1:
        return np.array([np.log(n1 / n0)])
    m1, m0 = dxx[0, 1:] / n1, (xx[0, 1:] - dxx[0, 1:]) / n0
    within = (dxx[1:, 1:] - n1 * np.outer(m1, m1)) + (xx[1:, 1:] - dxx[1:, 1:] - n0 * np.outer(m0, m0))
    try:
        slope = np.linalg.solve(within / max(n - 2.0, 1.0), m1 - m0)
    except np.linalg.LinAlgError:
        return None
    lda = np.r_[np.log(n1 / n0) - 0.5 * (m1 + m0) @ slope, slope]
    return lda if np.all(np.isfinite(lda)) else None


@dataclass(frozen=True, eq=False)
class DiscriminantScore:
    """The linear discriminant's log-odds of treatment (:func:`discriminant`; Efron 1975)
    as a propensity score computed from per-arm Gram matrices alone — no logistic fit:
    ``eta`` over the given terms, and per arm (treated, control) the rows and the mean
    and variance (divisor n - 1) of ``eta``. ols's overlap diagnostic uses it."""

    eta: Expr
    n: np.ndarray
    mean: np.ndarray
    var: np.ndarray

    @classmethod
    def from_arm_grams(cls, arm_grams: np.ndarray, terms: list[Expr]) -> DiscriminantScore | None:
        """From the (2, q, q) Gram matrices of ``terms`` = ``(1, x)`` over the control (0)
        and treated (1) rows; ``None`` when the pooled within-arm covariance is singular."""
        coef = discriminant(arm_grams[0] + arm_grams[1], arm_grams[1])
        if coef is None:
            return None
        n, mean, var = (np.zeros(2) for _ in range(3))
        for i, a in enumerate(ARMS):
            g = arm_grams[a]
            n[i] = g[0, 0]
            mx = g[0, 1:] / n[i]
            cov = (g[1:, 1:] - n[i] * np.outer(mx, mx)) / max(n[i] - 1.0, 1.0)
            mean[i] = coef[0] + coef[1:] @ mx
            var[i] = coef[1:] @ cov @ coef[1:]
        return cls(linear(coef, terms), n, mean, var)

    def balance(self) -> dict:
        """Rubin's (2001, "Using propensity scores to help design observational studies",
        sec. 3) summaries of the score: ``standardized_difference`` B, the difference of
        the arms' mean scores over ``sqrt((s1^2 + s0^2) / 2)``, and ``variance_ratio`` R =
        s1^2 / s0^2; regression adjustment is trustworthy when |B| < 0.5 and 0.5 < R < 2,
        and leans on extrapolation beyond. ``None`` without covariates (no spread)."""
        spread = np.sqrt((self.var[0] + self.var[1]) / 2.0)
        ok = spread > 0 and self.var[1] > 0
        return {"standardized_difference": float((self.mean[0] - self.mean[1]) / spread) if ok else None,
                "variance_ratio": float(self.var[0] / self.var[1]) if ok else None}

    def overlap(self, sums: BucketMoments, low: np.ndarray, high: np.ndarray) -> ArmOverlap:
        """The :class:`ArmOverlap` from the totals and extremes of ``overlap_batch(eta)``."""
        below = np.vstack([sums.total_vector(f"below{a}") for a in ARMS])
        return ArmOverlap.from_sums(self.n, below, low, high)
