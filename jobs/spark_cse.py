"""Common-subexpression elimination for moment expressions compiled to Spark.

A propensity pass sums a hundred columns that all contain the same linear predictor
and ``sigmoid`` of it; compiled naively, every column recomputes them and the generated
code outgrows the JVM's 64 KB method limit. Here every repeated non-trivial subtree is
computed once, as a named column of a projection before the aggregation, and the
expressions refer to it by name. Spark keeps such a projection (it does not collapse a
non-cheap alias that is used several times).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame

from causal_core.moments.expr import BinOp, Col, Compare, Expr, Func, Lit, RowPoisson

MIN_SIZE = 4  # nodes; smaller subtrees are cheaper to recompute than to project


def _children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, (BinOp, Compare)):
        return (e.left, e.right)
    if isinstance(e, Func):
        return (e.arg,)
    return ()


def _sizes(exprs: Sequence[Expr]) -> tuple[dict[int, int], Counter]:
    """Tree size per node id, and how often each structurally-equal subtree occurs."""
    size: dict[int, int] = {}
    seen: Counter = Counter()

    def visit(e: Expr) -> int:
        n = 1 + sum(visit(c) for c in _children(e))
        size[id(e)] = n
        if n >= MIN_SIZE and not isinstance(e, (Col, Lit, RowPoisson)):
            seen[e] += 1
        return n

    for e in exprs:
        visit(e)
    return size, seen


def _rewrite(e: Expr, names: dict[Expr, str]) -> Expr:
    if e in names:
        return Col(names[e])
    if isinstance(e, BinOp):
        return BinOp(e.op, _rewrite(e.left, names), _rewrite(e.right, names))
    if isinstance(e, Compare):
        return Compare(e.op, _rewrite(e.left, names), _rewrite(e.right, names))
    if isinstance(e, Func):
        return Func(e.fn, _rewrite(e.arg, names))
    return e


def eliminate(frame: DataFrame, exprs: Sequence[Expr],
              compile_expr: Callable[[Expr], Column]) -> tuple[DataFrame, list[Column]]:
    """Project repeated subtrees of ``exprs`` as ``__cse<i>`` columns; return the frame and
    the compiled expressions that use them.

    One ``withColumns`` per nesting level (a projected subtree may use the ones below
    it): a handful of projections whatever the number of subtrees, each new DataFrame
    costing the driver an analysis of the plan."""
    _, seen = _sizes(exprs)
    repeated = sorted((e for e, n in seen.items() if n > 1), key=_tree_size)
    names: dict[Expr, str] = {}
    level: dict[Expr, int] = {}
    for sub in repeated:  # smaller first: every repeated subtree inside it has its level
        inner = [level[e] for e in _repeated_inside(sub, level)]
        level[sub] = 1 + max(inner, default=0)
    for depth in sorted(set(level.values())):
        batch = {}
        for i, sub in enumerate(repeated):
            if level[sub] == depth:
                batch[f"__cse{i}"] = compile_expr(_rewrite(sub, names))
        frame = frame.withColumns(batch)
        for i, sub in enumerate(repeated):
            if level[sub] == depth:
                names[sub] = f"__cse{i}"
    return frame, [compile_expr(_rewrite(e, names)) for e in exprs]


def _repeated_inside(e: Expr, known: dict[Expr, int]) -> list[Expr]:
    """The outermost subtrees of ``e`` (not ``e`` itself) that are keys of ``known``."""
    out = []
    for c in _children(e):
        if c in known:
            out.append(c)
        else:
            out.extend(_repeated_inside(c, known))
    return out


def _tree_size(e: Expr) -> int:
    return 1 + sum(_tree_size(c) for c in _children(e))
