"""Row expressions whose per-bucket sums are the engine's moments.

Every estimator is written as sums over rows (DESIGN.md, "The engine"). A moment is a
small expression tree over numeric columns — ``col("y") * col("x1")``, the logistic
score ``(col("d") - sigmoid(linear(beta, xs))) * col("x1")`` — that the pandas engine
evaluates with numpy and the Spark engine compiles to a Column, so both engines compute
the very same K x m array. Expressions are frozen values: they hash, compare and print.

Comparison uses methods (``a.lt(b)``) rather than operators, because ``==`` must stay
structural equality for a frozen value.

A node names its subexpressions (:meth:`Expr.children`) and rebuilds itself with others
(:meth:`Expr.with_children`); every walk is written once on top of that: :func:`fold`
(bottom-up, one handler per node type: compilers are a mapping from node type to
handler), :func:`nodes` and :func:`substitute`. A new node type is
a class with its ``_child_fields`` and one entry in each compiler's mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from causal_core.moments.draws import poisson1

_BINARY = ("+", "-", "*", "/")
_FUNCS = ("exp", "log", "sigmoid", "abs", "sqrt")
_COMPARE = ("<", "<=", ">", ">=", "==", "!=")


class Expr:
    """Base class: arithmetic operators build :class:`BinOp` nodes.

    ``_child_fields`` names the fields holding subexpressions, in evaluation order."""

    _child_fields: ClassVar[tuple[str, ...]] = ()

    def children(self) -> tuple[Expr, ...]:
        return tuple(getattr(self, f) for f in self._child_fields)

    def with_children(self, children: Sequence[Expr]) -> Expr:
        """The same node over other subexpressions (itself when they are the same objects)."""
        children = tuple(children)
        if len(children) != len(self._child_fields):
            raise ValueError(f"{type(self).__name__} has {len(self._child_fields)} children, got {len(children)}")
        if all(new is old for new, old in zip(children, self.children())):
            return self
        return dataclasses.replace(self, **dict(zip(self._child_fields, children)))

    def _cached_hash(self) -> int:
        """The structural hash, computed once per node (trees are immutable, and a hash
        recomputed from the fields would walk the whole subtree on every dict lookup)."""
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((type(self).__name__, *(getattr(self, f) for f in self.__dataclass_fields__)))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict:
        # str hashes are salted per process: a hash pickled with the node would be wrong
        # in the process that unpickles it.
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

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
    """``left op right`` for op in + - * / (IEEE arithmetic: x / 0 is +-inf or NaN)."""

    _child_fields: ClassVar[tuple[str, ...]] = ("left", "right")

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

    _child_fields: ClassVar[tuple[str, ...]] = ("arg",)

    fn: str
    arg: Expr

    def __post_init__(self) -> None:
        if self.fn not in _FUNCS:
            raise ValueError(f"unknown function {self.fn!r}; expected one of {_FUNCS}")

    __hash__ = Expr._cached_hash


@dataclass(frozen=True, eq=True)
class Compare(Expr):
    """An indicator: 1.0 where the comparison holds, else 0.0."""

    _child_fields: ClassVar[tuple[str, ...]] = ("left", "right")

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
    partitioning — so the exact row-level bootstrap is reproducible; every engine makes
    it by :mod:`causal_core.moments.draws` (stream = replicate), so pandas and Spark
    draw the same weights for the same unit keys.
    """

    replicate: int
    seed: int


@dataclass(frozen=True, eq=True)
class Lookup(Expr):
    """``values[key]``: a per-level constant read at the row's level code ``key`` (an
    integer in [0, len(values))), such as a group mean that a within transformation
    subtracts from every row of its group."""

    _child_fields: ClassVar[tuple[str, ...]] = ("key",)

    key: Expr
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        if not self.values:
            raise ValueError("Lookup needs at least one value")

    __hash__ = Expr._cached_hash


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


NODE_TYPES: tuple[type[Expr], ...] = (Col, Lit, BinOp, Func, Compare, RowPoisson, Lookup)
"""Every node type: each compiler's mapping covers them all (a test holds them to it)."""

Handlers = Mapping[type, Callable[..., Any]]


