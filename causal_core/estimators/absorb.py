"""Absorbed fixed effects: the within transformation from one grouped pass of moments.

A fixed effect is a many-level category g (a village, a store) whose levels enter a linear
model as intercepts ``alpha_g``. Least squares with G level dummies has the coefficients and
residuals of least squares on the within-transformed columns ``a - abar_g``, each column less
its group mean (Frisch-Waugh-Lovell; Wooldridge 2010, *Econometric Analysis of Cross Section
and Panel Data*, §10.5; Greene 2012, §11.4), so a category with thousands of levels never
becomes thousands of columns.

The within Gram comes from one pass: per bucket k and level g, the sums ``n_kg`` and
``S_kg(a)`` of the model's terms a (:func:`within_pass`, through the engine's
``grouped_sums``), with the per-bucket Gram ``S_k(ab)`` the estimator already has. With group
means ``abar_g`` from the totals,

    ``W_k(ab) = sum_{i in k} (a_i - abar_g(i)) (b_i - bbar_g(i))
              = S_k(ab) - sum_g [abar_g S_kg(b) + bbar_g S_kg(a) - n_kg abar_g bbar_g]``

is exact, and the W_k sum to the within Gram. The subtraction loses about
``log10(total / within variance)`` digits of the 16, as any one-pass centring does (the
estimators recentre columns at their global means first).

The bucket bootstrap reweights the W_k with the group means held at the full-sample
means. That is exact when every group lies in one bucket (a group nested in the unit id that
buckets are hashed from); a group spanning buckets keeps its full-sample mean in every
replicate, which leaves out the means' own sampling noise — of order 1/n_g per group, small
unless groups are small.

Degrees of freedom: the G - 1 absorbed intercepts beyond the constant count as regressors
(nonrobust and HC1: ``n - k - (G - 1)``, as the regression with dummies). For
cluster-robust variances, Stata's convention for absorbed effects nested in clusters
(``xtreg, fe``; ``reghdfe``; Cameron & Miller 2015, §IV.B): a fixed effect whose every
level lies in one cluster is not counted, for its dummies are spanned by the clusters'
(:attr:`Within.nested`, read from the buckets: a level whose rows fall in more than one
bucket spans more than one unit; the converse is taken as nesting). Groups with one row
(singletons) are kept, as the regression with dummies keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import ModelRoles
from causal_core.estimators.linear import CONSTANT_TOL, check_regressors
from causal_core.estimators.moment_batch import gram_exprs
from causal_core.moments.expr import Expr, Lit, Lookup, col

# The (K, G, m) grouped array reaches the driver dense: refuse more doubles than this.
MAX_GROUPED_CELLS = 40_000_000


@dataclass(frozen=True)
class Within:
    """Per-bucket within Gram matrices of terms ``(1, v_1..v_m)``, from :func:`within_pass`.

    ``grams`` (K, m+1, m+1): the intercept's row and column are ``(n_k, 0, ..., 0)`` (the
    within columns sum to zero), the rest the within cross products. ``means`` (G, m+1): each
    level's mean of the terms (0 for a level without rows); ``counts`` (G,) its rows;
    ``buckets`` (G,) the buckets it has rows in."""

    column: str
    label: str
    grams: np.ndarray
    means: np.ndarray
    counts: np.ndarray
    buckets: np.ndarray

    @property
    def groups(self) -> int:
        """The levels with rows: the intercepts the fit absorbs."""
        return int(np.sum(self.counts > 0))

    @property
    def absorbed(self) -> int:
        """Absorbed intercepts beyond the constant, G - 1: the regressors they count as."""
        return self.groups - 1

    @property
    def nested(self) -> bool:
        """Every level's rows lie in one bucket (see the module docstring)."""
        return bool(np.all(self.buckets[self.counts > 0] <= 1))

    def total(self) -> np.ndarray:
        return self.grams.sum(axis=0)

    def flat(self, index: Sequence[int]) -> np.ndarray:
        """(K, r(r+1)/2) per-bucket moments of the within Gram over ``index``, in the order
        :func:`unpack_symmetric` reads."""
        rows, cols = np.triu_indices(len(index))
        sub = self.grams[:, index][:, :, index]
        return sub[:, rows, cols]

    def demeaned(self, term: Expr, j: int) -> Expr:
        """Row expression of term j less its group mean (the within column)."""
        return term - self.lookup(self.means[:, j])

    def lookup(self, values: np.ndarray) -> Expr:
        """The per-level constant ``values[g]`` of each row's level."""
        return Lookup(col(self.column), tuple(float(v) for v in values))

    def within_terms(self, terms: Sequence[Expr]) -> list[Expr]:
        """The within columns of ``terms`` (the constant stays 1; its within column is 0, and
        a 1 keeps an intercept's row of the Gram at ``(n, 0, ..., 0)``)."""
        return [Lit(1.0), *(self.demeaned(t, j) for j, t in enumerate(terms[1:], 1))]

    def within_gram_exprs(self, terms: Sequence[Expr], index: Sequence[int]) -> list[Expr]:
        """The moment expressions whose per-bucket sums are :meth:`flat` of ``index`` (the
        exact row-level bootstrap sums them, with the group means fixed)."""
        within = self.within_terms(terms)
        return gram_exprs([within[i] for i in index])


