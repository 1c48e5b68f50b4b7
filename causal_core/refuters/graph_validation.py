"""Graph validation: test the conditional independences a causal graph implies.

Each implication ``x ⊥ y | S`` (from :func:`causal_core.graph.implications.implied_independences`)
is tested from summaries one pass of the moment engine produces, never from rows:

* continuous variables: a covariance matrix (or the Gram matrix of ``(1, v)``) and its row
  count; the partial correlation of x and y given S, with Fisher's z
  ``atanh(r) sqrt(n - |S| - 3)`` against N(0, 1) (Fisher 1924, *Metron* 3; the test of the
  PC algorithm, Kalisch & Bühlmann 2007, *JMLR* 8, section 2.2);
* discrete variables: counts per combination of values; the likelihood-ratio G² test of
  conditional independence, summed over the strata of S (Agresti 2013, *Categorical Data
  Analysis*, 3rd ed., section 3.2; the test of the PC algorithm for discrete data, Spirtes,
  Glymour & Scheines 2000, *Causation, Prediction, and Search*, 2nd ed., ch. 5).

The p-values are corrected together with statsmodels' ``multipletests`` (Holm by default),
and the implications the correction rejects at level ``alpha`` are the rejected ones:
each names a missing edge the data ask for.

The partial correlations come from residual cross-products (Schur complements of the
second-moment matrix); :mod:`causal_core.refuters.sensitivity` builds its partial R² on the
same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import stats
from statsmodels.stats.multitest import multipletests

from causal_core.errors import EstimationError, SpecError
from causal_core.graph.implications import Independence
from causal_core.json_values import json_native

# statsmodels' multipletests methods that return adjusted p-values.
METHODS = ("bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel", "fdr_bh", "fdr_by",
           "fdr_tsbh", "fdr_tsbky")
# A correlation-scale eigenvalue below this is an exact linear dependence; a centred sum of
# squares below CONSTANT_TOL of the raw one is a constant column (as in estimators.linear).
COLLINEAR_TOL = 1e-9
CONSTANT_TOL = 1e-10


def centred_cross_products(gram: np.ndarray) -> tuple[np.ndarray, float]:
    """``(C, n)`` from a Gram matrix ``G = sum v v'`` of ``v = (1, ...)`` (intercept first, as the
    moment engine sums it): ``C = sum (v - mean)(v - mean)'`` over the other columns and
    ``n = G[0, 0]``. Partialling out the intercept is centring (Frisch-Waugh-Lovell). A column
    whose centred sum of squares is rounding noise (below ``CONSTANT_TOL`` of its raw one) is
    constant: its row and column are set to exactly zero, so it is reported as constant."""
    g = np.asarray(gram, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] != g.shape[1] or g.shape[0] < 2 or not g[0, 0] > 0:
        raise EstimationError(f"need a square Gram matrix, intercept first, with G[0, 0] > 0 rows; got shape {g.shape}")
    c = g[1:, 1:] - np.outer(g[0, 1:], g[0, 1:]) / g[0, 0]
    constant = np.diag(c) <= CONSTANT_TOL * np.diag(g)[1:]
    c[constant, :], c[:, constant] = 0.0, 0.0
    return c, float(g[0, 0])


def residual_cross_products(cov: np.ndarray, names: Sequence[str], targets: Sequence[str],
                            given: Sequence[str] = ()) -> np.ndarray:
    """Cross-products of the residuals of ``targets`` regressed on ``given``: the Schur
    complement ``C_tt - C_tg C_gg^-1 C_gt`` of a covariance-like matrix ``cov`` (covariances or
    centred cross-products; Goldberger 1991, *A Course in Econometrics*, ch. 14), solved on
    the correlation scale. Collinear conditioning columns are named from the null space of
    their correlation matrix (Belsley, Kuh & Welsch 1980, *Regression Diagnostics*, ch. 3)."""
    c = np.asarray(cov, dtype=np.float64)
    lookup = {name: i for i, name in enumerate(names)}
    missing = [v for v in (*targets, *given) if v not in lookup]
    if missing or c.shape != (len(names), len(names)):
        raise EstimationError(f"variables {missing} not among the moment matrix's columns {list(names)}"
                              if missing else f"moment matrix of shape {c.shape} does not match {len(names)} names")
    t, g = [lookup[v] for v in targets], [lookup[v] for v in given]
    scale = np.sqrt(np.clip(np.diag(c), 0.0, None))
    constant = [names[i] for i in t + g if not scale[i] > 0]
    if constant:
        raise EstimationError(f"constant columns have no partial correlation: {constant}")
    if not g:
        return c[np.ix_(t, t)]
    r = c / np.outer(scale, scale)
    rgg = r[np.ix_(g, g)]
    try:  # a Cholesky pivot squared is 1 - R² of a column on the earlier ones
        chol = scipy.linalg.cho_factor(rgg, lower=True)
        singular = np.diag(chol[0]).min() ** 2 < COLLINEAR_TOL
    except scipy.linalg.LinAlgError:
        singular = True
    if singular:
        eigval, eigvec = np.linalg.eigh(rgg)
        null = eigval <= max(COLLINEAR_TOL * max(1.0, float(eigval[-1])), float(eigval.min()))
        involved = [given[j] for j in np.flatnonzero(np.abs(eigvec[:, null]).max(axis=1) > 1e-6)]
        raise EstimationError(f"collinear columns: {', '.join(involved)} are linearly dependent (with the "
                              "intercept); drop one of them")
    res = r[np.ix_(t, t)] - r[np.ix_(t, g)] @ scipy.linalg.cho_solve(chol, r[np.ix_(g, t)])
    determined = [targets[i] for i in range(len(t)) if res[i, i] <= COLLINEAR_TOL]
    if determined:
        raise EstimationError(f"{determined} are linear functions of {list(given)}: nothing is left to correlate")
    return res * np.outer(scale[t], scale[t])


def partial_correlation(cov: np.ndarray, names: Sequence[str], x: str, y: str, given: Sequence[str] = ()) -> float:
    """The partial correlation of x and y given ``given``: ``S_xy / sqrt(S_xx S_yy)`` of the
    residual cross-products, equal to ``-P_xy / sqrt(P_xx P_yy)`` with ``P`` the inverse of the
    sub-covariance of ``(x, y, given)`` (Lauritzen 1996, *Graphical Models*, section 5.1)."""
    s = residual_cross_products(cov, names, (x, y), given)
    return float(np.clip(s[0, 1] / math.sqrt(s[0, 0] * s[1, 1]), -1.0, 1.0))


@dataclass(frozen=True, eq=False)
class Covariance:
    """Second moments of continuous variables: a covariance (or centred cross-product)
    matrix over ``names`` and the row count ``n`` behind it."""

    matrix: np.ndarray
    names: tuple[str, ...]
    n: float

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "names", tuple(self.names))
        if m.shape != (len(self.names), len(self.names)) or len(set(self.names)) != len(self.names):
            raise EstimationError(f"a {m.shape} matrix needs {m.shape[0]} distinct names, got {self.names}")
        if not np.allclose(m, m.T, rtol=1e-10, atol=0.0) or not self.n > 0:
            raise EstimationError(f"the covariance of {self.names} must be symmetric with a positive row count")

    @classmethod
    def from_gram(cls, gram: np.ndarray, names: Sequence[str]) -> Covariance:
        """From the Gram matrix of ``(1, v...)``; ``names`` labels its columns, intercept first."""
        c, n = centred_cross_products(gram)
        return cls(c / n, tuple(names[1:]), n)


@dataclass(frozen=True)
class IndependenceTest:
    """One implication's test: ``test`` is ``fisher-z`` (``statistic`` the z, ``dof`` None) or
    ``g-test`` (``statistic`` the G², ``dof`` its chi-square degrees of freedom).
    ``p_adjusted`` and ``rejected`` are set by the family-wise correction."""

    implication: Independence
    test: str
    statistic: float
    dof: int | None
    p_value: float
    n: float
    partial_correlation: float | None = None
    p_adjusted: float | None = None
    rejected: bool | None = None

    def __post_init__(self) -> None:
        if self.test not in ("fisher-z", "g-test"):
            raise EstimationError(f"test {self.test!r} is unknown; expected 'fisher-z' or 'g-test'")
        if not 0 <= self.p_value <= 1 or not (self.p_adjusted is None or 0 <= self.p_adjusted <= 1):
            raise EstimationError(f"{self.implication}: p-values must lie in [0, 1]")

    def to_dict(self) -> dict:
        return json_native({**asdict(self), "implication": self.implication.to_dict()})


def fisher_z_test(covariance: Covariance, implication: Independence) -> IndependenceTest:
    """Fisher's z for ``x ⊥ y | S``: ``z = atanh(r) sqrt(n - |S| - 3)``, two-sided normal p."""
    r = partial_correlation(covariance.matrix, covariance.names, implication.x, implication.y, implication.given)
    scale = covariance.n - len(implication.given) - 3
    if not scale > 0:
        raise EstimationError(f"{implication}: {covariance.n:g} rows are too few for Fisher's z (need more than "
                              f"{len(implication.given) + 3})")
    z = math.atanh(r) * math.sqrt(scale) if abs(r) < 1 else math.copysign(math.inf, r)
    return IndependenceTest(implication, "fisher-z", z, None, float(2 * stats.norm.sf(abs(z))), covariance.n, r)


