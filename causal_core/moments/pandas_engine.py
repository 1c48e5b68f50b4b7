"""The pandas moment engine: the oracle for the Spark engine, and the fast path for tiny inputs.

Unit ids are hashed through their canonical text (:func:`unit_keys`), the same text the
Spark engine hashes (``jobs.spark.compiler.unit_key``): the same ids stored as int, float,
decimal or digit strings give the same buckets and the same row-level draws. Row-level
draws are :mod:`causal_core.moments.draws` on that text (or, without a unit, on Spark's
``xxhash64`` of the row's values, :func:`row_hashes`), so they are the Spark engine's
draws, bit for bit. Non-numeric
columns (strings, categories) are coded as integers, 0, 1, ... in the sorted order of
their text, and :meth:`PandasMomentEngine.level_labels` maps the codes back.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence

import numpy as np
import pandas as pd

from causal_core.moments.engine import BUCKET, DEFAULT_BUCKETS, UNIT, Totals, check_levels, triu_pairs
from causal_core.moments import draws
from causal_core.moments.expr import Expr, evaluate_numpy


_TWO_63 = 2.0 ** 63


def _float_key(x: float) -> str:
    """Integer text for whole numbers inside (-2^63, 2^63); else the exact hexadecimal text
    in Java's ``Double.toHexString`` form (7.5 -> ``0x1.ep2``), as Spark writes it."""
    if abs(x) < _TWO_63 and x == int(x):
        return str(int(x))
    if x in (np.inf, -np.inf):
        return "Infinity" if x > 0 else "-Infinity"
    mantissa, exponent = float(x).hex().split("p")  # '-0x1.e000000000000', '+2'
    head, fraction = mantissa.split(".")
    return f"{head}.{fraction.rstrip('0') or '0'}p{int(exponent)}"


def _value_key(v) -> str | None:
    if isinstance(v, str):
        return v
    if pd.isna(v):  # None, NaN, NA, NaT: a missing id
        return None
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, decimal.Decimal):
        if v.is_finite() and v == v.to_integral_value():
            return str(int(v))
        return _float_key(float(v))
    if isinstance(v, (float, np.floating)):
        return _float_key(float(v))
    return str(v)


def unit_keys(units: pd.Series) -> pd.Series:
    """The canonical text of each unit id: what buckets and row-level draws hash.

    Whole numbers give their integer text whatever their type (int 7, float 7.0,
    ``Decimal("7.00")``: all ``"7"``; floats up to 2^63 in magnitude); other numbers the
    exact hexadecimal text of their float value; strings are themselves, so ``"7"`` is the
    same unit as 7; booleans are 1 and 0. Missing ids (NaN included) stay missing. These
    are the texts ``jobs.spark.compiler.unit_key`` builds in Spark.
    """
    if pd.api.types.is_integer_dtype(units.dtype) and not units.hasnans:
        keys = units.to_numpy().astype(str).tolist()
    elif pd.api.types.is_float_dtype(units.dtype):  # NaN is pandas' missing value here
        keys = [None if v != v else _float_key(v) for v in units.to_numpy(dtype=np.float64, na_value=np.nan)]
    else:
        keys = [_value_key(v) for v in units]
    return pd.Series(keys, index=units.index, dtype=object, name=units.name)


def hash_buckets(values: pd.DataFrame | pd.Series, n_buckets: int, salt: str = "whybatch") -> np.ndarray:
    """Bucket ids from a stable hash of the unit (or of the row's values), never row order.

    A Series is a unit: its canonical texts (:func:`unit_keys`) are hashed. A DataFrame
    is a set of row values, hashed as they are."""
    if isinstance(values, pd.Series):
        values = unit_keys(values)
    h = pd.util.hash_pandas_object(values, index=False, hash_key=(salt + "0" * 16)[:16]).to_numpy()
    return (h % np.uint64(n_buckets)).astype(np.int64)


