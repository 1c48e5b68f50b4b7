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

Every back-door estimator reports the arms' overlap in ``diagnostics["overlap"]``
(:func:`overlap_diagnostic`) and warns where it matters: the weighting estimators when
any row's propensity lies beyond [0.05, 0.95] (its inverse weight exceeds 20 and interval
coverage suffers), the others when the arms do not overlap or many rows lie beyond
(:func:`extrapolation_warnings`). The estimators that fit a propensity model (``ipw``,
``aipw``, ``stratification``) report it, its overlap, their counts and warnings through
one function, :func:`propensity_diagnostics`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, Estimator
from causal_core.estimators.moment_batch import BucketMoments, MomentBatch, times
from causal_core.estimators.propensity import LogisticFit
from causal_core.estimators.score_quantiles import ARM_NAMES, ARMS, ArmOverlap, arm_indicator
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
        return arm_indicator(treatment, arm)

    def weight(self, arm: int) -> Expr:
        return self.w1 if arm == 1 else self.w0

    def dweight(self, arm: int) -> Expr:
        return self.dw1 if arm == 1 else self.dw0

    def add_counts(self, batch: MomentBatch, treatment: str, arm: int, near_bound: float) -> None:
        """Add the arm's blocks that :meth:`WeightingCounts.from_sums` reads: its rows
        kept by trimming, its rows whose propensity was clipped, and its kept rows with
        propensity beyond ``near_bound``."""
        a = self.arm(treatment, arm)
        batch.add(f"kept{arm}", times(a, self.keep))
        batch.add(f"clipped{arm}", times(a, lit(1.0) - self.free))
        batch.add(f"near{arm}", times(a, self.near_bounds(near_bound)))


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


NEAR_BOUND = 0.05  # the weighting estimators warn about rows with propensity beyond [0.05, 0.95]
# ... when more than 1% of the rows lie there: a handful of rows near the bound barely
# moves a Hajek estimate, and warning on every one would make the warning noise. (1% is
# a threshold of ours, not from the literature; the counts are always in the diagnostics.)
NEAR_SHARE = 0.01
EXTREME_BOUND = 0.01  # beyond it a single row's inverse weight exceeds 100: warned about whatever the share
CRUMP_BOUND = 0.1  # Crump et al.'s (2009) rule of thumb keeps the rows with 0.1 <= e <= 0.9
# Share of rows beyond [0.05, 0.95] above which an estimator that weights no row by 1/e
# (ols, stratification) warns: from a tenth of the rows on, the outcome model's
# extrapolation (or a few rows of one arm) carries a sizable part of the effect.
EXTRAPOLATION_SHARE = 0.1


def overlap_diagnostic(overlap: ArmOverlap | None, propensity: str) -> dict:
    """``diagnostics["overlap"]``: how far the arms overlap in a propensity score.

    ``propensity`` names the score (``logistic``, or ``linear discriminant`` for ols);
    ``range`` per arm its smallest and largest value; ``arms_overlap`` whether those
    ranges intersect (complete separation when not); ``share_outside`` the share of rows
    with propensity at or below 0.05 or above 0.95 (``bounds``); ``share_outside_crump``
    the same for [0.1, 0.9], the rows Crump, Hotz, Imbens & Mitnik (2009, "Dealing with
    limited overlap in estimation of average treatment effects", sec. 5) would trim by
    their rule of thumb, which they find close to their optimal cut-off alpha across
    designs (that alpha solves ``1/(alpha (1-alpha)) = 2 E[1/(e(1-e)) | 1/(e(1-e)) <=
    1/(alpha (1-alpha))]``, an equation in the order statistics of e, which an engine does
    not return); ``trim_suggestion`` says so in words. Without ``overlap`` (no pass saw the
    rows' scores) those entries are ``None``.
    """
    out = {"propensity": propensity, "bounds": [NEAR_BOUND, 1.0 - NEAR_BOUND],
           "crump_bounds": [CRUMP_BOUND, 1.0 - CRUMP_BOUND]}
    if overlap is None:
        return {**out, "range": None, "arms_overlap": None, "share_outside": None, "share_outside_crump": None,
                "trim_suggestion": None}
    n = float(overlap.n.sum())
    near, crump = (float(overlap.outside(b).sum()) for b in (NEAR_BOUND, CRUMP_BOUND))
    suggestion = (f"Crump et al. (2009): keeping the rows with {CRUMP_BOUND:g} <= e <= {1 - CRUMP_BOUND:g} "
                  f"(trim={CRUMP_BOUND:g}) drops {int(crump)} of {int(n)} rows ({crump / n:.1%}) and estimates "
                  "the effect on the rest") if crump > 0 else None
    return {**out, "range": overlap.propensity_range(), "arms_overlap": overlap.arms_overlap,
            "share_outside": near / n, "share_outside_crump": crump / n, "trim_suggestion": suggestion}


