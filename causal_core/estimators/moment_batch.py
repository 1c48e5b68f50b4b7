"""Named moment columns for one engine pass, and the cross products that fill them.

Estimators ask for many per-bucket sums in a single ``engine.bucket_sums`` call (a pass
over the data, DESIGN.md "The engine"), or for many totals in one ``engine.totals`` call.
:class:`MomentBatch` collects the expressions under names, runs the pass, and hands back a
:class:`BucketMoments` whose blocks are read by name, so the estimator code says
``m.total("t1")`` instead of tracking column offsets.

Second moments — a Gram matrix ``sum_i v_i v_i'``, a propensity information, a sandwich
meat — are summed as the upper triangle of the row products (:func:`gram_exprs`, in the
row-major order of :func:`~causal_core.moments.engine.triu_pairs` that the engines'
``cluster_cross_sums`` use too) and rebuilt by :func:`unpack_symmetric`: a symmetric matrix
has m(m+1)/2 distinct entries, not m^2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from causal_core.moments.engine import triu_pairs, unpack_symmetric
from causal_core.moments.expr import Expr, Lit


def times(a: Expr, b: Expr) -> Expr:
    """``a * b`` that drops multiplications by the literal 1 (keeps expressions small;
    ``x * 1.0`` is ``x`` exactly, so no sum changes)."""
    if isinstance(a, Lit) and a.value == 1.0:
        return b
    if isinstance(b, Lit) and b.value == 1.0:
        return a
    return a * b


def gram_exprs(terms: Sequence[Expr]) -> list[Expr]:
    """The row products ``terms[i] * terms[j]``, i <= j, in :func:`triu_pairs` order: the
    moment expressions of a Gram matrix, whose totals :func:`unpack_symmetric` rebuilds."""
    return [times(terms[i], terms[j]) for i, j in triu_pairs(len(terms))]


class MomentBatch:
    """An ordered set of named blocks of moment expressions, computed in one pass."""

    def __init__(self) -> None:
        self._exprs: list[Expr] = []
        self._blocks: dict[str, slice] = {}

    def add(self, name: str, exprs: Expr | Sequence[Expr]) -> None:
        """Add one expression or a block of them under ``name``."""
        if name in self._blocks:
            raise ValueError(f"moment block {name!r} added twice")
        block = [exprs] if isinstance(exprs, Expr) else list(exprs)
        start = len(self._exprs)
        self._exprs.extend(block)
        self._blocks[name] = slice(start, start + len(block))

    def add_products(self, name: str, exprs: Sequence[Expr]) -> None:
        """The upper triangle of the cross products of ``exprs`` (:func:`gram_exprs`)."""
        self.add(name, gram_exprs(exprs))

    def exprs(self, name: str | None = None) -> list[Expr]:
        """The expressions of block ``name``, or all of them in column order."""
        return list(self._exprs if name is None else self._exprs[self._blocks[name]])

    def __len__(self) -> int:
        return len(self._exprs)

    def run(self, engine) -> BucketMoments:
        """One ``engine.bucket_sums`` call for every expression of the batch."""
        return BucketMoments(np.asarray(engine.bucket_sums(self._exprs), dtype=np.float64), dict(self._blocks))

    def moments(self, array: np.ndarray) -> BucketMoments:
        """Name the columns of an array computed for this batch's expressions."""
        return BucketMoments(np.asarray(array, dtype=np.float64), dict(self._blocks))

    def run_totals(self, engine, extremes: Sequence[Expr] = ()) -> tuple[BucketMoments, np.ndarray, np.ndarray]:
        """One ``engine.totals`` call: the sums as a single-row :class:`BucketMoments`
        (read with ``total``/``total_vector``; no per-bucket blocks), and the minimum and
        maximum of each ``extremes`` expression."""
        out = engine.totals(self._exprs, extremes)
        return BucketMoments(np.asarray(out.sums, dtype=np.float64)[None, :], dict(self._blocks)), out.low, out.high


class BucketMoments:
    """A K x m per-bucket moment array with named column blocks."""

    def __init__(self, array: np.ndarray, blocks: dict[str, slice]) -> None:
        self.array = array
        self.blocks = blocks

    def buckets(self, name: str) -> np.ndarray:
        """The (K, width) per-bucket block (width 1 blocks keep their column axis)."""
        return self.array[:, self.blocks[name]]

    def total(self, name: str) -> np.ndarray | float:
        """The block summed over buckets: a float for single expressions, else a vector."""
        s = self.buckets(name).sum(axis=0)
        return float(s[0]) if s.shape == (1,) else s

    def symmetric(self, name: str, m: int) -> np.ndarray:
        """An ``add_products`` block, summed over buckets and unpacked to m x m."""
        return unpack_symmetric(self.total_vector(name), m)

    def total_vector(self, name: str) -> np.ndarray:
        return self.buckets(name).sum(axis=0)
