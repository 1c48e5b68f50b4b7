"""Inverse-propensity weights as moment expressions, with trimming, clipping and balance.

For a target the arm weights are (Imbens 2004; Hirano, Imbens & Ridder 2003;
Lunceford & Davidian 2004, sec. 3; Li, Morgan & Zaslavsky 2018, table 1)

=======  ===================  ==============================
target   treated  w1(e)       control  w0(e)
=======  ===================  ==============================
ATE      1 / e = 1 + e^-eta   1 / (1 - e) = 1 + e^eta
ATT      1                    e / (1 - e) = e^eta
ATC      (1 - e) / e = e^-eta 1
=======  ===================  ==============================

with ``eta = x'b``; writing them in ``eta`` keeps them exact near 0 and 1. Their
derivatives in ``eta`` (``dw/deta``) are the Jacobian columns the sandwich and the
one-step bootstrap need. Trimming (Crump, Hotz, Imbens & Mitnik 2009) drops units whose
propensity lies outside ``[a, 1 - a]``: the estimand becomes the effect in the overlap
population, and the trimmed set is held fixed in the variance (its indicator has zero
derivative almost everywhere). Clipping (winsorizing, Lee, Lessler & Stuart 2011) caps
the propensity into ``[a, 1 - a]``: the estimand is kept, a little bias is traded for
variance, and a clipped unit's weight no longer moves with ``b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from causal_core.estimators.base import BootstrapOptions, Estimator

from causal_core.errors import EstimationError
from causal_core.estimators.moment_batch import times
from causal_core.estimators.propensity import LogisticFit
from causal_core.moments.expr import Expr, col, exp, lit


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _check_bound(name: str, a: float | None) -> None:
    if a is not None and not 0.0 < a < 0.5:
        raise EstimationError(f"{name} must lie in (0, 0.5) (the propensity bound a of [a, 1 - a]); got {a}")


@dataclass(frozen=True)
class PropensityWeights:
    """Expressions for one target: weights, their eta-derivatives, trimming and clipping.

    ``keep`` is the trimming indicator (the literal 1 without trimming), ``free`` is 1
    where the clipped propensity still moves with ``b`` (the literal 1 without clipping),
    ``h`` is the row's share of the target population (1, ``d`` or ``1 - d``);
    ``eta_used`` is the linear predictor after clipping (``eta`` without clipping).
    """

    target: str
    eta: Expr
    eta_used: Expr
    keep: Expr
    free: Expr
    w1: Expr
    w0: Expr
    dw1: Expr
    dw0: Expr
    h: Expr

    @classmethod
    def build(cls, fit: LogisticFit, target: str, *, trim: float | None = None,
              clip: float | None = None) -> PropensityWeights:
        _check_bound("trim", trim)
        _check_bound("clip", clip)
        if trim is not None and clip is not None:
            raise EstimationError("use either trim or clip, not both")
        eta = fit.eta()
        keep: Expr = lit(1.0)
        free: Expr = lit(1.0)
        eta_w = eta
        if trim is not None:
            keep = eta.ge(logit(trim)) * eta.le(logit(1.0 - trim))
        if clip is not None:
            lo, hi = logit(clip), logit(1.0 - clip)
            below, above = eta.lt(lo), eta.gt(hi)
            eta_w = eta + (lit(lo) - eta) * below + (lit(hi) - eta) * above
            free = lit(1.0) - below - above
        d = col(fit.treatment)
        pos, neg = exp(eta_w), exp(-eta_w)
        one, zero = lit(1.0), lit(0.0)
        if target == "ate":
            w1, w0, dw1, dw0, h = one + neg, one + pos, -times(neg, free), times(pos, free), one
        elif target == "att":
            w1, w0, dw1, dw0, h = one, pos, zero, times(pos, free), d
        elif target == "atc":
            w1, w0, dw1, dw0, h = neg, one, -times(neg, free), zero, one - d
        else:
            raise EstimationError(f"target {target!r} is unknown for propensity weighting; expected ate, att or atc")
        return cls(target=target, eta=eta, eta_used=eta_w, keep=keep, free=free, w1=w1, w0=w0, dw1=dw1, dw0=dw0, h=h)

    def near_bounds(self, bound: float) -> Expr:
        """1 for a kept row whose (clipped) propensity lies below ``bound`` or above 1 - ``bound``."""
        return times(self.keep, self.eta_used.lt(logit(bound)) + self.eta_used.gt(logit(1.0 - bound)))

    def arm(self, treatment: str, arm: int) -> Expr:
        """The arm indicator ``d`` or ``1 - d``."""
        return col(treatment) if arm == 1 else lit(1.0) - col(treatment)

    def weight(self, arm: int) -> Expr:
        return self.w1 if arm == 1 else self.w0

    def dweight(self, arm: int) -> Expr:
        return self.dw1 if arm == 1 else self.dw0


def kish_ess(sum_w: float, sum_w2: float) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 (Kish 1965, sec. 11.7)."""
    return float(sum_w * sum_w / sum_w2) if sum_w2 > 0 else 0.0


