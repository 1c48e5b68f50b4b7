"""Moment expressions compiled to Spark: SQL text and Column objects.

:func:`compile_expr` turns an expression of :mod:`causal_core.moments.expr` into a
Column computing the same float64 arithmetic as ``evaluate_numpy`` (IEEE division by
zero, NaN-aware comparisons, ``log`` of 0 and negatives) under ANSI mode or not.
``RowPoisson`` weights are Poisson(1) inverse-CDF draws on ``xxhash64(key, seed,
replicate)``: keyed on the unit, never on partition order (DESIGN.md, Determinism). The
key of a unit id is its canonical text (:func:`unit_key`), so that the same ids stored as
int, long, double or decimal draw the same weights and fall in the same buckets.

Transcendental functions (``exp``, ``log``) come from Java's StrictMath and may differ
from numpy's in the last ulp; everything else is the same IEEE operation.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

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

    ``key`` is the row key that :class:`RowPoisson` draws hash (the engine passes the
    canonical unit key, :func:`unit_key`, or a hash of the row's values). A NULL cell
    reads as NaN, as it does in pandas. Expressions without ``RowPoisson`` are compiled
    through SQL text (:func:`compile_sql`): one JVM call instead of one per node.
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
        if key is None:
            raise ValueError("RowPoisson draws need the row key (SparkMomentEngine passes the canonical unit key)")
        return poisson_weight(key, expr.seed, F.lit(int(expr.replicate)))
    raise TypeError(f"not a moment expression: {expr!r}")
