"""Row expressions whose per-bucket sums are the engine's moments.

Every estimator is written as sums over rows (DESIGN.md, "The engine"). A moment is a
small expression tree over numeric columns — ``col("y") * col("x1")``, the logistic
score ``(col("d") - sigmoid(linear(beta, xs))) * col("x1")`` — that the pandas engine
evaluates with numpy and the Spark engine compiles to a Column, so both engines compute
the very same K x m array. Expressions are frozen values: they hash, compare and print.

Comparison uses methods (``a.lt(b)``) rather than operators, because ``==`` must stay
structural equality for a frozen value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_BINARY = ("+", "-", "*", "/")
_FUNCS = ("exp", "log", "sigmoid", "abs", "sqrt")
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")


class Expr:
    """Base class: arithmetic operators build :class:`BinOp` nodes."""

    def _cached_hash(self) -> int:
        """The structural hash, computed once per node (trees are immutable, and a hash
        recomputed from the fields would walk the whole subtree on every dict lookup)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((type(self).__name__, *(getattr(self, f) for f in self.__dataclass_fields__)))
            object.__setattr__(self, "_hash", h)
        return h

    def __add__(self, other: object) -> Expr:
        return BinOp("+", self, as_expr(other))

    def __radd__(self, other: object) -> Expr:
        return BinOp("+", as_expr(other), self)

    def __sub__(self, other: object) -> Expr:
        return BinOp("-", self, as_expr(other))

    def __rsub__(self, other: object) -> Expr:
        return BinOp("-", as_expr(other), self)

    def __mul__(self, other: object) -> Expr:
        return BinOp("*", self, as_expr(other))

    def __rmul__(self, other: object) -> Expr:
        return BinOp("*", as_expr(other), self)

    def __truediv__(self, other: object) -> Expr:
        return BinOp("/", self, as_expr(other))

    def __rtruediv__(self, other: object) -> Expr:
        return BinOp("/", as_expr(other), self)

    def __neg__(self) -> Expr:
        return BinOp("-", Lit(0.0), self)

    def lt(self, other: object) -> Expr:
        return Compare("<", self, as_expr(other))

    def le(self, other: object) -> Expr:
        return Compare("<=", self, as_expr(other))

    def gt(self, other: object) -> Expr:
        return Compare(">", self, as_expr(other))

    def ge(self, other: object) -> Expr:
        return Compare(">=", self, as_expr(other))

    def eq(self, other: object) -> Expr:
        return Compare("==", self, as_expr(other))

    def ne(self, other: object) -> Expr:
        return Compare("!=", self, as_expr(other))


@dataclass(frozen=True, eq=True)
class Col(Expr):
    """A numeric column of the prepared frame."""

    name: str