def standardized_differences(n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
                             wn: np.ndarray, ws1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardized mean differences (treated - control) before and after weighting.

    Inputs are per-arm moments indexed [arm1, arm0]: counts ``n`` (2,), sums ``s1`` and
    sums of squares ``s2`` (2, q), sums of weights ``wn`` (2,) and weighted sums ``ws1``
    (2, q). Both use the unweighted pooled SD ``sqrt((s1^2 + s0^2) / 2)`` as denominator, so that weighting changes only
    the numerator (Austin & Stuart 2015, eq. 1-2; Austin 2009).
    """
    mean = s1 / n[:, None]
    var = (s2 - n[:, None] * mean ** 2) / np.maximum(n[:, None] - 1.0, 1.0)
    sd = np.sqrt(np.maximum((var[0] + var[1]) / 2.0, 0.0))
    wmean = ws1 / wn[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        before = np.where(sd > 0, (mean[0] - mean[1]) / sd, 0.0)
        after = np.where(sd > 0, (wmean[0] - wmean[1]) / sd, 0.0)
    return before, after


class PropensityWarning(UserWarning):
    """Propensities near 0 or 1, or poor covariate balance after weighting."""


def overlap_warnings(near: float, n: float, bound: float, max_smd_after: float | None = None,
                     smd_threshold: float = 0.1) -> list[str]:
    """Human-readable warnings about extreme propensities and residual imbalance
    (the 0.1 SMD rule of thumb: Austin 2009; Stuart 2010)."""
    out = []
    if near > 0:
        out.append(f"{int(near)} of {int(n)} rows have an estimated propensity below {bound:g} or above "
                   f"{1 - bound:g}: their inverse weights are extreme; consider trim=0.05 (changes the estimand "
                   "to the overlap population) or clip=0.01")
    if max_smd_after is not None and max_smd_after > smd_threshold:
        out.append(f"after weighting the largest absolute standardized mean difference is {max_smd_after:.3f} "
                   f"(> {smd_threshold}): the propensity model may be misspecified")
    return out


class PropensityEstimator(Estimator):
    """Shared options of the propensity-weighting estimators (``ipw``, ``aipw``): trimming
    or clipping of the fitted propensity, the warning bound, and the Newton settings."""

    strategies = frozenset({"backdoor"})
    targets = frozenset({"ate", "att", "atc"})
    binary_treatment = True

    def __init__(self, *, trim: float | None = None, clip: float | None = None,
                 bootstrap: BootstrapOptions = BootstrapOptions(), level: float | None = None,
                 ci_method: str | None = None, near_bound: float = 0.01, max_iter: int = 50,
                 tol: float = 1e-10) -> None:
        self.trim = trim
        self.clip = clip
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method
        self.near_bound = near_bound
        self.max_iter = max_iter
        self.tol = tol
