"""Linear algebra on moment arrays: the shared kit of the regression-type estimators.

Every linear estimator here (OLS, 2SLS, the linear front-door, AIPW's outcome models)
starts from one Gram matrix ``G = sum_i v_i v_i'`` of a list of row terms
``v = (1, d, x_1, ..., y)``: X'X, X'y, Z'Z, Z'X are sub-blocks of G, so one pass of
per-bucket sums gives every point estimate, and the bucket bootstrap re-solves the
systems for all replicates at once (Goldberger 1991, *A Course in Econometrics*, ch. 14:
least squares from second moments). Variances are sandwiches whose "meat" is a second
pass over the rows with the fitted coefficients as literals.

The Gram's moment expressions and their unpacking are
:func:`~causal_core.estimators.moment_batch.gram_exprs` and
:func:`~causal_core.estimators.moment_batch.unpack_symmetric`.

API
---
``batched_solve(a, b)``
    ``a x = b`` over leading replicate axes; replicates whose system is singular come back
    as NaN instead of failing the whole batch.
``check_regressors(gram, names)``
    raises :class:`EstimationError` naming constant, non-finite or collinear columns.
``support_gaps(arm_grams, labels)``, ``positivity_message(gaps, treatment)``
    levels of indicator covariates (one-hot columns) with rows in one treatment arm only,
    found from the per-arm Gram matrices, and the error that names them.
``check_arm_regressors(arm_grams, labels, prefix)``
    separate regressions per arm: covariates constant in one arm only, or collinear
    within an arm, named in the user's terms.
``column_gram(engine, columns)``
    pass 1 for models of plain columns: per-bucket Gram sums of ``(1, *columns)``,
    re-run on recentred columns when ``recentring_shift`` asks; returns a ``GramPass``.
``recentring_shift(gram, names)``
    column means to subtract before a second Gram pass when raw moments would lose
    digits to cancellation (a column whose mean dwarfs its spread, like a year).
``score_meat(engine, scores, clustered=...)``
    ``sum_i s_i s_i'`` (rows) or ``sum_g s_g s_g'`` (clusters, ``s_g`` = per-unit sums).
``score_squares(engine, scores, clustered=...)``
    its diagonal only (one sum per score).
``hc1_factor(n, k)``, ``cluster_factor(n, k, g)``
    the small-sample corrections of Stata and statsmodels.
``sandwich(bread_inv, meat)``
    ``A^-1 B A^-T``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.moment_batch import gram_exprs, unpack_symmetric
from causal_core.moments.expr import Expr, Lit, col

# A column whose variance is below this fraction of its raw second moment is constant up
# to rounding: centring from sums loses about log10(mean^2 / var) of the 16 digits.
CONSTANT_TOL = 1e-10
# A correlation-matrix eigenvalue below this is an exact linear dependence.
COLLINEAR_TOL = 1e-9
# Recentre when some column's mean^2 / variance exceeds this: centring raw sums would
# lose log10(ratio) digits, which the regression's conditioning then multiplies.
RECENTRE_RATIO = 1e3


def batched_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``a x = b`` for every leading index; ``b`` is ``(..., p)`` or ``(..., p, r)``.

    ``np.linalg.solve`` fails the whole batch when one replicate is singular (a bootstrap
    draw that leaves a category empty); those replicates become NaN here instead.
    """
    vector = b.ndim == a.ndim - 1
    rhs = b[..., None] if vector else b
    try:
        x = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        batch = a.shape[:-2]
        flat_a = a.reshape((-1,) + a.shape[-2:])
        flat_b = np.broadcast_to(rhs, batch + rhs.shape[-2:]).reshape((-1,) + rhs.shape[-2:])
        x = np.full(flat_b.shape, np.nan)
        for i in range(len(flat_a)):
            try:
                x[i] = np.linalg.solve(flat_a[i], flat_b[i])
            except np.linalg.LinAlgError:
                pass
        x = x.reshape(batch + rhs.shape[-2:])
    return x[..., 0] if vector else x


