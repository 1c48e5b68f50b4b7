"""Regression adjustment (``ols``) with an absorbed fixed effect.

The model is additive, ``y = alpha_g + tau d + gamma' x + e``: one intercept per level of the
fixed effect, no ``d:x`` interactions (a per-arm regression would need per-arm level
intercepts, and the standardised effect their means). The estimate is the treatment's
coefficient ``tau``, fitted on the within Gram of ``(1, d, x, y)``
(:mod:`causal_core.estimators.absorb`): the coefficient of the regression with G level
dummies. For a 0/1 treatment it is a variance-weighted average of within-level effects
(Angrist & Pischke 2009, §3.3.1), informed only by levels with rows in both arms
(``diagnostics["fixed_effects"]`` counts the others).

Standard errors, with the absorbed intercepts counted as in the regression with dummies
(module docstring of :mod:`~causal_core.estimators.absorb`): ``nonrobust`` ``s² (X̃'X̃)^-1``
with ``s² = SSR / (n - k - (G - 1))``; HC1 (MacKinnon & White 1985) and cluster-robust by
unit (Liang & Zeger 1986) from a second pass over the projected within score
``(l' x̃_i) ẽ_i``, whose group means are per-level constants the pass reads by level code
(:class:`~causal_core.moments.expr.Lookup`); ``buckets`` from the per-bucket within Grams.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.absorb import absorbed_k, check_within, treatment_groups, within_pass
from causal_core.estimators.base import ModelRoles
from causal_core.estimators.inference import coefficient_row, fit_replicates, summarize
from causal_core.estimators.linear import (
    batched_solve, cluster_factor, hc1_factor, n_clusters, recentring_shift, score_squares,
)
from causal_core.estimators.linear_model_gram import LinearModelGram, gram_names
from causal_core.estimators.moment_batch import unpack_symmetric
from causal_core.estimators.ols_gram import Layout, grouped_pass
from causal_core.moments.expr import linear


def fit_absorbed(est, engine, design: ModelRoles):
    """Fit ``est`` (an :class:`~causal_core.estimators.ols.OLS`) with the design's fixed
    effect absorbed; sets ``result_``, ``linear_gram_`` and ``bucket_statistic_``."""
    prefix = "ols: "
    if est.interactions:
        raise EstimationError("ols: interactions=True cannot be fitted with an absorbed fixed effect (the model "
                              "is additive: one intercept per level); set interactions: false or drop fixed_effects")
    layout = Layout(design, interactions=False)
    grouped = grouped_pass(engine, layout)
    est._layout(design, grouped)  # the treatment's checks: rows, constant, 0/1 for ATT / ATC
    binary = bool(grouped[:, 2, 0].sum() == 0.0)
    mb = len(layout.base)
    raw = unpack_symmetric(grouped.sum(axis=(0, 1)), mb)
    shift = recentring_shift(raw, layout.shiftable())
    if shift:
        layout = replace(layout, shift=tuple(shift.items()))
        grouped = grouped_pass(engine, layout)
        raw = unpack_symmetric(grouped.sum(axis=(0, 1)), mb)
    within = within_pass(engine, layout.base, design, unpack_symmetric(grouped.sum(axis=1), mb), prefix)
    lab = design.label
    names = ["const", lab(design.treatment), *(lab(x) for x in design.covariates)]
    w = within.total()
    check_within(w[:-1, :-1], raw[:-1, :-1], names, within.label, prefix, role={names[1]: "treatment"})
    reg, y = np.arange(1, mb - 1), mb - 1
    n, q = float(w[0, 0]), len(reg)
    xtx = w[np.ix_(reg, reg)]
    beta = np.linalg.solve(xtx, w[reg, y])
    a_inv = np.linalg.inv(xtx)
    ssr = float(w[y, y] - beta @ w[reg, y])
    k_plain = q + 1  # the regressors and the constant, as the model without fixed effects counts them
    if n - k_plain - within.absorbed <= 0:
        raise EstimationError(f"ols: {int(n)} rows cannot fit {q} coefficients and {within.groups} level intercepts")
    index = np.arange(1, mb)
    moments = within.flat(index)

    def statistic(totals: np.ndarray) -> np.ndarray:
        g = unpack_symmetric(totals, len(index))
        return batched_solve(g[:, :-1, :-1], g[:, :-1, -1])[:, 0]

    reps = fit_replicates(est, engine, within.within_gram_exprs(layout.base, index), moments, statistic,
                          est.bootstrap)
    var, cov_type = _variance(est, engine, design, layout, within, beta, a_inv, ssr, moments)
    se = float(np.sqrt(var))
    est.layout_ = est.grouped_ = None  # the simulation refuters' grouped Gram has no within form
    est.linear_gram_ = LinearModelGram(
        w, gram_names(design.treatment, design.covariates, design.outcome), design.treatment, design.outcome,
        design.covariates, sources=design.sources, labels=design.labels, absorbed=within.absorbed)
    diagnostics = {
        "n": int(round(n)), "r2_within": float(1.0 - ssr / w[y, y]) if w[y, y] > 0 else float("nan"),
        "cov_type": cov_type, "interactions": False, "regressors": names,
        "treatment_coef": coefficient_row(beta[0], se), "se_fixed_covariates": se,
        "covariate_means": [float(raw[0, 2 + j] / n) + dict(layout.shift).get(x, 0.0)
                            for j, x in enumerate(design.covariates)],
        "fixed_effects": {**treatment_groups(within, binary), "nested_in_clusters": within.nested
                          if design.clustered else None},
        "recentred": bool(shift), "overlap": None, "warnings": [],
    }
    if design.clustered and cov_type == "cluster":
        diagnostics["n_clusters"] = n_clusters(engine)
    if design.target != "ate":
        diagnostics["warnings"].append(f"the {design.target.upper()} without interactions assumes a constant "
                                       "treatment effect")
    contrast = None if binary else f"+1 unit of {lab(design.treatment)}"
    est.result_ = summarize(est.name, design, estimate=float(beta[0]), analytic_se=se, n=int(round(n)),
                            replicates=reps, bootstrap=est.bootstrap, ci_method=est.ci_method, level=est.level,
                            diagnostics=diagnostics, contrast=contrast)
    return est


def _variance(est, engine, design: ModelRoles, layout: Layout, within, beta: np.ndarray, a_inv: np.ndarray,
              ssr: float, moments: np.ndarray) -> tuple[float, str]:
    """The treatment coefficient's variance and the cov_type reported (module docstring)."""
    n, q = float(within.total()[0, 0]), len(beta)
    k = q + 1
    l_row = a_inv[0]
    if est.cov_type == "nonrobust":
        return ssr / (n - k - within.absorbed) * a_inv[0, 0], "nonrobust"
    if est.cov_type == "buckets":
        g = unpack_symmetric(moments, q + 1)  # (K, q + 1, q + 1) over (d, x, y)
        scores = (g[:, :q, q] - g[:, :q, :q] @ beta) @ l_row
        occupied = int(np.sum(within.grams[:, 0, 0] > 0))
        return float(cluster_factor(n, absorbed_k(within, k, clustered=True), occupied) * np.sum(scores ** 2)), \
            "buckets"
    base = layout.base
    xs, y = base[1:-1], base[-1]
    means = within.means
    u = linear(l_row, xs) - within.lookup(means[:, 1:-1] @ l_row)
    e = (y - linear(beta, xs)) - within.lookup(means[:, -1] - means[:, 1:-1] @ beta)
    (square,) = score_squares(engine, [u * e], clustered=design.clustered)
    if design.clustered:
        factor = cluster_factor(n, absorbed_k(within, k, clustered=True), n_clusters(engine))
        return float(factor * square), "cluster"
    return float(hc1_factor(n, k + within.absorbed) * square), "HC1"
