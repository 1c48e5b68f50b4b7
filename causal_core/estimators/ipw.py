"""Inverse probability weighting with normalized (Hajek) weights, from moments.

The estimator (Hajek 1971; Hirano, Imbens & Ridder 2003; Lunceford & Davidian 2004,
eq. 3 "IPW2") for arm weights ``w1, w0`` of the target (:mod:`weighting`):

    mu1 = sum d S w1 y / sum d S w1,   mu0 = sum (1-d) S w0 y / sum (1-d) S w0,   tau = mu1 - mu0

with ``S`` the trimming indicator. After the logistic fit (Newton passes of totals),
two passes at the fitted propensity coefficients ``b`` (the first usually riding on the
last Newton pass, :func:`fit_logistic_with`):

* one ungrouped pass (``engine.totals``): the four totals
  ``T = (sum d S w1, sum d S w1 y, sum (1-d) S w0, sum (1-d) S w0 y)``, their Jacobians
  ``dT/db`` (the bread of the sandwich), the balance and overlap counts, and the exact
  propensity range per arm (minimum and maximum of ``x'b``);
* one pass per bucket of five row expressions. With the per-row base vector
  ``c = (d S w1, d S w1 y, (1-d) S w0, (1-d) S w0 y, s)``, ``s = (d - e) x`` the score:
  ``c_k + J_k H^-1 s`` (k = 1..4), the totals moved along their Jacobian ``J`` by the
  one-step propensity refit ``H^-1 sum s`` (``H`` the information), for the bootstrap;
  and ``psi^2`` for the influence function of the effect ``psi = v' c`` — every stacked
  estimating function is linear in ``c`` given ``(mu1, mu0)``, so ``v`` comes from the
  totals, Jacobians and information.

The SE is the M-estimation sandwich of the stacked equations ``(psi_1, psi_0, score of
b)``, ``sqrt(sum psi^2)``, which accounts for estimating the propensity (Lunceford &
Davidian 2004, sec. 3.2 and appendix; Stefanski & Boos 2002). The bucket bootstrap
refits ``b`` by a one-step Newton update with the full-data information (Hu &
Kalbfleisch 2000), moves ``T`` along its Jacobian and takes the ratios exactly: four
sums per bucket.
"""

from __future__ import annotations

import numpy as np

from causal_core.estimators.base import ModelRoles, register
from causal_core.estimators.inference import fit_replicates, check_options, summarize
from causal_core.estimators.linear import score_meat
from causal_core.estimators.moment_batch import BucketMoments, MomentBatch, times, unpack_symmetric
from causal_core.estimators.propensity import LogisticFit, fit_logistic_with
from causal_core.estimators.score_quantiles import (
    ARMS, COARSE_PROBS, OVERLAP_PROBS, ArmOverlap, arm_eta_extremes, coarse_cdf,
)
from causal_core.estimators.weighting import (
    PropensityEstimator, PropensityWeights, WeightingCounts, kish_ess, propensity_diagnostics,
    standardized_differences,
)
from causal_core.moments.expr import Expr, col, linear, sigmoid


def _base_exprs(design: ModelRoles, pw: PropensityWeights) -> tuple[list[Expr], Expr]:
    """The totals T (4) and the score residual ``d - e``: the per-row base vector of the
    sandwich meat is ``c = (T, (d - e) x)``."""
    y = col(design.outcome)
    t = []
    for a in ARMS:
        aw = times(times(pw.arm(design.treatment, a), pw.keep), pw.weight(a))
        t += [aw, times(aw, y)]
    return t, col(design.treatment) - sigmoid(pw.eta)


def _along(t: list[Expr], resid: Expr, terms, coefs: np.ndarray) -> Expr:
    """``coefs' c`` for ``c = (t, resid x)``, written ``coefs_t' t + resid (coefs_x' x)``."""
    k = len(t)
    return linear(coefs[:k], t) + resid * linear(coefs[k:], list(terms))


def _main_batch(design: ModelRoles, fit: LogisticFit, pw: PropensityWeights, near_bound: float) -> MomentBatch:
    """Everything the estimate, the SE, the bootstrap and the diagnostics need: one pass."""
    y = col(design.outcome)
    t, _ = _base_exprs(design, pw)
    batch = MomentBatch()
    batch.add("t", t)
    jac = []
    for a in ARMS:
        ad = times(times(pw.arm(design.treatment, a), pw.keep), pw.dweight(a))
        jac += [times(ad, x) for x in fit.terms] + [times(times(ad, y), x) for x in fit.terms]
    batch.add("jac", jac)
    covs = [col(v) for v in design.covariates]
    for a in ARMS:
        arm = pw.arm(design.treatment, a)
        aw = times(times(arm, pw.keep), pw.weight(a))
        batch.add(f"w2{a}", times(aw, pw.weight(a)))
        batch.add(f"wsx{a}", [times(aw, x) for x in covs])
        pw.add_counts(batch, design.treatment, a, near_bound)
        batch.add(f"cdf{a}", coarse_cdf(pw.eta, arm))
    return batch