@dataclass(frozen=True, eq=True)
class Lit(Expr):
    """A constant (stored as float)."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", float(self.value))


@dataclass(frozen=True, eq=True)
class BinOp(Expr):
    op: str
    left: Expr
    right: Expr

    def __post_init__(self) -> None:
        if self.op not in _BINARY:
            raise ValueError(f"unknown operator {self.op!r}; expected one of {_BINARY}")

    __hash__ = Expr._cached_hash


@dataclass(frozen=True, eq=True)
class Func(Expr):
    """``exp``, ``log``, ``sigmoid`` (= 1 / (1 + exp(-x))), ``abs`` or ``sqrt`` of an expression."""

    fn: str
    arg: Expr

    def __post_init__(self) -> None:
        if self.fn not in _FUNCS:
            raise ValueError(f"unknown function {self.fn!r}; expected one of {_FUNCS}")

    __hash__ = Expr._cached_hash


@dataclass(frozen=True, eq=True)
class Compare(Expr):
    """An indicator: 1.0 where the comparison holds, else 0.0."""

    op: str
    left: Expr
    right: Expr

    def __post_init__(self) -> None:
        if self.op not in _COMPARE:
            raise ValueError(f"unknown comparison {self.op!r}; expected one of {_COMPARE}")

    __hash__ = Expr._cached_hash


@dataclass(frozen=True, eq=True)
class RowPoisson(Expr):
    """A Poisson(1) weight drawn per unit for one bootstrap replicate.

    The draw is a function of (unit, replicate, seed) only — never of row order or
    partitioning — so the exact row-level bootstrap is reproducible. Engines use their
    own hash, so pandas and Spark draws differ (same distribution).
    """

    replicate: int
    seed: int


def as_expr(value: object) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return Lit(float(value))
    raise TypeError(f"cannot use {value!r} in a moment expression")


def col(name: str) -> Col:
    return Col(name)


def lit(value: float) -> Lit:
    return Lit(value)


def exp(e: Expr) -> Expr:
    return Func("exp", as_expr(e))


def log(e: Expr) -> Expr:
    return Func("log", as_expr(e))


def absolute(e: Expr) -> Expr:
    return Func("abs", as_expr(e))


def sigmoid(e: Expr) -> Expr:
    return Func("sigmoid", as_expr(e))


def linear(coefs: Sequence[float], terms: Sequence[Expr]) -> Expr:
    """The linear predictor ``sum_j coefs[j] * terms[j]`` (a left-deep sum; a constant
    term ``Lit(1.0)`` contributes its coefficient alone)."""
    if len(coefs) != len(terms) or not terms:
        raise ValueError("linear() needs as many coefficients as terms, at least one")

    def term(b, t) -> Expr:
        return Lit(float(b)) if isinstance(t, Lit) and t.value == 1.0 else Lit(float(b)) * t

    out: Expr = term(coefs[0], terms[0])
    for b, t in zip(coefs[1:], terms[1:]):
        out = out + term(b, t)
    return out


def columns_of(expr: Expr) -> frozenset[str]:
    """The column names an expression reads."""
    if isinstance(expr, Col):
        return frozenset({expr.name})
    if isinstance(expr, (BinOp, Compare)):
        return columns_of(expr.left) | columns_of(expr.right)
    if isinstance(expr, Func):
        return columns_of(expr.arg)
    return frozenset()


def _poisson1_from_uniform(u: np.ndarray) -> np.ndarray:
    """Inverse CDF of Poisson(1) on uniforms (exact to the float thresholds used by Spark)."""
    thresholds = poisson1_cdf()
    return np.searchsorted(thresholds, u, side="right").astype(np.float64)


def poisson1_cdf(kmax: int = 20) -> np.ndarray:
    """Cumulative probabilities P(N <= k), k = 0..kmax, of N ~ Poisson(1)."""
    from scipy.stats import poisson

    return poisson.cdf(np.arange(kmax + 1), 1.0)


def evaluate_numpy(expr: Expr, columns: Mapping[str, np.ndarray], unit_uniform=None) -> np.ndarray:
    """Evaluate ``expr`` on numpy columns (the pandas engine's compiler).

    ``unit_uniform(replicate, seed)`` returns per-row uniforms keyed on the unit, needed
    only for :class:`RowPoisson`.
    """
    if isinstance(expr, Col):
        try:
            return np.asarray(columns[expr.name], dtype=np.float64)
        except KeyError:
            raise KeyError(f"moment expression needs column {expr.name!r}, not in the prepared frame") from None
    if isinstance(expr, Lit):
        return np.float64(expr.value)
    if isinstance(expr, BinOp):
        a = evaluate_numpy(expr.left, columns, unit_uniform)
        b = evaluate_numpy(expr.right, columns, unit_uniform)
        if expr.op == "+":
            return a + b
        if expr.op == "-":
            return a - b
        if expr.op == "*":
            return a * b
        with np.errstate(divide="ignore", invalid="ignore"):
            return a / b
    if isinstance(expr, Func):
        a = evaluate_numpy(expr.arg, columns, unit_uniform)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if expr.fn == "exp":
                return np.exp(a)
            if expr.fn == "log":
                return np.log(a)
            if expr.fn == "sigmoid":
                return 1.0 / (1.0 + np.exp(-a))
            if expr.fn == "abs":
                return np.abs(a)
            return np.sqrt(a)
    if isinstance(expr, Compare):
        a = evaluate_numpy(expr.left, columns, unit_uniform)
        b = evaluate_numpy(expr.right, columns, unit_uniform)
        ops = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
               "==": np.equal, "!=": np.not_equal}
        return ops[expr.op](a, b).astype(np.float64)
    if isinstance(expr, RowPoisson):
        if unit_uniform is None:
            raise ValueError("RowPoisson needs per-unit uniforms from the engine")
        return _poisson1_from_uniform(unit_uniform(expr.replicate, expr.seed))
    raise TypeError(f"not a moment expression: {expr!r}")
