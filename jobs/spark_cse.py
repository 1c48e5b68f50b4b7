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


def plan(exprs: Sequence[Expr]) -> tuple[list[list[tuple[str, Expr]]], list[Expr]]:
    """The projections and the rewritten expressions: ``levels[k]`` lists the
    ``(__cse<i>, subtree)`` columns of the k-th projection, each subtree rewritten to use
    the columns of the levels below; then ``exprs`` rewritten to use all of them. One
    projection per nesting level, so a handful whatever the number of subtrees."""
    _, seen = _sizes(exprs)
    repeated = sorted((e for e, n in seen.items() if n > 1), key=_tree_size)
    level: dict[Expr, int] = {}
    for sub in repeated:  # smaller first: every repeated subtree inside it has its level
        level[sub] = 1 + max((level[e] for e in _repeated_inside(sub, level)), default=0)
    names: dict[Expr, str] = {}
    levels = []
    for depth in sorted(set(level.values())):
        batch = [(f"__cse{i}", _rewrite(sub, names)) for i, sub in enumerate(repeated) if level[sub] == depth]
        names.update((sub, f"__cse{i}") for i, sub in enumerate(repeated) if level[sub] == depth)
        levels.append(batch)
    return levels, [_rewrite(e, names) for e in exprs]


def eliminate(frame: DataFrame, exprs: Sequence[Expr],
              compile_expr: Callable[[Expr], Column]) -> tuple[DataFrame, list[Column]]:
    """Project repeated subtrees of ``exprs`` as ``__cse<i>`` columns (one ``withColumns``
    per level of :func:`plan`); return the frame and the compiled expressions using them."""
    levels, rewritten = plan(exprs)
    for batch in levels:
        frame = frame.withColumns({name: compile_expr(sub) for name, sub in batch})
    return frame, [compile_expr(e) for e in rewritten]


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
