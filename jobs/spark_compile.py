"""Moment expressions compiled to Spark: SQL text and Column objects.

:func:`compile_expr` turns an expression of :mod:`causal_core.moments.expr` into a
Column computing the same float64 arithmetic as ``evaluate_numpy`` (IEEE division by
zero, NaN-aware comparisons, ``log`` of 0 and negatives) under ANSI mode or not.
``RowPoisson`` weights are Poisson(1) inverse-CDF draws on ``xxhash64(unit, seed,
replicate)``: keyed on the unit, never on partition order (DESIGN.md, Determinism).

Transcendental functions (``exp``, ``log``) come from Java's StrictMath and may differ
from numpy's in the last ulp; everything else is the same IEEE operation.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from causal_core.moments.engine import UNIT
from causal_core.moments.expr import BinOp, Col, Compare, Expr, Func, Lit, RowPoisson, poisson1_cdf
from jobs.exact_sums import q

_NAN, _INF = float("nan"), float("inf")


def _poisson1(uniform: Column) -> Column:
    """Inverse CDF of Poisson(1): the number of CDF thresholds at or below u (the same
    rule as ``np.searchsorted(cdf, u, side="right")`` in the pandas engine)."""
    out = None
    for k, threshold in enumerate(poisson1_cdf()):
        cond = uniform < F.lit(float(threshold))
        out = F.when(cond, F.lit(float(k))) if out is None else out.when(cond, F.lit(float(k)))
    return out.otherwise(F.lit(float(len(poisson1_cdf()))))


def poisson_weight(key: Column, seed: int, replicate: Column) -> Column:
    """Poisson(1) draw from the top 53 bits of ``xxhash64(key, seed, replicate)``."""
    h = F.xxhash64(key, F.lit(int(seed)), replicate)
    return _poisson1(F.shiftrightunsigned(h, 11).cast("double") / F.lit(float(1 << 53)))


def _divide(a: Column, b: Column) -> Column:
    # Spark returns NULL (or raises, under ANSI) on x / 0; IEEE gives +-inf or NaN with the
    # sign of the zero, which pow(b, -1) reproduces: pow(-0.0, -1) = -inf.
    return F.when(b == F.lit(0.0), a * F.pow(b, F.lit(-1.0))).otherwise(a / b)


def _func(fn: str, a: Column) -> Column:
    if fn == "exp":
        return F.exp(a)
    if fn == "log":  # Spark's log is NULL at x <= 0; numpy's is -inf at 0 and NaN below
        return F.when(a == F.lit(0.0), F.lit(-_INF)).when(a < F.lit(0.0), F.lit(_NAN)).otherwise(F.log(a))
    if fn == "sigmoid":
        return F.lit(1.0) / (F.lit(1.0) + F.exp(-a))
    if fn == "abs":
        return F.abs(a)
    return F.sqrt(a)


def _compare(op: str, a: Column, b: Column) -> Column:
    # Spark orders NaN above everything and NaN = NaN; IEEE (numpy) makes every comparison
    # with NaN false except "!=".
    cond = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]
    either_nan = F.isnan(a) | F.isnan(b)
    return F.when(either_nan, F.lit(1.0 if op == "!=" else 0.0)).otherwise(cond.cast("double"))


def has_row_poisson(expr: Expr) -> bool:
    """Whether the expression draws row-level Poisson weights (they need the row key)."""
    if isinstance(expr, RowPoisson):
        return True
    if isinstance(expr, (BinOp, Compare)):
        return has_row_poisson(expr.left) or has_row_poisson(expr.right)
    if isinstance(expr, Func):
        return has_row_poisson(expr.arg)
    return False


def _sql_double(v: float) -> str:
    if v != v:
        return "CAST('NaN' AS DOUBLE)"
    if v in (_INF, -_INF):
        return f"CAST('{'-' if v < 0 else ''}Infinity' AS DOUBLE)"
    return f"CAST('{v!r}' AS DOUBLE)"


_ZERO = _sql_double(0.0)


def compile_sql(expr: Expr) -> str:
    """The Spark SQL text of ``expr`` (same semantics as :func:`compile_expr`).

    One SQL string per moment costs one JVM call to parse, where building the same
    expression from Column objects costs one py4j round trip per node — thousands for a
    propensity pass.
    """
    if isinstance(expr, Col):
        name = "`" + expr.name.replace("`", "``") + "`"
        return f"coalesce(CAST({name} AS DOUBLE), {_sql_double(_NAN)})"
    if isinstance(expr, Lit):
        return _sql_double(float(expr.value))
    if isinstance(expr, BinOp):
        a, b = compile_sql(expr.left), compile_sql(expr.right)
        if expr.op == "/":
            return (f"(CASE WHEN ({b}) = {_ZERO} THEN ({a}) * power(({b}), {_sql_double(-1.0)}) "
                    f"ELSE ({a}) / ({b}) END)")
        return f"(({a}) {expr.op} ({b}))"
    if isinstance(expr, Func):
        a = compile_sql(expr.arg)
        if expr.fn == "exp":
            return f"exp({a})"
        if expr.fn == "log":
            return (f"(CASE WHEN ({a}) = {_ZERO} THEN {_sql_double(-_INF)} WHEN ({a}) < {_ZERO} "
                    f"THEN {_sql_double(_NAN)} ELSE ln({a}) END)")
        if expr.fn == "sigmoid":
            return f"({_sql_double(1.0)} / ({_sql_double(1.0)} + exp(-({a}))))"
        if expr.fn == "abs":
            return f"abs({a})"
        return f"sqrt({a})"
    if isinstance(expr, Compare):
        a, b = compile_sql(expr.left), compile_sql(expr.right)
        op = "=" if expr.op == "==" else expr.op
        nan_value = _sql_double(1.0 if expr.op == "!=" else 0.0)
        return f"(CASE WHEN isnan({a}) OR isnan({b}) THEN {nan_value} ELSE CAST((({a}) {op} ({b})) AS DOUBLE) END)"
    raise TypeError(f"no SQL form for {expr!r}")


def compile_expr(expr: Expr, key: Column | None = None) -> Column:
    """A double Column computing ``expr`` row by row, as ``evaluate_numpy`` does.

    ``key`` is the unit key that :class:`RowPoisson` draws hash (default ``__unit``).
    A NULL cell reads as NaN, as it does in pandas. Expressions without ``RowPoisson``
    are compiled through SQL text (:func:`compile_sql`): one JVM call instead of one per node.
    """
    if not has_row_poisson(expr):
        return F.expr(compile_sql(expr))
    return _compile_columns(expr, key)


def _compile_columns(expr: Expr, key: Column | None = None) -> Column:
    """The Column-object compiler, needed for ``RowPoisson`` (its key is a Column)."""
    if isinstance(expr, Col):
        return F.coalesce(q(expr.name).cast("double"), F.lit(_NAN))
    if isinstance(expr, Lit):
        return F.lit(float(expr.value))
    if isinstance(expr, BinOp):
        a, b = compile_expr(expr.left, key), compile_expr(expr.right, key)
        if expr.op == "+":
            return a + b
        if expr.op == "-":
            return a - b
        if expr.op == "*":
            return a * b
        return _divide(a, b)
    if isinstance(expr, Func):
        return _func(expr.fn, compile_expr(expr.arg, key))
    if isinstance(expr, Compare):
        return _compare(expr.op, compile_expr(expr.left, key), compile_expr(expr.right, key))
    if isinstance(expr, RowPoisson):
        return poisson_weight(q(UNIT) if key is None else key, expr.seed, F.lit(int(expr.replicate)))
    raise TypeError(f"not a moment expression: {expr!r}")