def g_test(counts: pd.DataFrame, implication: Independence, count_column: str = "n") -> IndependenceTest:
    """The G² test of ``x ⊥ y | S`` from counts (one row per combination of values, ``count_column``
    the count; other columns are summed over): ``G² = 2 sum_s sum_ij O_ij ln(O_ij / E_ij)``
    with ``E_ij = O_i+ O_+j / O_++`` in stratum s of S, against chi-square with
    ``sum_s (r_s - 1)(c_s - 1)`` dof.

    Zero margins: r_s and c_s count the x and y values with a positive count in stratum s,
    so an empty stratum or an empty value adds neither to G² nor to the dof (cells whose
    fitted value is zero are not free: Bishop, Fienberg & Holland 1975, *Discrete
    Multivariate Analysis*, ch. 3, on degrees of freedom). When no stratum has two values of
    both, dof is 0 and p is 1: the data cannot test the implication.
    """
    x, y, given = implication.x, implication.y, list(implication.given)
    missing = [v for v in (x, y, *given, count_column) if v not in counts.columns]
    if missing:
        raise EstimationError(f"{implication}: columns {missing} are not in the counts {list(counts.columns)}")
    if (counts[count_column] < 0).any() or counts[count_column].isna().any():
        raise EstimationError(f"{implication}: counts in {count_column!r} must be non-negative numbers")
    frame = counts.assign(_s=0)  # a constant stratum key when S is empty
    keys = given or ["_s"]
    cells = frame.groupby([*keys, x, y], observed=True, dropna=False)[count_column].sum()
    cells = cells[cells > 0].rename("o").reset_index()
    n_s = cells.groupby(keys)["o"].transform("sum")
    n_x = cells.groupby([*keys, x])["o"].transform("sum")
    n_y = cells.groupby([*keys, y])["o"].transform("sum")
    g2 = float(2.0 * (cells["o"] * np.log(cells["o"] * n_s / (n_x * n_y))).sum())
    levels = cells.groupby(keys).agg(r=(x, "nunique"), c=(y, "nunique"))
    dof = int(((levels["r"] - 1) * (levels["c"] - 1)).sum())
    p = float(stats.chi2.sf(g2, dof)) if dof > 0 else 1.0
    return IndependenceTest(implication, "g-test", max(g2, 0.0), dof, p, float(cells["o"].sum()))


