"""Augmented inverse probability weighting (doubly robust), from moments.

With a logistic propensity ``e(x)`` and per-arm linear outcome models
``m_a(x) = x'gamma_a`` (least squares on each arm), the estimator of a target with
population share ``h`` (1 for the ATE, ``d`` for the ATT, ``1 - d`` for the ATC) and the
arm weights ``w1, w0`` of :mod:`weighting` is ``tau = sum S g / sum S h`` with

    g = h (m1 - m0) + d w1 (y - m1) - (1 - d) w0 (y - m0)

— for the ATE ``m1 - m0 + d (y - m1) / e - (1 - d)(y - m0) / (1 - e)`` (Robins,
Rotnitzky & Zhao 1994; Scharfstein, Rotnitzky & Robins 1999; Glynn & Quinn 2010, eq. 6),
for the ATT ``d (y - m0) - (1 - d) e / (1 - e) (y - m0)`` over the treated
(Mercatanti & Li 2014; Moodie, Saarela & Stephens 2018), and symmetrically the ATC.
It is consistent if either model is correct.

Passes: the per-arm outcome Gram matrices ride on the first Newton pass of the
propensity fit; one more pass after the fits gives ``sum S g``, ``sum S h``, the
influence-function cross products, the Jacobian columns and, per bucket, the propensity
score and information at the fitted coefficients (for the bootstrap's one-step refit). The SE is the empirical
variance of the estimated influence function ``psi = S (g - tau h) / mean(S h)``
(Tsiatis 2006, sec. 13.5; Kennedy 2016): since ``g`` is linear in a few per-row columns
once ``b`` and ``gamma`` are known, ``sum psi^2`` needs only ``sum g^2, sum g h, sum h^2``.
The bucket bootstrap refits ``gamma`` exactly from reweighted Gram matrices, refits ``b``
by a one-step update, and moves ``sum S g`` along its Jacobian in ``(b, gamma)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import ModelRoles, register
from causal_core.estimators.inference import fit_replicates, check_options, summarize
from causal_core.estimators.linear import batched_solve, check_regressors, score_meat
from causal_core.estimators.moment_batch import MomentBatch, gram_exprs, times, unpack_symmetric
from causal_core.estimators.propensity import LogisticFit, fit_logistic, logistic_terms
from causal_core.estimators.score_quantiles import ARM_NAMES, ARMS, arm_indicator
from causal_core.estimators.weighting import (
    PropensityEstimator, PropensityWeights, WeightingCounts, propensity_diagnostics,
)
from causal_core.moments.expr import Expr, col, linear



def outcome_gram_exprs(design: ModelRoles) -> dict[int, list[Expr]]:
    """Per arm, the Gram matrix of ``(1, x, y)`` restricted to the arm's rows."""
    v = [*logistic_terms(design.covariates), col(design.outcome)]
    out = {}
    for a in ARMS:
        out[a] = [times(arm_indicator(design.treatment, a), e) for e in gram_exprs(v)]
    return out


def solve_outcome_models(gram: np.ndarray, p: int) -> np.ndarray:
    """Least-squares coefficients (..., p) from (..., (p+1)(p+2)/2) Gram totals of (1, x, y)."""
    g = unpack_symmetric(gram, p + 1)
    return batched_solve(g[..., :p, :p], g[..., :p, p])


def _fit_outcomes(fit: LogisticFit, design: ModelRoles) -> dict[int, np.ndarray]:
    p, gamma = fit.p, {}
    for a in ARMS:
        gram = fit.arm_gram(a)
        try:
            if p > 1:  # (an intercept alone needs only rows, which the propensity fit checked)
                check_regressors(unpack_symmetric(gram, p + 1)[:p, :p], fit.names)
        except EstimationError as err:
            raise EstimationError(f"aipw outcome model on the {ARM_NAMES[a]} rows: {err}") from None
        gamma[a] = solve_outcome_models(gram, p)
    return gamma


def _if_batch(design: ModelRoles, fit: LogisticFit, pw: PropensityWeights, gamma: dict[int, np.ndarray],
              near_bound: float) -> tuple[MomentBatch, list[Expr]]:
    """The post-fit pass: totals, IF cross products, Jacobians and diagnostic counts."""
    d, y = col(design.treatment), col(design.outcome)
    m1, m0 = linear(gamma[1], fit.terms), linear(gamma[0], fit.terms)
    r1, r0 = y - m1, y - m0
    a1, a0 = pw.arm(design.treatment, 1), pw.arm(design.treatment, 0)
    g = times(pw.keep, times(pw.h, m1 - m0) + times(times(a1, pw.w1), r1) - times(times(a0, pw.w0), r0))
    h = times(pw.keep, pw.h)
    batch = MomentBatch()
    batch.add("scores", fit.score_exprs())  # the bootstrap's one-step propensity refit
    batch.add("g", g)
    batch.add("h", h)
    c1 = times(pw.keep, pw.h - times(d, pw.w1))
    c0 = times(pw.keep, pw.h - times(a0, pw.w0))
    cb = times(pw.keep, times(times(d, pw.dw1), r1) - times(times(a0, pw.dw0), r0))
    batch.add("jac", [times(c1, x) for x in fit.terms] + [-times(c0, x) for x in fit.terms]
              + [times(cb, x) for x in fit.terms])
    if not design.clustered:
        batch.add_products("if", [g, h])
    for a, arm in ((1, a1), (0, a0)):
        batch.add(f"n{a}", arm)
        pw.add_counts(batch, design.treatment, a, near_bound)
    return batch, [g, h]


