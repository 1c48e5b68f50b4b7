"""Moment expressions compiled to Spark: SQL text and Column objects.

:func:`compile_expr` turns an expression of :mod:`causal_core.moments.expr` into a
Column computing the same float64 arithmetic as ``evaluate_numpy`` (IEEE division by
zero, NaN-aware comparisons, ``log`` of 0 and negatives) under ANSI mode or not. Each
compiler is one mapping from node type to handler (:data:`SQL_HANDLERS`,
:data:`COLUMN_HANDLERS`), run by :func:`causal_core.moments.expr.fold`.

Random draws are :mod:`causal_core.moments.draws` built as Columns (:func:`uniform`,
:func:`poisson_weight`): ``RowPoisson`` weights are Poisson(1) inverse-CDF draws on
``xxhash64(key, seed, replicate)``, keyed on the unit, never on partition order (DESIGN.md,
Determinism). The key of a unit id is its canonical text (:func:`unit_key`), so that the
same ids stored as int, long, double or decimal draw the same weights and fall in the
same buckets, and the pandas engine draws the same weights from the same text.

Transcendental functions (``exp``, ``log``) come from Java's StrictMath and may differ
from numpy's in the last ulp; everything else is the same IEEE operation.
"""

from __future__ import annotations

import operator

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from causal_core.moments import draws
from causal_core.moments.expr import (
    NODE_TYPES, BinOp, Col, Compare, Expr, Func, Lit, Lookup, RowPoisson, fold, nodes,
)
from jobs.spark.exact_sums import q

_NAN, _INF = float("nan"), float("inf")


def _integer(value: int | Column) -> Column:
    """A seed or stream as the chain hashes it: a literal typed by ``draws.literal_type``,
    a Column of stream numbers as int (replicate indices, all below 2^31)."""
    if isinstance(value, Column):
        return value.cast("int")
    return F.lit(int(value)).cast(draws.literal_type(value))


def uniform(key: Column, seed: int, stream: int | Column) -> Column:
    """``draws.uniforms`` as a Column: ``(xxhash64(key, seed, stream) >>> 11) * 2^-53``."""
    h = F.xxhash64(key, _integer(seed), _integer(stream))
    return F.shiftrightunsigned(h, draws.DROPPED_BITS).cast("double") * F.lit(draws.UNIT_SCALE)


def _poisson1(u: Column) -> Column:
    """``draws.poisson1`` as a Column: the number of CDF thresholds at or below u."""
    cdf = draws.poisson1_cdf()
    out = None
    for k, threshold in enumerate(cdf):
        cond = u < F.lit(float(threshold))
        out = F.when(cond, F.lit(float(k))) if out is None else out.when(cond, F.lit(float(k)))
    return out.otherwise(F.lit(float(len(cdf))))


def poisson_weight(key: Column, seed: int, replicate: int | Column) -> Column:
    """The Poisson(1) weight of ``RowPoisson(replicate, seed)`` for the row key ``key``."""
    return _poisson1(uniform(key, seed, replicate))


_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_TWO_63 = 2.0 ** 63


def _double_key(x: Column) -> Column:
    """A double's key: its integer text when it is a whole number in (-2^63, 2^63), else its
    exact hexadecimal text (Java's ``Double.toHexString``: 7.5 -> ``0x1.ep2``), which does
    not depend on the JVM's decimal formatting."""
    whole = x.cast("long")  # evaluated only inside (-2^63, 2^63), where it cannot overflow
    return (F.when(x.isNull(), F.lit(None).cast("string"))
            .when(~(F.abs(x) < F.lit(_TWO_63)), F.format_string("%a", x))  # NaN and +-inf too
            .when(whole.cast("double") == x, whole.cast("string"))
            .otherwise(F.format_string("%a", x)))