def overlap_warnings(near: float, n: float, bound: float, max_smd_after: float | None = None,
                     smd_threshold: float = 0.1) -> list[str]:
    """Human-readable warnings about extreme propensities and residual imbalance
    (the 0.1 SMD rule of thumb: Austin 2009; Stuart 2010)."""
    out = []
    if near > NEAR_SHARE * n:
        out.append(f"{int(near)} of {int(n)} rows have an estimated propensity below {bound:g} or above "
                   f"{1 - bound:g}: their inverse weights are extreme and the interval may undercover; consider "
                   f"trim={CRUMP_BOUND:g} (Crump et al. 2009; changes the estimand to the overlap population) or "
                   f"clip={bound:g} (keeps the estimand, adds bias)")
    if max_smd_after is not None and max_smd_after > smd_threshold:
        out.append(f"after weighting the largest absolute standardized mean difference is {max_smd_after:.3f} "
                   f"(> {smd_threshold}): the propensity model may be misspecified")
    return out


def extrapolation_warnings(overlap: dict, consequence: str) -> list[str]:
    """Warnings of the estimators that weight no row by ``1/e`` (ols, stratification),
    from an :func:`overlap_diagnostic`: the arms' propensity ranges do not intersect
    (complete separation), or more than ``EXTRAPOLATION_SHARE`` of the rows lie beyond
    [0.05, 0.95]. ``consequence`` says what that does to the estimate."""
    if overlap["range"] is None:
        return []
    score = f"{overlap['propensity']} propensity"
    if not overlap["arms_overlap"]:
        t, c = overlap["range"]["treated"], overlap["range"]["control"]
        return [f"the treated and untreated rows do not overlap in their {score} (treated {t[0]:.3g} to "
                f"{t[1]:.3g}, untreated {c[0]:.3g} to {c[1]:.3g}): {consequence}"]
    if overlap["share_outside"] > EXTRAPOLATION_SHARE:
        return [f"{overlap['share_outside']:.1%} of the rows have a {score} below {NEAR_BOUND:g} or above "
                f"{1 - NEAR_BOUND:g}: {consequence}; restricting the population to {CRUMP_BOUND:g} <= e <= "
                f"{1 - CRUMP_BOUND:g} (Crump et al. 2009) would drop {overlap['share_outside_crump']:.1%} of them"]
    return []


def issue_warnings(messages: list[str]) -> list[str]:
    """Issue each message as a :class:`PropensityWarning`; returns them (for diagnostics)."""
    for m in messages:
        warnings.warn(m, PropensityWarning, stacklevel=3)
    return messages


@dataclass(frozen=True)
class WeightingCounts:
    """What a weighting estimator's pass counted per arm (``ARMS`` order: treated,
    control) under its options: ``n`` rows, ``kept`` rows left by ``trim``, ``clipped``
    rows whose propensity ``clip`` capped, ``near`` kept rows with propensity beyond
    ``near_bound``."""

    n: np.ndarray
    kept: np.ndarray
    clipped: np.ndarray
    near: np.ndarray
    near_bound: float
    trim: float | None = None
    clip: float | None = None

    @classmethod
    def from_sums(cls, options: PropensityEstimator, n: np.ndarray, sums: BucketMoments) -> WeightingCounts:
        """From the rows per arm ``n`` and the totals of the :meth:`PropensityWeights.add_counts` blocks."""
        def count(block: str) -> np.ndarray:
            return np.array([float(np.atleast_1d(sums.total_vector(f"{block}{a}"))[0]) for a in ARMS])

        return cls(np.asarray(n, dtype=float), count("kept"), count("clipped"), count("near"), options.near_bound,
                   options.trim, options.clip)

    def diagnostics(self) -> dict:
        """The counts and options as ``diagnostics`` entries, per arm by arm name."""
        def per_arm(v: np.ndarray) -> dict[str, int]:
            return {ARM_NAMES[a]: int(v[i]) for i, a in enumerate(ARMS)}

        return {"n_treated": int(self.n[0]), "n_control": int(self.n[1]), "n_trimmed": per_arm(self.n - self.kept),
                "n_clipped": per_arm(self.clipped), "n_near_bounds": int(self.near.sum()),
                "near_bound": self.near_bound, "trim": self.trim, "clip": self.clip}