def aipw_statistic(fit: LogisticFit, gamma: dict[int, np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Replicate totals ``(scores | gram1 | gram0 | g | h | jac)`` -> tau: exact outcome
    refits, one-step propensity refit, first-order move of ``sum S g`` in (gamma, b)."""
    p, ns = fit.p, fit.n_scores
    ng = (p + 1) * (p + 2) // 2
    base = np.r_[gamma[1], gamma[0], fit.coef]

    def statistic(totals: np.ndarray) -> np.ndarray:
        shift_b = fit.shifts_from_totals(totals[:, :ns])
        g1 = solve_outcome_models(totals[:, ns:ns + ng], p)
        g0 = solve_outcome_models(totals[:, ns + ng:ns + 2 * ng], p)
        k = ns + 2 * ng
        shift = np.hstack([g1, g0, fit.coef + shift_b]) - base
        num = totals[:, k] + np.einsum("bj,bj->b", totals[:, k + 2:k + 2 + 3 * p], shift)
        return num / totals[:, k + 1]

    return statistic


@register
class AIPW(PropensityEstimator):
    """Doubly robust AIPW for the ATE, ATT or ATC (see module docstring).

    ``trim`` / ``clip`` as for ``ipw`` (default neither; a warning names the rows with
    propensity beyond ``near_bound``, 0.05). ``bootstrap``, ``level``, ``ci_method`` as in
    :mod:`inference`. Outcome models use the same terms as the propensity model.
    ``diagnostics["overlap"]`` (:func:`overlap_diagnostic`) is summed on the propensity
    fit's last Newton pass (at the last Newton point, within the fit's tolerance of the
    coefficients), or in one totals pass of its own when that pass was not foreseen.
    """

    opens_with_arm_gram = True  # the outcome models' per-bucket arm Grams (first_by_bucket)

    name = "aipw"

    def fit(self, engine, design: ModelRoles) -> AIPW:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        grams = outcome_gram_exprs(design)
        fit = fit_logistic(engine, design.treatment, design.covariates, max_iter=self.max_iter, tol=self.tol,
                           label=design.label, outcome=design.outcome, first_by_bucket=True, overlap=True)
        gamma = _fit_outcomes(fit, design)
        pw = PropensityWeights.build(fit, design.target, trim=self.trim, clip=self.clip)
        batch, if_exprs = _if_batch(design, fit, pw, gamma, self.near_bound)
        sums = batch.run(engine)
        sg, sh = sums.total("g"), sums.total("h")
        if sh <= 0:
            raise EstimationError("aipw: no rows left in the target population (check trim)")
        cross = score_meat(engine, if_exprs, clustered=True) if design.clustered else sums.symmetric("if", 2)
        tau = sg / sh
        var = (cross[0, 0] - 2 * tau * cross[0, 1] + tau * tau * cross[1, 1]) / sh ** 2
        reps = fit_replicates(self, 
            engine, [*batch.exprs("scores"), *grams[1], *grams[0], *batch.exprs("g"), *batch.exprs("h"),
                     *batch.exprs("jac")],
            np.hstack([sums.buckets("scores"), fit.arm_gram(1, buckets=True), fit.arm_gram(0, buckets=True),
                       sums.buckets("g"), sums.buckets("h"), sums.buckets("jac")]),
            aipw_statistic(fit, gamma), self.bootstrap)
        self.propensity_, self.outcome_coefficients_ = fit, gamma
        self.result_ = summarize(self.name, design, estimate=tau, analytic_se=float(np.sqrt(max(var, 0.0))),
                                 n=int(round(sum(sums.total(f"kept{a}") for a in ARMS))), replicates=reps,
                                 bootstrap=self.bootstrap, ci_method=self.ci_method, level=self.level,
                                 diagnostics=self._diagnostics(fit, gamma, sums))
        return self

    def _diagnostics(self, fit: LogisticFit, gamma: dict[int, np.ndarray], sums) -> dict:
        counts = WeightingCounts.from_sums(self, np.array([sums.total(f"n{a}") for a in ARMS]), sums)
        return {
            **propensity_diagnostics(fit, fit.overlap, counts=counts),
            "outcome_coefficients": {ARM_NAMES[a]: dict(zip(fit.names, map(float, gamma[a]))) for a in ARMS},
        }