def unit_key(unit: Column, dtype: T.DataType) -> Column:
    """The canonical text of a unit id, what buckets and row-level draws hash.

    Whole numbers give their integer text whatever their type (int, long, short, a double
    7.0, a decimal 7.00: all ``"7"``; doubles up to 2^63 in magnitude); other numbers
    give the exact hexadecimal text of their double value; strings are themselves (so the
    string ``"7"`` is the same unit as the number 7); booleans are 1 and 0; other types
    their Spark string form. The pandas engine's ``unit_keys`` gives the same texts.
    """
    if isinstance(dtype, T.StringType):
        return unit
    if isinstance(dtype, _INTEGRAL):
        return unit.cast("string")
    if isinstance(dtype, T.BooleanType):
        return unit.cast("int").cast("string")
    if isinstance(dtype, T.DecimalType):
        whole = F.floor(unit)  # a decimal of scale 0: exact, for any precision
        return F.when(unit == whole, whole.cast("string")).otherwise(_double_key(unit.cast("double")))
    if isinstance(dtype, (T.FloatType, T.DoubleType)):
        return _double_key(unit.cast("double"))
    return unit.cast("string")


def _divide(a: Column, b: Column) -> Column:
    # Spark returns NULL (or raises, under ANSI) on x / 0; IEEE gives +-inf or NaN with the
    # sign of the zero, which pow(b, -1) reproduces: pow(-0.0, -1) = -inf.
    return F.when(b == F.lit(0.0), a * F.pow(b, F.lit(-1.0))).otherwise(a / b)


def _log(a: Column) -> Column:
    # Spark's log is NULL at x <= 0; numpy's is -inf at 0 and NaN below
    return F.when(a == F.lit(0.0), F.lit(-_INF)).when(a < F.lit(0.0), F.lit(_NAN)).otherwise(F.log(a))


_COLUMN_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": _divide}
_COLUMN_FUNCS = {"exp": F.exp, "log": _log, "sigmoid": lambda a: F.lit(1.0) / (F.lit(1.0) + F.exp(-a)),
                 "abs": F.abs, "sqrt": F.sqrt}


def _column_compare(node: Compare, key: Column | None, a: Column, b: Column) -> Column:
    # Spark orders NaN above everything and NaN = NaN; IEEE (numpy) makes every comparison
    # with NaN false except "!=".
    cond = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[node.op]
    either_nan = F.isnan(a) | F.isnan(b)
    return F.when(either_nan, F.lit(1.0 if node.op == "!=" else 0.0)).otherwise(cond.cast("double"))


def _column_row_poisson(node: RowPoisson, key: Column | None) -> Column:
    if key is None:
        raise ValueError("RowPoisson draws need the row key (SparkMomentEngine passes the canonical unit key)")
    return poisson_weight(key, node.seed, node.replicate)


def _column_lookup(node: Lookup, k: Column) -> Column:
    return F.element_at(F.array(*[F.lit(float(v)) for v in node.values]), k.cast("int") + F.lit(1))


COLUMN_HANDLERS = {
    Col: lambda node, key: F.coalesce(q(node.name).cast("double"), F.lit(_NAN)),
    Lit: lambda node, key: F.lit(float(node.value)),
    BinOp: lambda node, key, a, b: _COLUMN_BINARY[node.op](a, b),
    Func: lambda node, key, a: _COLUMN_FUNCS[node.fn](a),
    Compare: _column_compare,
    RowPoisson: _column_row_poisson,
    Lookup: lambda node, key, k: _column_lookup(node, k),
}
"""The Column compiler: ``handler(node, row_key, *compiled_children)``."""


def has_row_poisson(expr: Expr) -> bool:
    """Whether the expression draws row-level Poisson weights (they need the row key)."""
    return any(isinstance(n, RowPoisson) for n in nodes(expr))


def _sql_double(v: float) -> str:
    if v != v:
        return "CAST('NaN' AS DOUBLE)"
    if v in (_INF, -_INF):
        return f"CAST('{'-' if v < 0 else ''}Infinity' AS DOUBLE)"
    return f"CAST('{v!r}' AS DOUBLE)"


_ZERO = _sql_double(0.0)


