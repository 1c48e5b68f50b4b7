"""Exact evaluation of a probability expression on a discrete joint distribution.

The joint becomes a dense float64 tensor with one axis per variable the expression
names, over the levels seen in the data. Every sub-expression evaluates to an array with
the same number of axes, of full length for its free variables and length 1 for the
others, so products and quotients are numpy broadcasting and a sum is a reduction of
one axis (which also gives lexical scoping of summation variables for free).
Conditionals are P(A | B) = P(A, B) / P(B), and any quotient with a zero denominator is
0, the usual convention where positivity fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from causal_core.errors import IdentificationError
from causal_core.formulas.formula import Formula, Fraction, Prob, Product, Sum

PROBABILITY_COLUMN = "p"
SUM_TOLERANCE = 1e-9


def evaluate(expr: Formula, joint: pd.DataFrame) -> pd.DataFrame:
    """Evaluate ``expr`` on ``joint``.

    ``joint`` has one column per observed variable (discrete values of any hashable type)
    and a probability column ``p``; absent rows have probability 0, duplicate rows are
    added, columns the expression does not name are summed out, and the total (within
    1e-9 of 1) is rescaled to exactly 1. Returns a DataFrame with one column per free variable of ``expr`` (sorted by
    name) and ``p``, one row for every combination of the levels seen in ``joint``.
    """
    names = tuple(sorted(expr.mentioned_variables()))
    tensor, levels = joint_tensor(joint, names)
    values = _Evaluator(tensor, names, levels).eval(expr)
    free = sorted(expr.free_variables())
    keep = tuple(names.index(v) for v in free)
    drop = tuple(i for i in range(len(names)) if i not in keep)
    values = values.reshape([values.shape[i] for i in keep]) if drop else values
    if not free:
        return pd.DataFrame({PROBABILITY_COLUMN: [float(values.reshape(()))]})
    index = pd.MultiIndex.from_product([levels[v] for v in free], names=free)
    out = index.to_frame(index=False)
    out[PROBABILITY_COLUMN] = values.reshape(-1)
    return out


def joint_tensor(joint: pd.DataFrame, names: tuple[str, ...]) -> tuple[np.ndarray, dict[str, pd.Index]]:
    """The normalised dense tensor of ``joint`` over ``names`` and the levels of each axis."""
    if not isinstance(joint, pd.DataFrame):
        raise IdentificationError(f"joint: expected a pandas DataFrame, got {type(joint).__name__}")
    if PROBABILITY_COLUMN not in joint.columns:
        raise IdentificationError(
            f"joint: no probability column {PROBABILITY_COLUMN!r}; columns are {list(map(str, joint.columns))}"
        )
    missing = [n for n in names if n not in joint.columns]
    if missing:
        raise IdentificationError(
            f"joint: the expression needs column(s) {missing} that the joint distribution lacks "
            f"(columns: {[c for c in joint.columns if c != PROBABILITY_COLUMN]})"
        )
    if len(joint) == 0:
        raise IdentificationError("joint: the distribution has no rows")
    try:
        p = joint[PROBABILITY_COLUMN].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise IdentificationError(f"joint: column {PROBABILITY_COLUMN!r} must be numeric") from None
    if not np.all(np.isfinite(p)):
        raise IdentificationError(f"joint: column {PROBABILITY_COLUMN!r} has missing or infinite values")
    if np.any(p < 0):
        raise IdentificationError(f"joint: column {PROBABILITY_COLUMN!r} has negative probabilities (min {p.min()!r})")
    total = float(p.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise IdentificationError(
            f"joint: probabilities in {PROBABILITY_COLUMN!r} sum to {total!r}, expected 1 within {SUM_TOLERANCE}"
        )
    levels: dict[str, pd.Index] = {}
    codes = []
    for n in names:
        column = joint[n]
        if column.isna().any():
            raise IdentificationError(f"joint: column {n!r} has missing values")
        try:
            c, uniques = pd.factorize(column, sort=True)
        except TypeError:  # mixed, unorderable types: keep first-seen order
            c, uniques = pd.factorize(column, sort=False)
        levels[n] = pd.Index(uniques)
        codes.append(c)
    shape = tuple(len(levels[n]) for n in names)
    if names:
        flat = np.ravel_multi_index(tuple(codes), shape)
        tensor = np.bincount(flat, weights=p, minlength=int(np.prod(shape))).reshape(shape)
    else:
        tensor = np.array(total)
    return tensor / total, levels


def evaluate_batch(expr: Formula, tensors: np.ndarray, names: tuple[str, ...],
                   levels: dict[str, pd.Index]) -> np.ndarray:
    """Evaluate ``expr`` on B joint distributions at once.

    ``tensors`` is ``(B, *shape)``: normalised joint tensors over ``names`` (sorted, as
    :func:`joint_tensor` orders them) with the given ``levels``. Returns ``(B, *free)``,
    the free variables' axes in sorted order — what :func:`evaluate` computes for each
    distribution, as one numpy computation (a bootstrap's replicates, or the perturbed
    distributions of a numerical gradient).
    """
    values = _Evaluator(tensors, names, levels, batch=True).eval(expr)
    free = sorted(expr.free_variables())
    keep = [names.index(v) for v in free]
    return values.reshape((values.shape[0], *[values.shape[1 + i] for i in keep]))


class _Evaluator:
    def __init__(self, tensor: np.ndarray, names: tuple[str, ...], levels: dict[str, pd.Index],
                 batch: bool = False) -> None:
        self.tensor = tensor
        # with a leading batch axis every variable's axis moves one to the right
        self.axis = {n: i + int(batch) for i, n in enumerate(names)}
        self.levels = levels
        self.ndim = len(names) + int(batch)
        self._marginals: dict[frozenset[str], np.ndarray] = {}

    def marginal(self, keep: frozenset[str]) -> np.ndarray:
        if keep not in self._marginals:
            axes = tuple(i for n, i in self.axis.items() if n not in keep)
            self._marginals[keep] = self.tensor.sum(axis=axes, keepdims=True) if axes else self.tensor
        return self._marginals[keep]

    def eval(self, expr: Formula) -> np.ndarray:
        if isinstance(expr, Prob):
            joint = self.marginal(frozenset(expr.variables) | frozenset(expr.given))
            if not expr.given:
                return joint
            return _divide(joint, self.marginal(frozenset(expr.given)))
        if isinstance(expr, Sum):
            values = self.eval(expr.body)
            for v in expr.over:
                ax = self.axis[v]
                if values.shape[ax] == 1:
                    # the body does not depend on v: summing repeats it once per level
                    values = values * len(self.levels[v])
                else:
                    values = values.sum(axis=ax, keepdims=True)
            return values
        if isinstance(expr, Product):
            values = np.ones((1,) * self.ndim)
            for f in expr.factors:
                values = values * self.eval(f)
            return values
        if isinstance(expr, Fraction):
            return _divide(self.eval(expr.numerator), self.eval(expr.denominator))
        raise IdentificationError(f"cannot evaluate an expression of type {type(expr).__name__}")


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(numerator.shape, denominator.shape)
    num = np.broadcast_to(numerator, shape)
    den = np.broadcast_to(denominator, shape)
    out = np.zeros(shape)
    np.divide(num, den, out=out, where=den != 0)
    return out