def _column_hashes(values: pd.Series, seed: np.ndarray) -> np.ndarray:
    """One link of Spark's ``xxhash64`` chain over a column, hashed as the Spark type the
    column becomes in ``spark.createDataFrame``: int64 as long; narrower ints and booleans
    as int; float64 as double, float32 as float; text as UTF-8. A missing value (None,
    NA, and NaN: pandas' missing value) leaves the hash unchanged, as Spark's NULL does."""
    dtype = values.dtype
    missing = values.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        out = draws.hash_ints(values.to_numpy(dtype=np.int32, na_value=0), seed)
    elif pd.api.types.is_integer_dtype(dtype):
        fill = values.to_numpy(dtype=np.int64, na_value=0)
        wide = dtype.itemsize == 8 or (pd.api.types.is_unsigned_integer_dtype(dtype) and dtype.itemsize >= 4)
        out = (draws.hash_longs if wide else draws.hash_ints)(fill, seed)
    elif pd.api.types.is_float_dtype(dtype):
        fill = values.to_numpy(dtype=np.float64, na_value=np.nan)
        out = (draws.hash_floats if dtype.itemsize == 4 else draws.hash_doubles)(fill, seed)
    elif isinstance(dtype, pd.CategoricalDtype) or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return draws.hash_texts([None if m else str(v) for v, m in zip(values, missing)], seed)
    else:
        raise TypeError(f"row-level draws without a unit hash every column as Spark does; column "
                        f"{values.name!r} has dtype {dtype}, which has no such hash here (give the frame a unit)")
    return np.where(missing, seed, out)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """Spark's ``xxhash64(c1, c2, ...)`` of each row's values (seed 42, chained over the
    columns in order): the key of row-level draws for rows without a unit."""
    h = np.full(len(frame), draws.SPARK_SEED, dtype=np.uint64)
    for name in frame.columns:
        h = _column_hashes(frame[name], h)
    return h


class PandasMomentEngine:
    """Per-bucket sums over a pandas DataFrame.

    If the frame has no ``__bucket`` column, buckets come from a hash of ``__unit``'s
    canonical texts (or of every column when there is no unit), so they do not depend on
    row order or on the type the ids are stored as. Non-numeric columns other than the
    unit are coded as integers (module docstring; :meth:`level_labels`).
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
        self._labels: dict[str, tuple[str, ...]] = {}
        self._columns = {c: self._numeric(frame[c]) if c != self.unit_column else frame[c].to_numpy()
                         for c in frame.columns if c != bucket_column}
        self.n_rows = len(frame)
        self._frame, self._bucket_column = frame, bucket_column
        self._key_hash: np.ndarray | None = None

    @property
    def n_buckets(self) -> int:
        return self._n

    def _numeric(self, values: pd.Series) -> np.ndarray:
        """A column as the numbers expressions read: numeric columns as they are; strings
        and categories as the codes 0, 1, ... of their sorted texts (missing: NaN)."""
        textual = isinstance(values.dtype, (pd.CategoricalDtype, pd.StringDtype)) or (
            values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string")
        if not textual:
            return values.to_numpy()
        text = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
        labels = tuple(sorted(set(text.dropna())))
        self._labels[str(values.name)] = labels
        codes = pd.Index(labels).get_indexer(text)
        return np.where(codes >= 0, codes, np.nan).astype(np.float64)

    def level_labels(self, column: str) -> tuple[str, ...] | None:
        """The texts the codes of a non-numeric column stand for (code k is ``labels[k]``);
        None for a numeric column."""
        return self._labels.get(column)

    def _unit_uniform(self, replicate: int, seed: int) -> np.ndarray:
        """The rows' uniforms for one replicate: :func:`causal_core.moments.draws.uniforms`
        keyed on the unit's canonical text (what its bucket hashes), or on the row's
        values, as the Spark engine keys them: never on row position, so reordering the
        frame does not change the bootstrap."""
        if self._key_hash is None:  # only frames that draw pay for hashing every key
            if self.unit_column is not None:
                self._key_hash = draws.hash_texts(unit_keys(self._frame[self.unit_column]).tolist())
            else:
                # the key is the row hash itself, a long, which the draw's chain hashes again
                rows = row_hashes(self._frame.drop(columns=[self._bucket_column], errors="ignore"))
                self._key_hash = draws.hash_longs(rows.view(np.int64))
        return draws.uniforms(self._key_hash, seed, replicate)

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
            out[b] = draws.poisson1(self._unit_uniform(b, seed)) @ values
        return out