def hajek_influence(t: np.ndarray, jac: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """The coefficients ``v`` (4 + p,) of the influence function ``v' c`` of mu1 - mu0.

    ``t`` (4,) totals, ``jac`` (4, p) their derivatives in b, ``hess`` (p, p) the logistic
    information; ``c`` is the per-row base vector. With theta = (mu1, mu0, b), the bread
    is G = d(sum psi)/d(theta) and psi = L c, so the sandwich G^-1 L cc' L' G^-T of the
    stacked equations (Stefanski & Boos 2002, eq. 5) is ``sum_i (v' c_i)^2`` with
    ``v = L' G^-T a``: one squared row expression instead of the (4 + p)^2 / 2 cross
    products of ``c``.
    """
    p = hess.shape[0]
    mu1, mu0 = t[1] / t[0], t[3] / t[2]
    q = 2 + p
    g = np.zeros((q, q))
    g[0, 0], g[0, 2:] = -t[0], jac[1] - mu1 * jac[0]
    g[1, 1], g[1, 2:] = -t[2], jac[3] - mu0 * jac[2]
    g[2:, 2:] = -hess
    el = np.zeros((q, 4 + p))
    el[0, :2] = (-mu1, 1.0)
    el[1, 2:4] = (-mu0, 1.0)
    el[2:, 4:] = np.eye(p)
    ginv_a = np.linalg.solve(g.T, np.r_[1.0, -1.0, np.zeros(p)])
    return el.T @ ginv_a


def _moved_totals(jac: np.ndarray, hess: np.ndarray, t: list[Expr], resid: Expr, terms) -> list[Expr]:
    """Row expressions whose reweighted sums are the totals T at the replicate's one-step
    propensity refit: ``t_k + J_k H^-1 s_i`` with ``s_i = (d - e) x`` the row's score, since
    the refit moves b by ``H^-1 sum w s`` and T by its Jacobian ``J`` times that."""
    a = np.linalg.solve(hess, jac.T).T  # (4, p): J H^-1
    return [t[k] + resid * linear(a[k], list(terms)) for k in range(4)]


def _hajek_effect(totals: np.ndarray) -> np.ndarray:
    """``(B, 4)`` totals T -> mu1 - mu0, the ratios taken exactly."""
    return totals[:, 1] / totals[:, 0] - totals[:, 3] / totals[:, 2]


def arm_moments(fit: LogisticFit) -> dict[int, tuple[float, np.ndarray, np.ndarray]]:
    """Per arm: rows, sums and sums of squares of the covariates (from the first pass)."""
    out = {}
    for a in ARMS:
        m = round((np.sqrt(8 * len(fit.arm_gram(a)) + 1) - 1) / 2)
        g = unpack_symmetric(fit.arm_gram(a), m)
        out[a] = (float(g[0, 0]), g[0, 1:fit.p], np.diag(g)[1:fit.p])
    return out


def _arm_overlap(sums: BucketMoments, n_arm: dict[int, float], low: np.ndarray, high: np.ndarray) -> ArmOverlap:
    """The arms' overlap from the main pass: the exact per-arm range of ``eta`` and the
    rows below the overlap bounds, read off the histogram's cumulative counts."""
    at = [COARSE_PROBS.index(p) for p in OVERLAP_PROBS]
    below = np.vstack([sums.total_vector(f"cdf{a}")[at] for a in ARMS])
    return ArmOverlap.from_sums([n_arm[a] for a in ARMS], below, low, high)


def _histogram(sums: BucketMoments, n_arm: dict[int, float]) -> dict:
    """Rows per arm in the propensity bands between consecutive ``COARSE_PROBS``."""
    edges = [0.0, *COARSE_PROBS, 1.0]
    out = {"edges": edges}
    for a, label in zip(ARMS, ("treated", "control")):
        cum = np.r_[0.0, sums.total_vector(f"cdf{a}"), n_arm[a]]
        out[label] = [int(round(c)) for c in np.diff(cum)]
    return out


def weighting_diagnostics(design: ModelRoles, fit: LogisticFit, sums: BucketMoments, options: PropensityEstimator,
                          low: np.ndarray, high: np.ndarray) -> dict:
    """The propensity model, its overlap, counts and warnings (:func:`propensity_diagnostics`),
    with ipw's own ESS, histogram and balance, from the main pass's totals and extremes
    (:func:`arm_eta_extremes`)."""
    tot = lambda name: np.array([np.atleast_1d(sums.total_vector(f"{name}{a}")) for a in ARMS])  # noqa: E731
    arms = arm_moments(fit)
    n_arm = {a: arms[a][0] for a in ARMS}
    n = np.array([n_arm[a] for a in ARMS])
    sx, sxx = (np.array([arms[a][k] for a in ARMS]) for k in (1, 2))
    wn = np.array([sums.total_vector("t")[0], sums.total_vector("t")[2]])
    before, after = standardized_differences(n, sx, sxx, wn, tot("wsx"))
    w2 = tot("w2")[:, 0]
    max_after = float(np.max(np.abs(after))) if len(after) else 0.0
    overlap = _arm_overlap(sums, n_arm, low, high)
    return {
        **propensity_diagnostics(fit, overlap, counts=WeightingCounts.from_sums(options, n, sums),
                                 max_smd_after=max_after),
        "effective_sample_size": {"treated": kish_ess(wn[0], w2[0]), "control": kish_ess(wn[1], w2[1])},
        "propensity_range": overlap.propensity_range(),
        "propensity_histogram": _histogram(sums, n_arm),
        "smd_before": dict(zip(map(design.label, design.covariates), map(float, before))),
        "smd_after": dict(zip(map(design.label, design.covariates), map(float, after))),
        "max_abs_smd_after": max_after,
    }


@register
class IPW(PropensityEstimator):
    """Hajek inverse probability weighting for the ATE, ATT or ATC (see module docstring).

    Options: ``trim`` a in (0, 0.5) drops units with propensity outside [a, 1 - a]
    (changes the estimand to that overlap population); ``clip`` a caps propensities into
    [a, 1 - a] (keeps the estimand, adds bias). Default: neither — a warning names the
    rows whose propensity is below ``near_bound`` (0.05) or above 1 - ``near_bound``;
    ``diagnostics["overlap"]`` reports the arms' overlap (:func:`overlap_diagnostic`).
    ``bootstrap``, ``level`` and ``ci_method`` as in :mod:`inference` (default: the
    percentile interval of 1000 one-step bucket-bootstrap replicates).
    """

    name = "ipw"

    def fit(self, engine, design: ModelRoles) -> IPW:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)

        def final(provisional: LogisticFit) -> tuple[MomentBatch, list[Expr]]:
            pw = PropensityWeights.build(provisional, design.target, trim=self.trim, clip=self.clip)
            return _main_batch(design, provisional, pw, self.near_bound), arm_eta_extremes(pw.eta, design.treatment)

        fit, done = fit_logistic_with(engine, design.treatment, design.covariates, final=final,
                                      outcome=design.outcome, max_iter=self.max_iter, tol=self.tol,
                                      label=design.label)
        pw = PropensityWeights.build(fit, design.target, trim=self.trim, clip=self.clip)
        if done is None:
            batch, extremes = final(fit)
            sums, low, high = batch.run_totals(engine, extremes)
        else:  # the main pass rode on the last Newton pass
            sums, low, high = done.sums, done.low, done.high
        t, jac = sums.total_vector("t"), sums.total_vector("jac").reshape(4, fit.p)
        estimate = t[1] / t[0] - t[3] / t[2]
        base, resid = _base_exprs(design, pw)
        psi = _along(base, resid, fit.terms, hajek_influence(t, jac, fit.hessian))
        moved = _moved_totals(jac, fit.hessian, base, resid, fit.terms)
        if design.clustered:  # sum psi^2 needs per-unit sums
            per_bucket = engine.bucket_sums(moved)
            psi2 = score_meat(engine, [psi], clustered=True)[0, 0]
        else:
            per_bucket = engine.bucket_sums([*moved, psi * psi])
            psi2 = per_bucket[:, 4].sum()
        se = float(np.sqrt(max(psi2, 0.0)))
        reps = fit_replicates(self, engine, moved, per_bucket[:, :4], _hajek_effect, self.bootstrap)
        diag = weighting_diagnostics(design, fit, sums, self, low, high)
        diag["weights"] = "hajek"
        self.propensity_ = fit
        self.result_ = summarize(self.name, design, estimate=estimate, analytic_se=se,
                                 n=int(round(sum(sums.total(f"kept{a}") for a in ARMS))), replicates=reps,
                                 bootstrap=self.bootstrap, ci_method=self.ci_method, level=self.level,
                                 diagnostics=diag)
        return self
