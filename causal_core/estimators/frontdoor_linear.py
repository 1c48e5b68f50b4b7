"""The linear front-door estimator (``frontdoor``): products of two regressions' slopes.

Under the front-door criterion with linear structural equations the effect of d on y is
``sum_m a_m b_m`` with ``a_m`` the coefficient of d in ``M_m ~ 1 + d + w`` and ``b_m``
the coefficient of M_m in ``y ~ 1 + M + d + w`` (Pearl 2009, *Causality*, §3.3.2; the
product-of-coefficients of path analysis, Wright 1934). Both fits are sub-blocks of one
Gram matrix of ``(1, d, w, M, y)``, so the bucket bootstrap re-solves both per replicate.

Standard error by the delta method from the joint influence functions of the two least
squares fits (Sobel 1982; Newey & McFadden 1994, §6): a second pass gives the meat of the
stacked scores ``(x_a u_1, ..., x_a u_M, x_b e)``, so the covariance between the stages
is included, not assumed zero. Each block carries its own HC1 (or cluster) factor, so the
diagonal blocks are exactly statsmodels' robust covariances of the two regressions.
"""

from __future__ import annotations

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, ModelRoles, Estimator, register
from causal_core.estimators.inference import fit_replicates, check_options, coefficient_row, summarize
from causal_core.estimators.linear import (
    batched_solve, check_regressors, column_gram, n_clusters, sandwich, score_meat, small_sample_factor,
)
from causal_core.estimators.moment_batch import unpack_symmetric
from causal_core.moments.expr import linear


class _Index:
    """Positions in the Gram of ``(1, d, w_1..w_p, m_1..m_M, y)``."""

    def __init__(self, design: ModelRoles) -> None:
        p, k = len(design.covariates), len(design.mediators)
        self.columns = [design.treatment, *design.covariates, *design.mediators, design.outcome]
        w = list(range(2, 2 + p))
        self.m = np.arange(2 + p, 2 + p + k)
        self.xa = np.array([0, 1, *w])  # mediator models: 1, d, w
        self.xb = np.array([0, *self.m, 1, *w])  # outcome model: 1, M, d, w
        self.y = 2 + p + k


def stage_coefficients(g: np.ndarray, ix: _Index) -> tuple[np.ndarray, np.ndarray]:
    """``(B, ka, M)`` mediator-model and ``(B, kb)`` outcome-model coefficients."""
    alpha = batched_solve(g[:, ix.xa][:, :, ix.xa], g[:, ix.xa][:, :, ix.m])
    beta = batched_solve(g[:, ix.xb][:, :, ix.xb], g[:, ix.xb, ix.y])
    return alpha, beta


def product_effect(alpha: np.ndarray, beta: np.ndarray, n_mediators: int) -> np.ndarray:
    """``sum_m a_m b_m`` per replicate."""
    return np.einsum("bm,bm->b", alpha[:, 1, :], beta[:, 1:1 + n_mediators])


@register
class FrontdoorLinear(Estimator):
    """Two-stage linear front-door estimator; see the module docstring."""

    name = "frontdoor"
    targets = frozenset({"ate"})
    binary_treatment = False

    def __init__(self, *, bootstrap: BootstrapOptions = BootstrapOptions(), level: float | None = None,
                 ci_method: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method

    def fit(self, engine, design: ModelRoles) -> FrontdoorLinear:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        if not design.mediators:
            raise EstimationError("frontdoor: the design names no mediators")
        overlap = set(design.mediators) & ({design.treatment, design.outcome} | set(design.covariates))
        if overlap:
            raise EstimationError(f"frontdoor: mediators {sorted(map(design.label, overlap))} are also the "
                                  "treatment, outcome or a covariate")
        ix = _Index(design)
        gp = column_gram(engine, ix.columns)
        g = gp.gram()
        lab = design.label
        names_b = ["const", *map(lab, design.mediators), lab(design.treatment), *map(lab, design.covariates)]
        check_regressors(g[np.ix_(ix.xb, ix.xb)], names_b, role={names_b[1 + len(design.mediators)]: "treatment"})
        k = len(design.mediators)

        def statistic(totals: np.ndarray) -> np.ndarray:
            return product_effect(*stage_coefficients(unpack_symmetric(totals, len(gp.terms)), ix), k)

        alpha, beta = stage_coefficients(g[None], ix)
        estimate = float(product_effect(alpha, beta, k)[0])
        se, diagnostics = self._delta_method(engine, design, gp, ix, g, alpha[0], beta[0])
        reps = fit_replicates(self, engine, gp.exprs, gp.moments, statistic, self.bootstrap)
        diagnostics["recentred"] = bool(gp.shift)
        self.result_ = summarize(self.name, design, estimate=estimate, analytic_se=se, n=int(round(g[0, 0])),
                                 replicates=reps, bootstrap=self.bootstrap, ci_method=self.ci_method,
                                 level=self.level, diagnostics=diagnostics)
        return self

    def _delta_method(self, engine, design: ModelRoles, gp, ix: _Index, g: np.ndarray, alpha: np.ndarray,
                      beta: np.ndarray) -> tuple[float, dict]:
        """``L (sum s s') L'`` with s the stacked scores and L the effect's gradient
        through each fit's bread (see module docstring)."""
        n, k, ka, kb = g[0, 0], len(ix.m), len(ix.xa), len(ix.xb)
        xa = [gp.terms[i] for i in ix.xa]
        xb = [gp.terms[i] for i in ix.xb]
        scores = [x * (gp.terms[m] - linear(alpha[:, j], xa)) for j, m in enumerate(ix.m) for x in xa]
        scores += [x * (gp.terms[ix.y] - linear(beta, xb)) for x in xb]
        meat = score_meat(engine, scores, clustered=design.clustered)
        a_inv = np.linalg.inv(g[np.ix_(ix.xa, ix.xa)])
        b_inv = np.linalg.inv(g[np.ix_(ix.xb, ix.xb)])
        fa = np.sqrt(small_sample_factor(engine, n, ka, clustered=design.clustered))
        fb = np.sqrt(small_sample_factor(engine, n, kb, clustered=design.clustered))
        a, b = alpha[1], beta[1:1 + k]
        grad = np.concatenate([fa * b[j] * a_inv[1] for j in range(k)] + [fb * (a @ b_inv[1:1 + k])])
        var = float(grad @ meat @ grad)
        lab = design.label
        a_rows, b_rows = {}, {}
        for j, m in enumerate(design.mediators):
            block = slice(j * ka, (j + 1) * ka)
            v_a = fa ** 2 * sandwich(a_inv, meat[block, block])
            a_rows[lab(m)] = coefficient_row(a[j], float(np.sqrt(v_a[1, 1])))
        v_b = fb ** 2 * sandwich(b_inv, meat[k * ka:, k * ka:])
        for j, m in enumerate(design.mediators):
            b_rows[lab(m)] = coefficient_row(b[j], float(np.sqrt(v_b[1 + j, 1 + j])))
        diagnostics = {"n": int(round(n)), "cov_type": "cluster" if design.clustered else "HC1",
                       "treatment_to_mediator": a_rows, "mediator_to_outcome": b_rows}
        if design.clustered:
            diagnostics["n_clusters"] = n_clusters(engine)
        return float(np.sqrt(var)), diagnostics
