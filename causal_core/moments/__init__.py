"""Moments: row expressions, the engine contract, the pandas engine, bucket bootstrap."""

from causal_core.moments.engine import BUCKET, DEFAULT_BUCKETS, UNIT, MomentEngine, Totals, triu_pairs, unpack_symmetric
from causal_core.moments.expr import Col, Expr, Lit, col, exp, linear, lit, log, sigmoid
from causal_core.moments.pandas_engine import PandasMomentEngine

__all__ = [
    "BUCKET", "DEFAULT_BUCKETS", "UNIT", "MomentEngine", "PandasMomentEngine", "Totals", "Col", "Expr", "Lit",
    "col", "exp", "linear", "lit", "log", "sigmoid", "triu_pairs", "unpack_symmetric",
]