@dataclass(frozen=True)
class GraphValidation:
    """The tests of a graph's implications, corrected together at level ``alpha``."""

    tests: tuple[IndependenceTest, ...]
    alpha: float = 0.05
    method: str = "holm"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tests", tuple(self.tests))
        _check_options(self.alpha, self.method)
        if any(t.p_adjusted is None or t.rejected is None for t in self.tests):
            raise EstimationError("every test of a GraphValidation needs p_adjusted and rejected; use adjust()")

    @property
    def rejected(self) -> tuple[Independence, ...]:
        """The implications the data contradict: each points at an edge the graph lacks."""
        return tuple(t.implication for t in self.tests if t.rejected)

    @property
    def passed(self) -> bool:
        return not self.rejected

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "method": self.method, "passed": self.passed,
                "rejected": [i.to_dict() for i in self.rejected], "tests": [t.to_dict() for t in self.tests]}

    def summary(self) -> pd.DataFrame:
        """One row per implication: test, statistic, dof, p, adjusted p, rejected."""
        return pd.DataFrame([{"implication": str(t.implication), "test": t.test, "statistic": t.statistic,
                              "dof": t.dof, "p_value": t.p_value, "p_adjusted": t.p_adjusted,
                              "rejected": t.rejected} for t in self.tests],
                            columns=["implication", "test", "statistic", "dof", "p_value", "p_adjusted", "rejected"])

    def __str__(self) -> str:
        head = (f"graph validation: {len(self.tests)} implications tested, {len(self.rejected)} rejected "
                f"({self.method}, alpha={self.alpha:g})")
        return "\n".join([head, *(f"  rejected: {i}" for i in self.rejected)])


