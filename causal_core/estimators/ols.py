"""Regression adjustment (``ols``): least squares from one pass of moments.

The model is ``y ~ 1 + d + x`` and, for a binary treatment, the fully interacted
``y ~ 1 + d + x + d:x`` — separate regressions per arm — whose effect on a target
population T is the standardisation (g-formula) ``tau + gamma' mean_T(x)`` with T all
rows (ATE), the treated (ATT) or the controls (ATC) (Imbens & Wooldridge 2009, "Recent
developments in the econometrics of program evaluation", §5.3; Lin 2013). The additive
model's coefficient is a variance-weighted average of heterogeneous effects (Angrist &
Pischke 2009, §3.3.1), so interactions are the default whenever the treatment is binary.

Everything is a function of the Gram matrix of ``(1, d, x, d:x, y)``: X'X, X'y and the
target means ``mean_T(x)`` (sums of x and d*x over the sum of 1 or d), so the bucket
bootstrap reweights the means along with the regression.

Standard errors: HC1 (MacKinnon & White 1985) or cluster-robust by unit (Liang & Zeger
1986) from a second pass with the coefficients as literals, with Stata's small-sample
factors. The effect's variance stacks the regression scores ``x e`` with the mean scores
``w (x - mean_T)`` (w = 1, d or 1-d): the delta method for the standardised effect
(Newey & McFadden 1994, §6). ``diagnostics["se_fixed_covariates"]`` is the variance
that treats the covariate means as fixed — what statsmodels reports for the treatment
coefficient after centring the covariates at the target means.

The second pass sums only the squares of three projected scores
``l' s`` (the effect, the fixed-covariate effect and the treatment coefficient): a
variance ``l' A^-1 B A^-T l`` needs ``sum (l' A^-1 s_i)^2``, not the whole meat B
(Hampel et al. 1986, §2.3: the variance of a functional is the second moment of its
influence function), so that pass is 3 sums wide whatever the number of covariates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, Design, Estimator, register
from causal_core.estimators.inference import bootstrap_replicates, check_options, coefficient_row, summarize
from causal_core.estimators.linear import (
    CONSTANT_TOL, arm_gram_sums, batched_solve, check_regressors, cluster_factor, gram_exprs, n_clusters,
    recentring_shift, score_meat, score_squares, small_sample_factor, unpack_gram,
)
from causal_core.estimators.moment_batch import times
from causal_core.moments.expr import Expr, Lit, col, linear

COV_TYPES = ("HC1", "nonrobust", "buckets")


@dataclass(frozen=True)
class _Layout:
    """Pass-1 variables ``(1, d, x_1..x_p, [d:x_1..d:x_p], y)`` and which enter the fit.

    ``shift`` subtracts constants from columns (never from a binary treatment): the
    slopes, the effect and the residuals are unchanged, the moments better conditioned.
    """

    design: Design
    interactions: bool  # d:x columns are in the moments and the model
    shift: tuple[tuple[str, float], ...] = ()

    @property
    def p(self) -> int:
        return len(self.design.covariates)

    def term(self, name: str) -> Expr:
        c = dict(self.shift).get(name)
        return col(name) if c is None else col(name) - Lit(c)

    @property
    def variables(self) -> list[Expr]:
        d, xs = self.term(self.design.treatment), [self.term(x) for x in self.design.covariates]
        inter = [d * x for x in xs] if self.interactions else []
        return [Lit(1.0), d, *xs, *inter, self.term(self.design.outcome)]

    @property
    def regressors(self) -> np.ndarray:
        k = 2 + self.p
        return np.arange(k + self.p) if self.interactions else np.arange(k)

    @property
    def y(self) -> int:
        return len(self.variables) - 1

    def names(self) -> list[str]:
        lab = self.design.label
        d = lab(self.design.treatment)
        xs = [lab(x) for x in self.design.covariates]
        return (["const", d, *xs] + [f"{d}:{x}" for x in xs])[: len(self.regressors)]

    def form(self, a: np.ndarray) -> Expr:
        """``a' (regressors)`` written with the treatment factored out of the interactions,
        ``(a_0 + a_d d + a_x' x) + d (a_dx' x)`` as ``L0 + d L1``: each covariate appears
        twice instead of in every term, so the row expression is a third of the size."""
        xs = [self.term(x) for x in self.design.covariates]
        d, p = self.term(self.design.treatment), self.p
        if not self.interactions:
            return linear(a, [Lit(1.0), d, *xs])
        base = linear(a[:1], [Lit(1.0)]) + linear(a[2:2 + p], xs) if p else linear(a[:1], [Lit(1.0)])
        return base + d * (linear(a[1:2], [Lit(1.0)]) + linear(a[2 + p:], xs) if p else linear(a[1:2], [Lit(1.0)]))

    def shiftable(self) -> dict[int, str]:
        """Gram index -> column for the columns a shift may move (not a binary treatment)."""
        out = {2 + j: x for j, x in enumerate(self.design.covariates)}
        out[self.y] = self.design.outcome
        if not self.interactions:
            out[1] = self.design.treatment
        return out

    def exprs(self) -> list[Expr]:
        """The moments :meth:`assemble` returns: the Gram of the variables, then the count
        of rows whose treatment is neither 0 nor 1."""
        return [*gram_exprs(self.variables), _non_binary(col(self.design.treatment))]

    @property
    def base(self) -> list[Expr]:
        """What the grouped pass sums the products of: ``(1, d, x_1..x_p, y)``."""
        return [Lit(1.0), self.term(self.design.treatment), *(self.term(x) for x in self.design.covariates),
                self.term(self.design.outcome)]

    def assemble(self, grouped: np.ndarray) -> np.ndarray:
        """Per-bucket moments of :meth:`exprs` from the grouped pass ``(K, 3, .)``.

        Within arm a the treatment is the constant a, so ``d x_j x_k`` is a times the
        arm's ``x_j x_k``: the interacted Gram (p + 3)(p + 4) / 2 products wide comes from
        per-arm Grams of ``(1, d, x, y)`` instead of being summed row by row.
        """
        mb, p = len(self.base), self.p
        g = unpack_gram(grouped, mb)  # (K, 3, mb, mb)
        index = [0, 1, *range(2, 2 + p), *(range(2, 2 + p) if self.interactions else ()), mb - 1]
        in_arm = np.array([False, False, *[False] * p, *[True] * (p if self.interactions else 0), False])
        rows, cols = np.triu_indices(len(index))
        index = np.asarray(index)
        out = np.zeros((grouped.shape[0], len(rows) + 1))
        for level in ((0, 1) if self.interactions else (0, 1, 2)):
            scale = np.where(in_arm, float(level), 1.0)
            out[:, :-1] += g[:, level][:, index[rows], index[cols]] * (scale[rows] * scale[cols])
        out[:, -1] = grouped[:, 2, 0]
        return out


def _non_binary(d: Expr) -> Expr:
    return Lit(1.0) - d.eq(0.0) - d.eq(1.0)


def grouped_pass(engine, layout: _Layout) -> np.ndarray:
    """One pass: per bucket and treatment arm, the Gram sums of ``(1, d, x, y)``."""
    return arm_gram_sums(engine, layout.base, layout.design.treatment)


def target_means(g: np.ndarray, target: str, p: int) -> np.ndarray:
    """``(..., p)`` covariate means over the target population, from Gram matrices."""
    xs = slice(2, 2 + p)
    n, n1 = g[..., 0, 0], g[..., 0, 1]
    sx, s1x = g[..., 0, xs], g[..., 1, xs]
    if target == "att":
        return s1x / n1[..., None]
    if target == "atc":
        return (sx - s1x) / (n - n1)[..., None]
    return sx / n[..., None]


@register
class OLS(Estimator):
    """Regression adjustment by least squares; see the module docstring."""

    name = "ols"
    strategies = frozenset({"backdoor"})
    targets = frozenset({"ate", "att", "atc"})
    binary_treatment = False

    def __init__(self, *, interactions: bool | None = None, cov_type: str = "HC1",
                 bootstrap: BootstrapOptions = BootstrapOptions(), level: float | None = None,
                 ci_method: str | None = None) -> None:
        self.interactions = interactions
        self.cov_type = cov_type
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method

    def _check(self, design: Design) -> None:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        if self.cov_type not in COV_TYPES:
            raise EstimationError(f"ols: cov_type {self.cov_type!r} is unknown; expected one of {COV_TYPES}")
        if self.cov_type == "nonrobust" and design.clustered:
            raise EstimationError("ols: cov_type='nonrobust' cannot be used with a clustered (unit id) design")

    def _layout(self, design: Design, grouped: np.ndarray) -> _Layout:
        g = unpack_gram(grouped.sum(axis=(0, 1)), 3 + len(design.covariates))  # (1, d, x, y)
        n, d = g[0, 0], design.treatment
        if not n > 0:
            raise EstimationError("ols: no rows to estimate from")
        var_d = g[1, 1] / n - (g[0, 1] / n) ** 2
        if not np.isfinite(var_d):
            raise EstimationError(f"ols: treatment {design.label(d)!r} contains NaN or infinite values")
        if var_d <= CONSTANT_TOL * max(g[1, 1] / n, 1e-300):
            raise EstimationError(f"ols: treatment {design.label(d)!r} is constant (= {g[0, 1] / n:.6g}); "
                                  "no contrast to estimate")
        binary = grouped[:, 2, 0].sum() == 0.0
        if not binary and (design.target != "ate" or self.interactions):
            why = f"target {design.target.upper()}" if design.target != "ate" else "interactions=True"
            raise EstimationError(f"ols: {why} needs a binary 0/1 treatment; {design.label(d)!r} is not")
        use = bool(binary and self.interactions is not False and design.covariates)
        return _Layout(design, interactions=use)

    def fit(self, engine, design: Design) -> OLS:
        self._check(design)
        layout = _Layout(design, interactions=False)
        grouped = grouped_pass(engine, layout)
        layout = self._layout(design, grouped)
        moments = layout.assemble(grouped)
        shift = recentring_shift(unpack_gram(moments.sum(axis=0)[:-1], len(layout.variables)), layout.shiftable())
        if shift:
            layout = replace(layout, shift=tuple(shift.items()))
            moments = layout.assemble(grouped_pass(engine, layout))
        exprs = layout.exprs()
        totals = moments.sum(axis=0)
        names = layout.names()
        g = unpack_gram(totals[:-1], len(layout.variables))
        reg = layout.regressors
        check_regressors(g[np.ix_(reg, reg)], names, role={names[1]: "treatment"})
        statistic = _statistic(layout)
        estimate = float(statistic(totals[None])[0])
        analytic = self._analytic(engine, design, layout, g, moments)
        reps = bootstrap_replicates(engine, exprs, moments, statistic, self.bootstrap)
        diagnostics = analytic.pop("diagnostics")
        diagnostics["recentred"] = bool(shift)
        contrast = None if totals[-1] == 0.0 else f"+1 unit of {design.label(design.treatment)}"
        self.result_ = summarize(self.name, design, estimate=estimate, analytic_se=analytic["se"],
                                 n=int(round(g[0, 0])), replicates=reps, bootstrap=self.bootstrap,
                                 ci_method=self.ci_method, level=self.level, diagnostics=diagnostics,
                                 contrast=contrast)
        return self

    def _analytic(self, engine, design: Design, layout: _Layout, g: np.ndarray, moments: np.ndarray) -> dict:
        """Sandwich (or nonrobust) variance of the standardised effect; see module docstring."""
        reg, y, p = layout.regressors, layout.y, layout.p
        xtx = g[np.ix_(reg, reg)]
        a_inv = np.linalg.inv(xtx)
        beta = np.linalg.solve(xtx, g[reg, y])
        q, n = len(reg), g[0, 0]
        resid = layout.variables[y] - layout.form(beta)
        c = np.zeros(q)
        c[1] = 1.0
        l_mu = np.zeros(0)
        xs = [layout.term(x) for x in design.covariates]
        mean_score = None  # l -> the row expression l' w (x - mu) of the target-mean scores
        if layout.interactions:
            mu = target_means(g, design.target, p)
            c[2 + p:] = mu
            w = {"ate": Lit(1.0), "att": col(design.treatment),
                 "atc": Lit(1.0) - col(design.treatment)}[design.target]
            n_target = {"ate": n, "att": g[0, 1], "atc": n - g[0, 1]}[design.target]
            l_mu = beta[2 + p:] / n_target
            mean_score = lambda l: times(w, linear(l, xs) - Lit(float(l @ mu)))  # noqa: E731
        if self.cov_type == "nonrobust" and layout.interactions:
            raise EstimationError("ols: cov_type='nonrobust' needs interactions=False (the standardised "
                                  "effect's variance includes the covariate means)")
        if self.cov_type == "nonrobust":
            ssr = float(score_meat(engine, [resid], clustered=design.clustered)[0, 0])
            v_beta = ssr / (n - q) * a_inv
            var, var_fixed, var_coef = float(c @ v_beta @ c), float(c @ v_beta @ c), float(v_beta[1, 1])
        elif self.cov_type == "buckets":
            rows = _functionals(c, a_inv, l_mu)
            scores, occupied = _bucket_scores(moments, layout, beta, mu if layout.interactions else None)
            factor = cluster_factor(n, q, occupied)
            var, var_fixed, var_coef = (float(factor * np.sum((scores @ r) ** 2)) for r in rows)
        else:
            # Only three linear functionals of the stacked scores s = (x e, w (x - mu)) are
            # reported, so the pass sums the squares of their projections l's — three
            # sums instead of the (q + p)^2 / 2 entries of s s'.
            rows = _functionals(c, a_inv, l_mu)
            proj = [layout.form(r[:q]) * resid for r in rows]
            if mean_score is not None:
                proj = [e + mean_score(r[q:]) for e, r in zip(proj, rows)]
            squares = score_squares(engine, proj, clustered=design.clustered)
            factor = small_sample_factor(engine, n, q, clustered=design.clustered)
            var, var_fixed, var_coef = (float(factor * v) for v in squares)
        tss = g[y, y] - g[0, y] ** 2 / n
        ssr_gram = g[y, y] - beta @ g[reg, y]  # valid clustered too, where meat[0, 0] is not the SSR
        shift = dict(layout.shift)
        diagnostics = {
            "n": int(round(n)), "r2": float(1.0 - ssr_gram / tss) if tss > 0 else float("nan"),
            "cov_type": "cluster" if design.clustered and self.cov_type != "buckets" else self.cov_type,
            "interactions": layout.interactions, "regressors": layout.names(),
            "treatment_coef": coefficient_row(beta[1], float(np.sqrt(var_coef))),
            "se_fixed_covariates": float(np.sqrt(var_fixed)),
            "covariate_means": [float(m) + shift.get(x, 0.0) for m, x in zip(c[2 + p:], design.covariates)],
        }
        if design.clustered:
            diagnostics["n_clusters"] = n_clusters(engine)
        if design.target != "ate" and not layout.interactions:
            diagnostics["warnings"] = [f"the {design.target.upper()} without interactions assumes a "
                                       "constant treatment effect"]
        return {"se": float(np.sqrt(var)), "diagnostics": diagnostics}


def _functionals(c: np.ndarray, a_inv: np.ndarray, l_mu: np.ndarray) -> list[np.ndarray]:
    """The reported functionals of the stacked scores ``(x e, w (x - mu))``: the effect,
    the effect with the covariate means fixed, and the treatment coefficient."""
    zeros = np.zeros(len(l_mu))
    return [np.concatenate([c @ a_inv, l_mu]), np.concatenate([c @ a_inv, zeros]),
            np.concatenate([a_inv[1], zeros])]


def _bucket_scores(moments: np.ndarray, layout: _Layout, beta: np.ndarray,
                   mu: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Per-bucket sums of the stacked scores, from the per-bucket Gram matrices of pass 1:
    ``X_k'y_k - X_k'X_k b`` and ``sum_k w (x - mu)``; and the number of non-empty buckets.

    With ``cov_type="buckets"`` they are the clusters of the sandwich: rows (or units) are
    hashed to buckets independently of the data, so bucket clusters give an unbiased
    estimate of the HC (or unit-cluster) variance with K - 1 degrees of freedom — no
    second pass, at the price of a noisier SE (relative sd about 1/sqrt(2K), 2% at K =
    1000; Cameron & Miller 2015, sec. VI on few clusters).
    """
    reg, y, p = layout.regressors, layout.y, layout.p
    gb = unpack_gram(moments[:, :-1], len(layout.variables))
    scores = [gb[:, reg, y] - gb[:, reg][:, :, reg] @ beta]
    if mu is not None:
        xs = slice(2, 2 + p)
        sw, nw = {"ate": (gb[:, 0, xs], gb[:, 0, 0]), "att": (gb[:, 1, xs], gb[:, 0, 1]),
                  "atc": (gb[:, 0, xs] - gb[:, 1, xs], gb[:, 0, 0] - gb[:, 0, 1])}[layout.design.target]
        scores.append(sw - nw[:, None] * mu[None, :])
    return np.hstack(scores), int(np.sum(gb[:, 0, 0] > 0))


def _statistic(layout: _Layout):
    """The vectorised effect ``(B, m) totals -> (B,)``: solve X'X b = X'y per replicate,
    then standardise over the target means when the model is interacted."""
    reg, y, p, m = layout.regressors, layout.y, layout.p, len(layout.variables)
    target = layout.design.target

    def statistic(totals: np.ndarray) -> np.ndarray:
        g = unpack_gram(totals[:, :-1], m)
        beta = batched_solve(g[:, reg][:, :, reg], g[:, reg, y])
        effect = beta[:, 1]
        if layout.interactions:
            effect = effect + np.einsum("bj,bj->b", beta[:, 2 + p:], target_means(g, target, p))
        return effect

    return statistic