def fixed_effect(design: ModelRoles, prefix: str) -> tuple[str, int]:
    """The one fixed effect a design absorbs: ``(column, levels)``."""
    if len(design.fixed_effects) != 1:
        names = [design.label(c) for c, _ in design.fixed_effects]
        raise EstimationError(f"{prefix}absorbs one fixed-effect variable, got {names}; encode the others as "
                              "covariates (encode: categorical)")
    return design.fixed_effects[0]


def within_pass(engine, terms: Sequence[Expr], design: ModelRoles, bucket_grams: np.ndarray,
                prefix: str = "") -> Within:
    """Per-bucket within Grams of ``terms`` (``terms[0]`` the constant 1) from one grouped
    pass by the design's fixed effect and the (K, m+1, m+1) per-bucket Grams of the same
    terms; see the module docstring for the formula."""
    column, levels = fixed_effect(design, prefix)
    m1, k = len(terms), engine.n_buckets
    if k * levels * m1 > MAX_GROUPED_CELLS:
        raise EstimationError(f"{prefix}fixed effect {design.label(column)!r}: {levels} levels x {k} buckets x {m1} "
                              f"sums exceed {MAX_GROUPED_CELLS:,} cells; lower data.buckets")
    per = np.asarray(engine.grouped_sums(list(terms), col(column), levels), dtype=float)  # (K, G, m1)
    totals = per.sum(axis=0)
    counts = totals[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts[:, None] > 0, totals / counts[:, None], 0.0)
    cross = np.einsum("kga,gb->kab", per, means)
    grams = bucket_grams - cross - np.swapaxes(cross, 1, 2) + np.einsum("kg,ga,gb->kab", per[:, :, 0], means, means)
    grams[:, 0, :] = 0.0
    grams[:, :, 0] = 0.0
    grams[:, 0, 0] = bucket_grams[:, 0, 0]
    return Within(column, design.label(column), grams, means, counts, np.sum(per[:, :, 0] > 0, axis=0))


def check_within(within_gram: np.ndarray, raw_gram: np.ndarray, names: Sequence[str], label: str, prefix: str,
                 role: dict[str, str] | None = None) -> None:
    """Regressors that do not vary within the fixed effect's levels (collinear with the
    absorbed intercepts: a level-wide covariate, a treatment assigned by level), then
    collinear within columns, named in the user's terms. ``within_gram`` and ``raw_gram`` are
    the Grams of the same columns (intercept first) after and before the transformation,
    ``names`` their labels and ``label`` the fixed effect's."""
    w, n, role = within_gram, within_gram[0, 0], role or {}
    total_var = np.diag(raw_gram)[1:] - raw_gram[0, 1:] ** 2 / n
    flat = [j for j in range(1, len(names)) if w[j, j] <= CONSTANT_TOL * max(total_var[j - 1], 1e-300)
            or not np.isfinite(w[j, j])]
    if flat:
        what = ", ".join(f"{role[names[j]]} {names[j]!r}" if names[j] in role else repr(names[j]) for j in flat)
        raise EstimationError(f"{prefix}{what} do not vary within the levels of fixed effect {label!r}: the "
                              "absorbed level intercepts explain them (collinear); drop them or the fixed effect")
    try:
        check_regressors(w, names, role=role)
    except EstimationError as exc:
        raise EstimationError(f"{prefix}within the levels of fixed effect {label!r}, {exc}") from None


def absorbed_k(within: Within, k: int, *, clustered: bool) -> int:
    """Regressors a small-sample factor counts: ``k`` (with the constant) plus the absorbed
    intercepts beyond it, which a cluster-robust variance leaves out when the fixed effect
    is nested in the clusters (module docstring)."""
    return k if clustered and within.nested else k + within.absorbed


def treatment_groups(within: Within, binary: bool) -> dict:
    """The fixed effect's diagnostics: its levels with rows, and for a 0/1 treatment the
    levels with rows of one arm only (they inform no within contrast) and their rows."""
    out = {"variable": within.label, "levels": within.groups, "absorbed": within.absorbed,
           "nested_in_buckets": within.nested}
    if binary:
        share = within.means[:, 1]
        one_arm = (within.counts > 0) & ((share <= 0.0) | (share >= 1.0))
        out.update(levels_with_one_arm=int(one_arm.sum()), rows_in_them=int(round(within.counts[one_arm].sum())))
    return out