def check_regressors(gram: np.ndarray, names: Sequence[str], *, role: dict[str, str] | None = None) -> None:
    """Fail with the names of constant, non-finite or collinear regressors.

    ``gram`` is X'X with the intercept first (``names[0]``). Columns are centred and
    scaled to a correlation matrix from the moments; a (near-)zero eigenvalue is an exact
    linear dependence and the columns loading on its eigenvector are named (Belsley, Kuh
    & Welsch 1980, *Regression Diagnostics*, ch. 3). ``role`` maps a name to a word used
    in the message ("treatment", "instrument"...).
    """
    role = role or {}
    label = [f"{role[n]} {n!r}" if n in role else repr(n) for n in names]
    n = gram[0, 0]
    diag = np.diag(gram)
    bad = [label[j] for j in range(len(names)) if not np.isfinite(diag[j])]
    if bad:
        raise EstimationError(f"columns contain NaN or infinite values: {', '.join(bad)}")
    if not n > 0:
        raise EstimationError("no rows to estimate from")
    mean = gram[0, 1:] / n
    second = diag[1:] / n
    cov = gram[1:, 1:] / n - np.outer(mean, mean)
    var = np.diag(cov).copy()
    const = [j for j in range(len(var)) if var[j] <= CONSTANT_TOL * max(second[j], 1e-300)]
    if const:
        what = ", ".join(f"{label[j + 1]} (= {mean[j]:.6g})" for j in const)
        raise EstimationError(f"constant columns cannot be estimated: {what}; drop them or check the data")
    scale = 1.0 / np.sqrt(var)
    corr = cov * np.outer(scale, scale)
    eigval, eigvec = np.linalg.eigh(corr)
    null = eigval < COLLINEAR_TOL * max(1.0, float(eigval[-1]))
    if null.any():
        loads = np.abs(eigvec[:, null]).max(axis=1)
        involved = [label[j + 1] for j in np.flatnonzero(loads > 1e-6)]
        raise EstimationError(
            f"collinear columns: {', '.join(involved)} are linearly dependent (with the intercept); "
            "drop one of them or change the encoding")


# A 0/1 column has sum x = sum x^2 in every arm; this relative tolerance absorbs rounding.
INDICATOR_TOL = 1e-9
# How ``encode: categorical`` labels a level's one-hot column: ``variable=level``.
LEVEL_LABEL = re.compile(r"^([^=<>!\s]+)=([^=].*)$")  # not SQL terms such as "a >= 1", "a == b"
ARM_WORDS = {0: "untreated", 1: "treated"}


@dataclass(frozen=True)
class SupportGap:
    """A covariate level with rows in one treatment arm only: ``where`` says which rows in
    the user's words ("cat = d"), ``empty`` is the arm without rows there (0 untreated, 1
    treated) and ``rows`` counts the other arm's rows there."""

    where: str
    empty: int
    rows: int