def _sql_col(node: Col) -> str:
    name = "`" + node.name.replace("`", "``") + "`"
    return f"coalesce(CAST({name} AS DOUBLE), {_sql_double(_NAN)})"


def _sql_binop(node: BinOp, a: str, b: str) -> str:
    if node.op == "/":
        return (f"(CASE WHEN ({b}) = {_ZERO} THEN ({a}) * power(({b}), {_sql_double(-1.0)}) "
                f"ELSE ({a}) / ({b}) END)")
    return f"(({a}) {node.op} ({b}))"


_SQL_FUNCS = {
    "exp": lambda a: f"exp({a})",
    "log": lambda a: (f"(CASE WHEN ({a}) = {_ZERO} THEN {_sql_double(-_INF)} WHEN ({a}) < {_ZERO} "
                      f"THEN {_sql_double(_NAN)} ELSE ln({a}) END)"),
    "sigmoid": lambda a: f"({_sql_double(1.0)} / ({_sql_double(1.0)} + exp(-({a}))))",
    "abs": lambda a: f"abs({a})",
    "sqrt": lambda a: f"sqrt({a})",
}


def _sql_compare(node: Compare, a: str, b: str) -> str:
    op = "=" if node.op == "==" else node.op
    nan_value = _sql_double(1.0 if node.op == "!=" else 0.0)
    return f"(CASE WHEN isnan({a}) OR isnan({b}) THEN {nan_value} ELSE CAST((({a}) {op} ({b})) AS DOUBLE) END)"


def _sql_lookup(node: Lookup, k: str) -> str:
    # element_at is 1-based; one array literal of the per-level values (constant-folded once)
    return f"element_at(array({', '.join(_sql_double(v) for v in node.values)}), CAST(({k}) AS INT) + 1)"


def _no_sql(node: Expr, *children: str) -> str:
    raise TypeError(f"no SQL form for {node!r}")


SQL_HANDLERS = {
    Col: _sql_col,
    Lit: lambda node: _sql_double(float(node.value)),
    BinOp: _sql_binop,
    Func: lambda node, a: _SQL_FUNCS[node.fn](a),
    Compare: _sql_compare,
    RowPoisson: _no_sql,  # its key is a Column, not SQL text: see COLUMN_HANDLERS
    Lookup: _sql_lookup,
}
"""The SQL-text compiler: ``handler(node, *compiled_children)``."""


def compile_sql(expr: Expr) -> str:
    """The Spark SQL text of ``expr`` (same semantics as :func:`compile_expr`).

    One SQL string per moment costs one JVM call to parse, where building the same
    expression from Column objects costs one py4j round trip per node — thousands for a
    propensity pass.
    """
    return fold(expr, SQL_HANDLERS)


def _text_or_column(node: Expr, key: Column | None, *children: str | Column) -> str | Column:
    """SQL text while the subtree has no draw; a Column above a draw, its text children
    parsed once each (one JVM call per maximal draw-free subtree)."""
    if SQL_HANDLERS[type(node)] is not _no_sql and all(isinstance(c, str) for c in children):
        return SQL_HANDLERS[type(node)](node, *children)
    return COLUMN_HANDLERS[type(node)](node, key, *(F.expr(c) if isinstance(c, str) else c for c in children))


_MIXED = dict.fromkeys(NODE_TYPES, _text_or_column)


def compile_expr(expr: Expr, key: Column | None = None) -> Column:
    """A double Column computing ``expr`` row by row, as ``evaluate_numpy`` does.

    ``key`` is the row key that :class:`RowPoisson` draws hash (the engine passes the
    canonical unit key, :func:`unit_key`, or a hash of the row's values). A NULL cell
    reads as NaN, as it does in pandas. Subtrees without ``RowPoisson`` are compiled
    through SQL text (:func:`compile_sql`): one JVM call instead of one per node.
    """
    out = fold(expr, _MIXED, key)
    return F.expr(out) if isinstance(out, str) else out