def fold(expr: Expr, handlers: Handlers, *context: Any) -> Any:
    """Evaluate ``expr`` bottom-up: ``handlers[type(node)](node, *context, *child_values)``.

    Children are evaluated before their parent, left to right, and a subtree object that
    occurs several times is evaluated once (handlers must be pure). Iterative, so a deep
    left-nested sum does not meet Python's recursion limit."""
    done: dict[int, Any] = {}
    stack: list[tuple[Expr, tuple[Expr, ...] | None]] = [(expr, None)]
    pop, push, get = stack.pop, stack.append, handlers.get  # bound once: this loop is hot
    while stack:
        node, kids = pop()
        if kids is None:  # first visit: evaluate the children first, unless a leaf or done
            if id(node) in done:
                continue
            kids = node.children()
            if kids:
                push((node, kids))
                for c in reversed(kids):
                    push((c, None))
                continue
        handler = get(type(node))
        if handler is None:
            raise TypeError(f"no handler for {type(node).__name__} nodes: {node!r}")
        done[id(node)] = handler(node, *context, *[done[id(c)] for c in kids])
    return done[id(expr)]


def nodes(*exprs: Expr) -> list[Expr]:
    """Each distinct node object of ``exprs`` once, children before parents, in the order
    a left-to-right walk finishes them first (a subtree object shared by several parents,
    or by several expressions, is listed once)."""
    seen: set[int] = set()
    out: list[Expr] = []
    for root in exprs:
        stack: list[tuple[Expr, bool]] = [(root, False)]
        while stack:
            node, finished = stack.pop()
            if finished:
                out.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.children()))
    return out


def substitute(expr: Expr, replacement: Callable[[Expr], Expr | None]) -> Expr:
    """Top-down rewrite: where ``replacement(node)`` gives an expression it replaces the
    whole subtree; elsewhere the node is rebuilt over its rewritten children."""
    new = replacement(expr)
    if new is not None:
        return new
    kids = expr.children()
    return expr.with_children([substitute(c, replacement) for c in kids]) if kids else expr


def columns_of(expr: Expr) -> frozenset[str]:
    """The column names an expression reads."""
    return frozenset(n.name for n in nodes(expr) if isinstance(n, Col))


def tree_size(expr: Expr) -> int:
    """The number of nodes, a shared subtree counted every time it occurs."""
    return fold(expr, _SIZE)


_SIZE: Handlers = dict.fromkeys(NODE_TYPES, lambda node, *kids: 1 + sum(kids))


def _np_col(node: Col, columns: Mapping[str, np.ndarray], unit_uniform) -> np.ndarray:
    try:
        return np.asarray(columns[node.name], dtype=np.float64)
    except KeyError:
        raise KeyError(f"moment expression needs column {node.name!r}, not in the prepared frame") from None


def _np_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


def _np_func(node: Func, columns, unit_uniform, a: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return _NP_FUNCS[node.fn](a)


def _np_row_poisson(node: RowPoisson, columns, unit_uniform) -> np.ndarray:
    if unit_uniform is None:
        raise ValueError("RowPoisson needs per-unit uniforms from the engine")
    return poisson1(unit_uniform(node.replicate, node.seed))


_NP_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": _np_divide}
_NP_FUNCS = {"exp": np.exp, "log": np.log, "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)), "abs": np.abs,
             "sqrt": np.sqrt}
_NP_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
               "!=": np.not_equal}

NUMPY_HANDLERS: Handlers = {
    Col: _np_col,
    Lit: lambda node, columns, unit_uniform: np.float64(node.value),
    BinOp: lambda node, columns, unit_uniform, a, b: _NP_BINARY[node.op](a, b),
    Func: _np_func,
    Compare: lambda node, columns, unit_uniform, a, b: _NP_COMPARE[node.op](a, b).astype(np.float64),
    RowPoisson: _np_row_poisson,
    Lookup: lambda node, columns, unit_uniform, key: np.asarray(node.values)[np.asarray(key).astype(np.int64)],
}


def evaluate_numpy(expr: Expr, columns: Mapping[str, np.ndarray], unit_uniform=None) -> np.ndarray:
    """Evaluate ``expr`` on numpy columns (the pandas engine's compiler).

    ``unit_uniform(replicate, seed)`` returns per-row uniforms keyed on the unit, needed
    only for :class:`RowPoisson` (:func:`causal_core.moments.draws.uniforms`).
    """
    if not isinstance(expr, Expr):
        raise TypeError(f"not a moment expression: {expr!r}")
    return fold(expr, NUMPY_HANDLERS, columns, unit_uniform)
