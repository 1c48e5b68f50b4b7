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

Positivity and overlap, for a 0/1 treatment. The grouped pass's per-arm Gram matrices
show a covariate level with rows in one arm only (:func:`support_gaps`): the interacted
model cannot be fitted there and the error names the level; the additive model fits and
warns that it extrapolates its single effect to it. The regressor checks name the user's
covariates per arm, never an internal ``d:x`` column. ``diagnostics["overlap"]``
(:func:`overlap_diagnostic`) scores the rows with the linear discriminant's log-odds,
computed from the same per-arm Grams (Efron 1975; no logistic fit): its per-arm range and
the rows beyond [0.05, 0.95] and [0.1, 0.9] ride on the variance's totals pass (8 sums,
4 extremes); a clustered design, whose variance sums per unit, takes one totals pass of
its own for them; ``cov_type: buckets``, which makes no pass after the Gram, reports only
what the Gram gives — Rubin's (2001) standardized difference and variance ratio of the
score, which every cov_type reports — and leaves the range and shares ``None``. A
:class:`~causal_core.estimators.weighting.PropensityWarning` says when the arms' ranges do not intersect or more than a
tenth of the rows lie beyond [0.05, 0.95]: there the effect is the outcome model's
extrapolation.

With an absorbed fixed effect (``ModelRoles.fixed_effects``, the spec's ``fixed_effects``)
the model is additive with one intercept per level: :mod:`causal_core.estimators.ols_absorbed`.
Every fit leaves ``linear_gram_``, the Gram of ``(1, d, x, y)`` over the kept rows (the within
Gram with a fixed effect), which the sensitivity refuters read.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, ModelRoles, Estimator, register
from causal_core.estimators.discriminant import DiscriminantScore
from causal_core.estimators.inference import fit_replicates, check_options, coefficient_row, summarize
from causal_core.estimators.linear import (
    CONSTANT_TOL, check_arm_regressors, check_regressors, cluster_factor, n_clusters, positivity_message,
    recentring_shift, score_meat, score_squares, small_sample_factor, support_gaps,
)
from causal_core.estimators.linear_model_gram import LinearModelGram, gram_names
from causal_core.estimators.moment_batch import BucketMoments, MomentBatch, times, unpack_symmetric
from causal_core.estimators.ols_absorbed import fit_absorbed
from causal_core.estimators.ols_gram import Layout, arm_grams, effect_statistic, grouped_pass, target_means
from causal_core.estimators.score_quantiles import overlap_batch
from causal_core.estimators.weighting import extrapolation_warnings, issue_warnings, overlap_diagnostic
from causal_core.moments.expr import Expr, Lit, col, linear

COV_TYPES = ("HC1", "nonrobust", "buckets")


def _labels(design: ModelRoles) -> list[str]:
    return [design.label(x) for x in design.covariates]


def _check_model(design: ModelRoles, layout: Layout, g: np.ndarray, grouped: np.ndarray, gaps: list) -> None:
    """Constant, non-finite or collinear regressors, named in the user's terms: the block
    ``(1, d, x)`` pooled, then for the interacted model each arm's ``(1, x)``
    (:func:`check_arm_regressors`; together they fail exactly when the interacted X'X is
    singular), so no message names an internal ``d:x`` column. A pooled failure that a
    level present in one arm only explains (``gaps``) is reported as that level."""
    k = 2 + layout.p
    names = layout.names()[:k]
    try:
        check_regressors(g[:k, :k], names, role={names[1]: "treatment"})
    except EstimationError:
        if gaps:
            raise EstimationError(f"ols: {positivity_message(gaps, design.label(design.treatment))}") from None
        raise
    if layout.interactions:
        shift = dict(layout.shift)
        check_arm_regressors(arm_grams(layout, grouped), _labels(design), "ols: ",
                             [shift.get(x, 0.0) for x in design.covariates])


def _squares_riding(engine, scores: list[Expr], ride: tuple[MomentBatch, list[Expr]] | None
                    ) -> tuple[np.ndarray, tuple[BucketMoments, np.ndarray, np.ndarray] | None]:
    """``sum s^2`` of each row score in one totals pass (rows are the units, as in
    :func:`score_squares`), with a batch and its extremes riding along."""
    if ride is None:
        return engine.totals([s * s for s in scores]).sums, None
    batch, extremes = ride
    out = engine.totals([*(s * s for s in scores), *batch.exprs()], extremes)
    k = len(scores)
    return out.sums[:k], (batch.moments(out.sums[None, k:]), out.low, out.high)


@register
class OLS(Estimator):
    """Regression adjustment by least squares; see the module docstring."""

    name = "ols"
    targets = frozenset({"ate", "att", "atc"})
    binary_treatment = False
    absorbs_fixed_effects = True
    opens_with_arm_gram = True
    one_pass_after_opening = True  # the variance pass; a recentring or a clustered design adds one

    def __init__(self, *, interactions: bool | None = None, cov_type: str = "HC1",
                 bootstrap: BootstrapOptions = BootstrapOptions(), level: float | None = None,
                 ci_method: str | None = None) -> None:
        self.interactions = interactions
        self.cov_type = cov_type
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method

    def _check(self, design: ModelRoles) -> None:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        if self.cov_type not in COV_TYPES:
            raise EstimationError(f"ols: cov_type {self.cov_type!r} is unknown; expected one of {COV_TYPES}")
        if self.cov_type == "nonrobust" and design.clustered:
            raise EstimationError("ols: cov_type='nonrobust' cannot be used with a clustered (unit id) design")

    def _layout(self, design: ModelRoles, grouped: np.ndarray) -> Layout:
        g = unpack_symmetric(grouped.sum(axis=(0, 1)), 3 + len(design.covariates))  # (1, d, x, y)
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
        return Layout(design, interactions=use)

    def fit(self, engine, design: ModelRoles) -> OLS:
        self._check(design)
        if design.fixed_effects:
            return fit_absorbed(self, engine, design)
        layout = Layout(design, interactions=False)
        grouped = grouped_pass(engine, layout)
        layout = self._layout(design, grouped)
        binary = bool(grouped[:, 2, 0].sum() == 0.0)
        gaps = support_gaps(arm_grams(layout, grouped), _labels(design)) if binary else []
        if gaps and layout.interactions:
            raise EstimationError(f"ols: {positivity_message(gaps, design.label(design.treatment))}")
        moments = layout.assemble(grouped)
        shift = recentring_shift(unpack_symmetric(moments.sum(axis=0)[:-1], len(layout.variables)), layout.shiftable())
        if shift:
            layout = replace(layout, shift=tuple(shift.items()))
            grouped = grouped_pass(engine, layout)
            moments = layout.assemble(grouped)
        exprs = layout.exprs()
        totals = moments.sum(axis=0)
        g = unpack_symmetric(totals[:-1], len(layout.variables))
        _check_model(design, layout, g, grouped, gaps)
        statistic = effect_statistic(layout)
        estimate = float(statistic(totals[None])[0])
        score = DiscriminantScore.from_arm_grams(
            arm_grams(layout, grouped), [Lit(1.0), *(layout.term(x) for x in design.covariates)]) if binary else None
        analytic = self._analytic(engine, design, layout, g, moments, score)
        reps = fit_replicates(self, engine, exprs, moments, statistic, self.bootstrap)
        self.layout_, self.grouped_ = layout, grouped  # the simulation refuters re-solve from these
        self.linear_gram_ = LinearModelGram(  # shifted columns change no sensitivity statistic
            unpack_symmetric(grouped.sum(axis=(0, 1)), len(layout.base)),
            gram_names(design.treatment, design.covariates, design.outcome), design.treatment, design.outcome,
            design.covariates, sources=design.sources, labels=design.labels)
        diagnostics = analytic.pop("diagnostics")
        diagnostics["recentred"] = bool(shift)
        warns = diagnostics.setdefault("warnings", [])
        if gaps:  # the additive model: one effect for all, extrapolated to these levels
            warns += issue_warnings([f"{positivity_message(gaps, design.label(design.treatment))}; the additive "
                                     "model extrapolates its single effect there"])
        diagnostics["overlap"] = None  # a treatment that is not 0/1 has no arms to overlap
        if binary:
            balance = score.balance() if score is not None else {"standardized_difference": None,
                                                                 "variance_ratio": None}
            diagnostics["overlap"] = {**overlap_diagnostic(analytic["overlap"], "linear discriminant"), **balance}
            warns += issue_warnings(extrapolation_warnings(
                diagnostics["overlap"], "the effect is extrapolated from the outcome model where the arms do "
                "not overlap"))
        contrast = None if totals[-1] == 0.0 else f"+1 unit of {design.label(design.treatment)}"
        self.result_ = summarize(self.name, design, estimate=estimate, analytic_se=analytic["se"],
                                 n=int(round(g[0, 0])), replicates=reps, bootstrap=self.bootstrap,
                                 ci_method=self.ci_method, level=self.level, diagnostics=diagnostics,
                                 contrast=contrast)
        return self

    def _analytic(self, engine, design: ModelRoles, layout: Layout, g: np.ndarray, moments: np.ndarray,
                  score: DiscriminantScore | None) -> dict:
        """Sandwich (or nonrobust) variance of the standardised effect; see module docstring.
        The arms' overlap in the discriminant ``score`` rides on the variance's totals pass
        (rows, not clustered), takes a totals pass of its own (clustered: that variance sums
        per unit), or is left out (``buckets``: no pass after the Gram)."""
        ride = overlap_batch(score.eta, design.treatment) if score is not None else None
        rode = None
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
            if design.clustered:
                ssr = float(score_meat(engine, [resid], clustered=True)[0, 0])
            else:
                (ssr,), rode = _squares_riding(engine, [resid], ride)
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
            if design.clustered:
                squares = score_squares(engine, proj, clustered=True)
            else:
                squares, rode = _squares_riding(engine, proj, ride)
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
        overlap = None
        if ride is not None and self.cov_type != "buckets":
            if rode is None:  # clustered: one totals pass for the overlap
                batch, extremes = ride
                rode = batch.run_totals(engine, extremes)
            overlap = score.overlap(*rode)
        return {"se": float(np.sqrt(var)), "diagnostics": diagnostics, "overlap": overlap}


def _functionals(c: np.ndarray, a_inv: np.ndarray, l_mu: np.ndarray) -> list[np.ndarray]:
    """The reported functionals of the stacked scores ``(x e, w (x - mu))``: the effect,
    the effect with the covariate means fixed, and the treatment coefficient."""
    zeros = np.zeros(len(l_mu))
    return [np.concatenate([c @ a_inv, l_mu]), np.concatenate([c @ a_inv, zeros]),
            np.concatenate([a_inv[1], zeros])]


def _bucket_scores(moments: np.ndarray, layout: Layout, beta: np.ndarray,
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
    gb = unpack_symmetric(moments[:, :-1], len(layout.variables))
    scores = [gb[:, reg, y] - gb[:, reg][:, :, reg] @ beta]
    if mu is not None:
        xs = slice(2, 2 + p)
        sw, nw = {"ate": (gb[:, 0, xs], gb[:, 0, 0]), "att": (gb[:, 1, xs], gb[:, 0, 1]),
                  "atc": (gb[:, 0, xs] - gb[:, 1, xs], gb[:, 0, 0] - gb[:, 0, 1])}[layout.design.target]
        scores.append(sw - nw[:, None] * mu[None, :])
    return np.hstack(scores), int(np.sum(gb[:, 0, 0] > 0))
