"""Regression adjustment's moments: the Gram layout of ``(1, d, x, d:x, y)`` and the effect
as a function of its totals.

The interacted model's Gram is ``(p + 3)(p + 4) / 2`` products wide, but within a
treatment arm ``d`` is the constant 0 or 1, so every product with ``d`` is a per-arm
product without it: one grouped pass of the per-arm Grams of ``(1, d, x, y)``
(:func:`grouped_pass`) gives the whole Gram per bucket (:meth:`Layout.assemble`), and the
same per-arm Grams give the arms' covariate moments that the positivity checks and the
overlap score read (:func:`arm_grams`). The effect is the standardisation
``tau + gamma' mean_T(x)`` over the target population T (Imbens & Wooldridge 2009, §5.3),
a function of the Gram totals alone (:func:`effect_statistic`), so the bucket bootstrap
re-solves it for every replicate at once (:mod:`~causal_core.estimators.ols`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from causal_core.estimators.base import ModelRoles
from causal_core.estimators.linear import arm_gram_sums, batched_solve
from causal_core.estimators.moment_batch import gram_exprs, unpack_symmetric
from causal_core.moments.expr import Expr, Lit, col, linear


@dataclass(frozen=True)
class Layout:
    """Pass-1 variables ``(1, d, x_1..x_p, [d:x_1..d:x_p], y)`` and which enter the fit.

    ``shift`` subtracts constants from columns (never from a binary treatment): the
    slopes, the effect and the residuals are unchanged, the moments better conditioned.
    """

    design: ModelRoles
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
        g = unpack_symmetric(grouped, mb)  # (K, 3, mb, mb)
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


def grouped_pass(engine, layout: Layout) -> np.ndarray:
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


def arm_grams(layout: Layout, grouped: np.ndarray) -> np.ndarray:
    """(2, 1 + p, 1 + p) Gram matrices of ``(1, x)`` over the control and treated rows,
    from the grouped pass."""
    g = unpack_symmetric(grouped.sum(axis=0)[:2], len(layout.base))
    keep = [0, *range(2, 2 + layout.p)]
    return g[:, keep][:, :, keep]


def effect_statistic(layout: Layout) -> Callable[[np.ndarray], np.ndarray]:
    """The vectorised effect ``(B, m) totals -> (B,)``: solve X'X b = X'y per replicate,
    then standardise over the target means when the model is interacted."""
    reg, y, p, m = layout.regressors, layout.y, layout.p, len(layout.variables)
    target = layout.design.target

    def statistic(totals: np.ndarray) -> np.ndarray:
        g = unpack_symmetric(totals[:, :-1], m)
        beta = batched_solve(g[:, reg][:, :, reg], g[:, reg, y])
        effect = beta[:, 1]
        if layout.interactions:
            effect = effect + np.einsum("bj,bj->b", beta[:, 2 + p:], target_means(g, target, p))
        return effect

    return statistic