def _check_options(alpha: float, method: str) -> None:
    if method not in METHODS:
        raise SpecError(f"multiple-testing method {method!r} is unknown; expected one of {', '.join(METHODS)}",
                        (("method", f"one of {', '.join(METHODS)}"),))
    if not 0 < alpha < 1:
        raise SpecError(f"alpha must lie in (0, 1), got {alpha}", (("alpha", "a level in (0, 1)"),))


def adjust(tests: Sequence[IndependenceTest], alpha: float = 0.05, method: str = "holm") -> GraphValidation:
    """Correct the p-values together with ``statsmodels.stats.multitest.multipletests``."""
    _check_options(alpha, method)
    if not tests:
        return GraphValidation((), alpha, method)
    reject, p_adj, _, _ = multipletests([t.p_value for t in tests], alpha=alpha, method=method)
    return GraphValidation(tuple(replace(t, p_adjusted=float(min(p, 1.0)), rejected=bool(r))
                                 for t, r, p in zip(tests, reject, p_adj)), alpha, method)


def validate_graph(implications: Sequence[Independence], *, covariance: Covariance | None = None,
                   counts: pd.DataFrame | None = None, count_column: str = "n", alpha: float = 0.05,
                   method: str = "holm") -> GraphValidation:
    """Test every implication and correct them together. An implication whose variables are
    all columns of ``counts`` gets the G² test; otherwise all must be in ``covariance``, for
    Fisher's z."""
    _check_options(alpha, method)
    tests = []
    for imp in implications:
        wanted = (imp.x, imp.y, *imp.given)
        if counts is not None and all(v in counts.columns for v in wanted):
            tests.append(g_test(counts, imp, count_column))
        elif covariance is not None and all(v in covariance.names for v in wanted):
            tests.append(fisher_z_test(covariance, imp))
        else:
            known = set(covariance.names if covariance is not None else ()) | set(
                counts.columns if counts is not None else ())
            raise EstimationError(f"{imp}: no moments for {[v for v in wanted if v not in known] or list(wanted)}; "
                                  "give a covariance with all its variables or counts with all of them")
    return adjust(tests, alpha, method)