def _level_counts(arm_grams: np.ndarray, labels: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """``(where, (2,) rows per arm)`` for every level of the indicator covariates."""
    n = arm_grams[:, 0, 0]
    s = arm_grams[:, 0, 1:]
    sq = np.diagonal(arm_grams, axis1=1, axis2=2)[:, 1:]
    with np.errstate(invalid="ignore"):
        indicator = np.all(np.isfinite(s) & (np.abs(s - sq) <= INDICATOR_TOL * np.maximum(1.0, np.abs(sq)))
                           & (s >= -0.5) & (s <= n[:, None] + 0.5), axis=0)
    groups: dict[str, list[tuple[int, str]]] = {}
    out = []
    for j, label in enumerate(labels):
        if not indicator[j]:
            continue
        level = LEVEL_LABEL.match(label)
        if level is None:  # a 0/1 covariate of its own: levels 1 and 0
            out += [(f"{label} = 1", s[:, j]), (f"{label} = 0", n - s[:, j])]
        else:
            groups.setdefault(level.group(1), []).append((j, level.group(2)))
    for variable, members in groups.items():
        out += [(f"{variable} = {level}", s[:, j]) for j, level in members]
        idx = [1 + j for j, _ in members]
        exclusive = all(arm_grams[a, i, k] == 0.0 for a in (0, 1) for i in idx for k in idx if i < k)
        if exclusive:  # one-hot columns of one categorical: the rest is its reference level
            levels = ", ".join(level for _, level in members)
            where = f"{variable} is not {levels}" if len(members) == 1 else f"{variable} is none of {levels}"
            out.append((where, n - s[:, [j for j, _ in members]].sum(axis=1)))
    return out


def support_gaps(arm_grams: np.ndarray, labels: Sequence[str]) -> list[SupportGap]:
    """Levels of indicator covariates that occur in one treatment arm and not the other.

    ``arm_grams`` (2, q, q) are the Gram matrices of ``(1, x_1..x_p)`` over the control
    (index 0) and treated (index 1) rows, ``labels`` the users' names of the x. A column
    is an indicator when each arm has ``sum x = sum x^2`` (x in {0, 1}); the one-hot
    columns of a categorical (labels ``variable=level``) that never overlap (zero cross
    products) also stand for its reference level, whose rows are those left over. A level
    with rows in one arm only breaks positivity, ``0 < P(d = 1 | x) < 1`` (Rosenbaum &
    Rubin 1983): no row of the other arm is there to compare with, and a model's answer
    there is extrapolation (Petersen et al. 2012, "Diagnosing and responding to violations
    in the positivity assumption", sec. 2). Continuous covariates are not judged here.
    """
    gaps = []
    for where, rows in _level_counts(np.asarray(arm_grams, dtype=float), labels):
        for empty in (0, 1):
            if rows[empty] < 0.5 <= rows[1 - empty]:
                gaps.append(SupportGap(where, empty, int(round(rows[1 - empty]))))
    return gaps


def positivity_message(gaps: Sequence[SupportGap], treatment: str) -> str:
    """The error for :func:`support_gaps`: each level, the arm it lacks, and the remedies.

    Restricting the population to the other rows keeps every row of the arm that lacks
    the level, so it leaves the effect on that arm (ATC or ATT) unchanged.
    """
    parts = []
    for g in gaps:
        has = ARM_WORDS[1 - g.empty]
        count = f"the one row where {g.where} is {has}" if g.rows == 1 else \
            f"all {g.rows} rows where {g.where} are {has}"
        parts.append(f"no {ARM_WORDS[g.empty]} rows where {g.where} ({count})")
    what = "that level" if len(gaps) == 1 else "those levels"
    empties = {g.empty for g in gaps}
    keeps = ""
    if len(empties) == 1:
        keeps = {0: " (which leaves the ATC, the effect on the untreated, unchanged)",
                 1: " (which leaves the ATT, the effect on the treated, unchanged)"}[empties.pop()]
    return (f"positivity fails for treatment {treatment!r}: {'; '.join(parts)}; drop or merge {what}, "
            f"or restrict the population to the other rows{keeps}")


def check_arm_regressors(arm_grams: np.ndarray, labels: Sequence[str], prefix: str,
                         shift: Sequence[float] | None = None) -> None:
    """Fail, naming the user's covariates, when a regression per treatment arm cannot be fitted.

    ``arm_grams`` (2, q, q) are the Gram matrices of ``(1, x)`` over the control (0) and
    treated (1) rows. The regression with the treatment interacted with every covariate
    is the two arms' separate regressions (its X'X is block diagonal in the basis
    ``(1 - d, d, (1 - d) x, d x)``), so it is singular exactly when an arm's ``(1, x)``
    is: a covariate constant in one arm while it varies in the other (the arm's slope is
    not estimable, and the effect at other values would be extrapolation — a positivity
    failure), or covariates collinear within an arm. Call it after the pooled check
    (a covariate constant in both arms is constant, or collinear with the treatment).
    ``shift`` holds constants already subtracted from the x (added back in messages).
    """
    n = arm_grams[:, 0, 0]
    mean = arm_grams[:, 0, 1:] / n[:, None]
    second = np.diagonal(arm_grams, axis1=1, axis2=2)[:, 1:] / n[:, None]
    with np.errstate(invalid="ignore"):
        const = second - mean * mean <= CONSTANT_TOL * np.maximum(second, 1e-300)
    for a in (1, 0):
        only = [j for j in range(len(labels)) if const[a, j] and not const[1 - a, j]]
        if only:
            back = np.zeros(len(labels)) if shift is None else np.asarray(shift, dtype=float)
            what = ", ".join(f"{labels[j]!r} (= {mean[a, j] + back[j]:.6g})" for j in only)
            raise EstimationError(
                f"{prefix}positivity fails: constant among the {ARM_WORDS[a]} rows but varying among the "
                f"{ARM_WORDS[1 - a]} rows: {what}; the {ARM_WORDS[a]} rows' regression cannot estimate the "
                "slope, so the effect at other values would be extrapolated — drop the covariate, fit one slope "
                "for both arms (interactions: false), or restrict the population")
    for a in (1, 0):
        try:
            check_regressors(arm_grams[a], ["const", *labels])
        except EstimationError as err:
            raise EstimationError(f"{prefix}among the {ARM_WORDS[a]} rows, {err}") from None


def recentring_shift(gram: np.ndarray, names: dict[int, str], *,
                     ratio: float = RECENTRE_RATIO) -> dict[str, float]:
    """Means to subtract from the named columns (Gram index -> column name) if any of them
    has ``mean^2 > ratio * variance``; else an empty dict.

    Least squares with an intercept is invariant to shifting regressors and outcome, and
    the Gram of shifted columns has no catastrophic cancellation, so an extra pass over
    ``x - mean`` buys back the digits (Chan, Golub & LeVeque 1983, "Algorithms for
    computing the sample variance"; the two-pass algorithm). On the NIST Longley data
    this takes the coefficients from 7 to 12 correct digits.
    """
    n = gram[0, 0]
    if not n > 0:
        return {}
    worst = 0.0
    means = {}
    for j, name in names.items():
        mean = gram[0, j] / n
        var = gram[j, j] / n - mean * mean
        if var <= CONSTANT_TOL * gram[j, j] / n:
            continue  # constant: an error later, named with its value; never shifted
        means[name] = float(mean)
        if np.isfinite(mean) and mean != 0.0:
            worst = max(worst, mean * mean / var)
    return means if worst > ratio else {}


@dataclass(frozen=True)
class GramPass:
    """Pass-1 result: row terms ``(1, *columns)`` (shifted if recentred), their Gram
    expressions, the (K, m) per-bucket moments and the shift applied."""

    terms: tuple[Expr, ...]
    exprs: tuple[Expr, ...]
    moments: np.ndarray
    shift: tuple[tuple[str, float], ...]

    def gram(self) -> np.ndarray:
        return unpack_symmetric(self.moments.sum(axis=0), len(self.terms))


def column_gram(engine, columns: Sequence[str]) -> GramPass:
    """Per-bucket Gram sums of ``(1, *columns)``; a second pass on ``column - mean`` when
    the first would lose digits (see :func:`recentring_shift`)."""
    def run(shift: dict[str, float]) -> GramPass:
        terms = (Lit(1.0), *(col(c) - Lit(shift[c]) if c in shift else col(c) for c in columns))
        exprs = tuple(gram_exprs(terms))
        return GramPass(terms, exprs, engine.bucket_sums(list(exprs)), tuple(shift.items()))

    first = run({})
    shift = recentring_shift(first.gram(), {j + 1: c for j, c in enumerate(columns)})
    return run(shift) if shift else first


ARM_LEVELS = 3  # control, treated, anything else


def arm_key(d: Expr) -> Expr:
    """0 for control rows, 1 for treated rows, 2 for any other treatment value (or NaN)."""
    is0, is1 = d.eq(0.0), d.eq(1.0)
    return is1 + Lit(2.0) * (Lit(1.0) - is0 - is1)


def arm_gram_sums(engine, terms: Sequence[Expr], treatment: str) -> np.ndarray:
    """``(K, 3, m(m+1)/2)`` Gram sums of ``terms`` per bucket and treatment arm (control,
    treated, other). OLS and the propensity fits open with this pass over the same terms
    ``(1, d, x, y)``, so estimators sharing an engine compute it once."""
    return engine.grouped_sums(gram_exprs(terms), arm_key(col(treatment)), ARM_LEVELS)


def sandwich(bread_inv: np.ndarray, meat: np.ndarray) -> np.ndarray:
    """``A^-1 B A^-T`` (Huber 1967; White 1980)."""
    return bread_inv @ meat @ np.swapaxes(bread_inv, -1, -2)


def hc1_factor(n: float, k: int) -> float:
    """HC1's ``n / (n - k)`` (MacKinnon & White 1985; Stata's ``robust``)."""
    if n <= k:
        raise EstimationError(f"{int(n)} rows cannot fit {k} coefficients")
    return n / (n - k)


def cluster_factor(n: float, k: int, g: int) -> float:
    """``G/(G-1) * (n-1)/(n-k)``, Stata's and statsmodels' cluster-robust correction
    (Cameron & Miller 2015, "A practitioner's guide to cluster-robust inference", eq. 12)."""
    if g < 2:
        raise EstimationError(f"cluster-robust standard errors need at least 2 clusters, got {g}")
    if n <= k:
        raise EstimationError(f"{int(n)} rows cannot fit {k} coefficients")
    return g / (g - 1.0) * (n - 1.0) / (n - k)


def score_meat(engine, scores: Sequence[Expr], *, clustered: bool) -> np.ndarray:
    """``(r, r)`` meat ``sum s s'`` of row scores, summed per unit when ``clustered``
    (Liang & Zeger 1986; Arellano 1987). Row-wise it is one ``totals`` pass over the
    products; clustered it is the engine's ``cluster_cross_sums``."""
    r = len(scores)
    flat = engine.cluster_cross_sums(scores).sum(axis=0) if clustered else engine.totals(gram_exprs(scores)).sums
    return unpack_symmetric(flat, r)


def score_squares(engine, scores: Sequence[Expr], *, clustered: bool) -> np.ndarray:
    """``(r,)`` sums of squares ``sum_i s_i^2`` of each row score (of the per-unit sums
    when ``clustered``): the diagonal of :func:`score_meat`, with r sums instead of
    r(r+1)/2 when rows are the units."""
    if clustered:
        return np.diag(score_meat(engine, scores, clustered=True)).copy()
    return engine.totals([s * s for s in scores]).sums


def n_clusters(engine) -> int:
    """The number of distinct units (clusters) in the engine's frame."""
    return int(round(float(np.sum(engine.unit_counts()))))


def small_sample_factor(engine, n: float, k: int, *, clustered: bool) -> float:
    """HC1's factor, or the cluster factor with the engine's count of units."""
    return cluster_factor(n, k, n_clusters(engine)) if clustered else hc1_factor(n, k)
