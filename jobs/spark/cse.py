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

from causal_core.moments.expr import Col, Expr, nodes, substitute

MIN_SIZE = 4  # nodes; smaller subtrees are cheaper to recompute than to project


def _sizes(exprs: Sequence[Expr]) -> tuple[dict[int, int], Counter]:
    """Tree size per node id, and how often each structurally-equal subtree of at least
    MIN_SIZE nodes occurs in the expressions written out in full (leaves never: they are
    single nodes). Counted on the distinct node objects, each passing its number of
    occurrences down to its children, so a shared subtree is walked once."""
    order = nodes(*exprs)  # children before parents
    size: dict[int, int] = {}
    for node in order:
        size[id(node)] = 1 + sum(size[id(c)] for c in node.children())
    times = Counter(id(e) for e in exprs)
    for node in reversed(order):  # parents before children
        for c in node.children():
            times[id(c)] += times[id(node)]
    seen: Counter = Counter()
    for node in order:  # the order of first occurrence: it numbers the projected columns
        if size[id(node)] >= MIN_SIZE:
            seen[node] += times[id(node)]
    return size, seen


def _rewrite(e: Expr, names: dict[Expr, str]) -> Expr:
    return substitute(e, lambda node: Col(names[node]) if node in names else None)


def plan(exprs: Sequence[Expr]) -> tuple[list[list[tuple[str, Expr]]], list[Expr]]:
    """The projections and the rewritten expressions: ``levels[k]`` lists the
    ``(__cse<i>, subtree)`` columns of the k-th projection, each subtree rewritten to use
    the columns of the levels below; then ``exprs`` rewritten to use all of them. One
    projection per nesting level, so a handful whatever the number of subtrees."""
    size, seen = _sizes(exprs)
    repeated = sorted((e for e, n in seen.items() if n > 1), key=lambda e: size[id(e)])
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


def eliminate(frame: DataFrame, exprs: Sequence[Expr], compile_expr: Callable[[Expr], Column],
              compile_text: Callable[[Expr], str | None] | None = None, *,
              text: bool = False) -> tuple[DataFrame, list[Column] | list[str]]:
    """Project repeated subtrees of ``exprs`` as ``__cse<i>`` columns; return the frame and
    the compiled expressions using them.

    When ``compile_text`` gives the SQL text of every subtree, all levels of :func:`plan`
    are one ``selectExpr``: a later level names the columns of earlier ones as lateral
    column aliases, which Spark's analyzer resolves into one projection per level: one JVM
    call and one analysis, where a ``withColumns`` per level takes one of each per level.
    Otherwise (a subtree that needs Column objects, or a name the frame already has),
    one ``withColumns`` per level. With ``text`` the expressions come back as SQL text when
    they all have one (for a caller that writes its aggregation as one ``selectExpr``),
    else as Columns."""
    levels, rewritten = plan(exprs)
    subs = [pair for batch in levels for pair in batch]
    texts = [compile_text(sub) for _, sub in subs] if compile_text and subs else []
    if texts and None not in texts and not {name for name, _ in subs} & set(frame.columns):
        frame = frame.selectExpr("*", *[f"{t} AS {name}" for (name, _), t in zip(subs, texts)])
    else:
        for batch in levels:
            frame = frame.withColumns({name: compile_expr(sub) for name, sub in batch})
    if text and compile_text is not None:
        out = [compile_text(e) for e in rewritten]
        if None not in out:
            return frame, out
    return frame, [compile_expr(e) for e in rewritten]


def _repeated_inside(e: Expr, known: dict[Expr, int]) -> list[Expr]:
    """The outermost subtrees of ``e`` (not ``e`` itself) that are keys of ``known``."""
    out = []
    for c in e.children():
        if c in known:
            out.append(c)
        else:
            out.extend(_repeated_inside(c, known))
    return out
