"""The pandas moment engine: the oracle for the Spark engine, and the fast path for tiny inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from causal_core.moments.engine import BUCKET, DEFAULT_BUCKETS, UNIT, Totals, check_levels, triu_pairs
from causal_core.moments.expr import Expr, _poisson1_from_uniform, evaluate_numpy


def hash_buckets(values: pd.DataFrame | pd.Series, n_buckets: int, salt: str = "whybatch") -> np.ndarray:
    """Bucket ids from a stable hash of the unit (or of the row's values), never row order."""
    h = pd.util.hash_pandas_object(values, index=False, hash_key=(salt + "0" * 16)[:16]).to_numpy()
    return (h % np.uint64(n_buckets)).astype(np.int64)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (Steele, Lea & Flood 2014), vectorised on uint64 (wrapping)."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class PandasMomentEngine:
    """Per-bucket sums over a pandas DataFrame.

    If the frame has no ``__bucket`` column, buckets come from a hash of ``__unit`` (or of
    every column when there is no unit), so they do not depend on row order.
    """

    def __init__(self, frame: pd.DataFrame, *, n_buckets: int = DEFAULT_BUCKETS,
                 bucket_column: str = BUCKET, unit_column: str = UNIT) -> None:
        self._n = int(n_buckets)
        self.unit_column = unit_column if unit_column in frame.columns else None
        if bucket_column in frame.columns:
            buckets = frame[bucket_column].to_numpy(dtype=np.int64)
        elif self.unit_column is not None:
            buckets = hash_buckets(frame[self.unit_column], self._n)
        else:
            buckets = hash_buckets(frame, self._n)
        if len(buckets) and (buckets.min() < 0 or buckets.max() >= self._n):
            raise ValueError(f"bucket ids must lie in [0, {self._n})")
        self._buckets = buckets
        self._columns = {c: frame[c].to_numpy() for c in frame.columns if c != bucket_column}
        self.n_rows = len(frame)
        # Row-level draws are keyed on the unit, or on a hash of the row's values: never
        # on row position, so reordering the frame does not change the bootstrap.
        keyed = frame[[self.unit_column]] if self.unit_column else frame.drop(columns=[bucket_column], errors="ignore")
        self._draw_hash = pd.util.hash_pandas_object(keyed, index=False).to_numpy(dtype=np.uint64)

    @property
    def n_buckets(self) -> int:
        return self._n

    def _unit_uniform(self, replicate: int, seed: int) -> np.ndarray:
        # pandas ignores ``hash_key`` for numeric columns, so keying the hash on (seed,
        # replicate) that way gave every replicate the same draws; mix a digest of
        # (seed, replicate) into the unit hash with splitmix64 instead.
        digest = hashlib.blake2b(f"{int(seed)}:{int(replicate)}".encode(), digest_size=8).digest()
        key = np.uint64(int.from_bytes(digest, "little"))
        h = _splitmix64(self._draw_hash ^ key)
        return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def _values(self, expr: Expr) -> np.ndarray:
        v = evaluate_numpy(expr, self._columns, self._unit_uniform)
        return np.broadcast_to(np.asarray(v, dtype=np.float64), (self.n_rows,))

    def bucket_sums(self, exprs: Sequence[Expr]) -> np.ndarray:
        out = np.empty((self._n, len(exprs)))
        for j, e in enumerate(exprs):
            out[:, j] = np.bincount(self._buckets, weights=self._values(e), minlength=self._n)
        return out

    def grouped_sums(self, exprs: Sequence[Expr], key: Expr, levels: int) -> np.ndarray:
        k = self._values(key)
        check_levels(k, levels)
        group = self._buckets * levels + k.astype(np.int64)
        out = np.empty((self._n * levels, len(exprs)))
        for j, e in enumerate(exprs):
            out[:, j] = np.bincount(group, weights=self._values(e), minlength=self._n * levels)
        return out.reshape(self._n, levels, len(exprs))

    def totals(self, exprs: Sequence[Expr], extremes: Sequence[Expr] = ()) -> Totals:
        sums = np.array([self._values(e).sum() for e in exprs], dtype=np.float64)
        low = np.array([self._values(e).min() if self.n_rows else np.inf for e in extremes], dtype=np.float64)
        high = np.array([self._values(e).max() if self.n_rows else -np.inf for e in extremes], dtype=np.float64)
        return Totals(sums, low, high)

    def cluster_cross_sums(self, exprs: Sequence[Expr]) -> np.ndarray:
        scores = np.column_stack([self._values(e) for e in exprs]) if exprs else np.empty((self.n_rows, 0))
        if self.unit_column is not None:
            units, inverse = np.unique(self._columns[self.unit_column], return_inverse=True)
            per_unit = np.zeros((len(units), scores.shape[1]))
            np.add.at(per_unit, inverse, scores)
            unit_bucket = np.zeros(len(units), dtype=np.int64)
            unit_bucket[inverse] = self._buckets
        else:
            per_unit, unit_bucket = scores, self._buckets
        pairs = triu_pairs(scores.shape[1])
        out = np.empty((self._n, len(pairs)))
        for idx, (i, j) in enumerate(pairs):
            out[:, idx] = np.bincount(unit_bucket, weights=per_unit[:, i] * per_unit[:, j], minlength=self._n)
        return out

    def unit_counts(self) -> np.ndarray:
        if self.unit_column is None:
            return np.bincount(self._buckets, minlength=self._n).astype(np.float64)
        units, first = np.unique(self._columns[self.unit_column], return_index=True)
        return np.bincount(self._buckets[first], minlength=self._n).astype(np.float64)

    def replicate_sums(self, exprs: Sequence[Expr], n_replicates: int, seed: int) -> np.ndarray:
        values = np.column_stack([self._values(e) for e in exprs]) if exprs else np.empty((self.n_rows, 0))
        out = np.empty((int(n_replicates), values.shape[1]))
        for b in range(int(n_replicates)):
            out[b] = _poisson1_from_uniform(self._unit_uniform(b, seed)) @ values
        return out