def propensity_diagnostics(fit: LogisticFit, overlap: ArmOverlap | None, *, counts: WeightingCounts | None = None,
                           max_smd_after: float | None = None, consequence: str = "") -> dict:
    """The ``diagnostics`` entries of an estimator built on a logistic propensity fit,
    with its warnings (issued as :class:`PropensityWarning`, and listed in ``warnings``).

    Every such estimator reports the model (``propensity_coefficients``,
    ``propensity_iterations``) and the arms' overlap in it (``overlap``,
    :func:`overlap_diagnostic`). One that weights rows by ``1/e`` passes its ``counts``:
    they are reported, and it warns by :func:`overlap_warnings` — rows near the bounds,
    where inverse weights explode, and a residual imbalance ``max_smd_after`` when it
    measured one. One that weights no row by ``1/e`` warns by
    :func:`extrapolation_warnings`, with the ``consequence`` of poor overlap for it.
    """
    out = {"propensity_coefficients": dict(zip(fit.names, map(float, fit.coef))),
           "propensity_iterations": fit.n_iter, "overlap": overlap_diagnostic(overlap, "logistic")}
    if counts is None:
        messages = extrapolation_warnings(out["overlap"], consequence)
    else:
        out.update(counts.diagnostics())
        messages = overlap_warnings(float(counts.near.sum()), float(counts.n.sum()), counts.near_bound,
                                    max_smd_after)
        near_warned = float(counts.near.sum()) > NEAR_SHARE * float(counts.n.sum())
        messages += extreme_weight_warnings(out["overlap"], counts, near_warned)
    out["warnings"] = issue_warnings(messages)
    return out


def extreme_weight_warnings(overlap: dict, counts: WeightingCounts, warned: bool) -> list[str]:
    """A few rows can matter where their weight is huge: with neither ``trim`` nor ``clip``,
    a fitted propensity beyond [EXTREME_BOUND, 1 - EXTREME_BOUND] (a weight above 100)
    warns even when the share of rows near the bounds is too small to (``warned``: a
    near-bounds warning already covers it)."""
    if warned or counts.trim is not None or counts.clip is not None or not overlap.get("range"):
        return []
    low = min(r[0] for r in overlap["range"].values())
    high = max(r[1] for r in overlap["range"].values())
    if low >= EXTREME_BOUND and high <= 1 - EXTREME_BOUND:
        return []
    weight = max(1 / low if low > 0 else float("inf"), 1 / (1 - high) if high < 1 else float("inf"))
    return [f"the fitted propensity ranges from {low:.3g} to {high:.3g}: some row's inverse weight reaches "
            f"{weight:.3g}, so a few rows can move the estimate; consider clip={NEAR_BOUND:g} (keeps the estimand, "
            f"adds bias) or trim={CRUMP_BOUND:g} (Crump et al. 2009; changes the estimand)"]


class PropensityEstimator(Estimator):
    """Shared options of the propensity-weighting estimators (``ipw``, ``aipw``): trimming
    or clipping of the fitted propensity, the warning bound, and the Newton settings."""

    targets = frozenset({"ate", "att", "atc"})
    binary_treatment = True

    def __init__(self, *, trim: float | None = None, clip: float | None = None,
                 bootstrap: BootstrapOptions = BootstrapOptions(), level: float | None = None,
                 ci_method: str | None = None, near_bound: float = NEAR_BOUND, max_iter: int = 50,
                 tol: float = 1e-10) -> None:
        self.trim = trim
        self.clip = clip
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method
        self.near_bound = near_bound
        self.max_iter = max_iter
        self.tol = tol
