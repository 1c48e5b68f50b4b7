"""Per-arm sufficient statistics: counts, sums and cross products of unit-level values.

The warehouse pass aggregates exposure rows to units, then sums per arm and per hash
bucket: the unit count ``n``, ``Σv`` for every variable ``v`` a metric needs, and
``Σ a·b`` for every pair (squares included). Everything in ``causal_core.experiments``
is computed from these sums (DESIGN.md, "The engine: moments per bucket, one pass");
no function here sees a row. Sample (co)variances use the ``n - 1`` divisor, as
GrowthBook's ``SampleMeanStatistic`` and tea-tasting's ``Aggregates`` do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from causal_core.errors import EstimationError


def _frozen(a) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class ArmSums:
    """Sufficient statistics of one arm, optionally per bucket.

    ``names`` are the unit-level variables (``("y",)``, ``("y", "x")`` for a ratio,
    ``("y", "z")`` with a CUPED covariate...). Without buckets ``n`` is a scalar, ``sums``
    has shape ``(p,)`` and ``cross`` (Σ a·b, symmetric) ``(p, p)``; per bucket every array
    gains a leading axis of length K. :meth:`total` adds the buckets up.
    """

    names: tuple[str, ...]
    n: np.ndarray
    sums: np.ndarray
    cross: np.ndarray

    def __post_init__(self) -> None:
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        if len(set(names)) != len(names) or not names:
            raise EstimationError(f"ArmSums needs distinct variable names, got {names}")
        n, sums, cross = _frozen(self.n), _frozen(self.sums), _frozen(self.cross)
        p = len(names)
        if sums.shape != n.shape + (p,) or cross.shape != n.shape + (p, p):
            raise EstimationError(
                f"ArmSums shapes disagree: n {n.shape}, sums {sums.shape} (expected "
                f"{n.shape + (p,)}), cross {cross.shape} (expected {n.shape + (p, p)})")
        if n.ndim > 1:
            raise EstimationError(f"ArmSums takes at most one bucket axis, got n of shape {n.shape}")
        if np.any(n < 0):
            raise EstimationError("ArmSums: a unit count is negative")
        gap = np.abs(cross - np.swapaxes(cross, -1, -2))
        if gap.size and not np.all(gap <= 1e-8 + 1e-5 * np.abs(cross)):  # np.allclose's tolerances
            raise EstimationError("ArmSums: the cross products must be symmetric (Σa·b = Σb·a)")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sums", sums)
        object.__setattr__(self, "cross", cross)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_columns(cls, n, sums: Mapping[str, object],
                     cross: Mapping[tuple[str, str], object]) -> "ArmSums":
        """Build from named aggregate columns, as a warehouse query returns them.

        ``sums`` maps a variable to Σv; ``cross`` maps a pair ``(a, b)`` to Σa·b and needs
        every unordered pair, squares included (``("y", "y")`` is Σy²).
        """
        names = tuple(sums)
        n = np.asarray(n, dtype=float)
        s = np.stack([np.asarray(sums[v], dtype=float) for v in names], axis=-1)
        c = np.empty(n.shape + (len(names), len(names)))
        missing = []
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                key = (a, b) if (a, b) in cross else (b, a)
                if key not in cross:
                    missing.append(f"{a}*{b}")
                    continue
                c[..., i, j] = np.asarray(cross[key], dtype=float)
        if missing:
            raise EstimationError(f"ArmSums.from_columns: cross products missing for "
                                  f"{sorted(set(missing))}")
        return cls(names, n, s, c)

    @classmethod
    def from_units(cls, values: Mapping[str, object], buckets=None,
                   n_buckets: int | None = None) -> "ArmSums":
        """Sum unit-level values (one entry per unit); with ``buckets`` (ints in
        ``[0, n_buckets)``) keep one row of sums per bucket. The oracle for the engines."""
        names = tuple(values)
        v = np.column_stack([np.asarray(values[k], dtype=float) for k in names])
        if buckets is None:
            return cls(names, float(len(v)), v.sum(axis=0), v.T @ v)
        b = np.asarray(buckets, dtype=int)
        k = int(n_buckets if n_buckets is not None else b.max() + 1)
        n = np.bincount(b, minlength=k).astype(float)
        s = np.zeros((k, len(names)))
        np.add.at(s, b, v)
        c = np.zeros((k, len(names), len(names)))
        np.add.at(c, b, v[:, :, None] * v[:, None, :])
        return cls(names, n, s, c)

    # -- algebra ------------------------------------------------------------------------
    @property
    def per_bucket(self) -> bool:
        return self.n.ndim == 1

    def total(self) -> "ArmSums":
        """The sums over all buckets (the point estimate uses these)."""
        if not self.per_bucket:
            return self
        return ArmSums(self.names, self.n.sum(), self.sums.sum(axis=0), self.cross.sum(axis=0))

    def weighted(self, weights) -> "ArmSums":
        """Bucket sums reweighted (a bucket bootstrap replicate: Poisson(1) or multinomial
        weights per bucket, DESIGN.md), already totalled."""
        if not self.per_bucket:
            raise EstimationError("ArmSums.weighted needs per-bucket sums")
        w = np.asarray(weights, dtype=float)
        return ArmSums(self.names, w @ self.n, w @ self.sums, np.tensordot(w, self.cross, axes=1))

    def select(self, names) -> "ArmSums":
        """The sums restricted to some variables (in the given order)."""
        idx = [self.index(v) for v in names]
        return ArmSums(tuple(names), self.n, self.sums[..., idx], self.cross[..., idx, :][..., idx])

    def __add__(self, other: "ArmSums") -> "ArmSums":
        """Pooled sums of two disjoint sets of units (two arms, two days)."""
        if other.names != self.names:
            other = other.select(self.names)
        return ArmSums(self.names, self.n + other.n, self.sums + other.sums, self.cross + other.cross)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise EstimationError(f"variable {name!r} is not in these sums; they have "
                                  f"{list(self.names)}") from None

    # -- moments (totals) ---------------------------------------------------------------
    def means(self) -> np.ndarray:
        """Vector of sample means (over all buckets)."""
        t = self.total()
        if t.n <= 0:
            raise EstimationError("an arm has no units")
        return t.sums / t.n

    def covariance(self) -> np.ndarray:
        """Sample covariance matrix of the variables, divisor ``n - 1``."""
        t = self.total()
        if t.n <= 1:
            raise EstimationError(f"an arm needs at least two units for a variance, has {t.n:g}")
        return (t.cross - np.outer(t.sums, t.sums) / t.n) / (t.n - 1)

    def count(self) -> float:
        return float(self.total().n)


def sums_over(arms: Mapping[str, ArmSums]) -> ArmSums:
    """Pool several arms' sums (used for CUPED's pooled θ, Deng et al. 2013, §3.3)."""
    arms = list(arms.values())
    out = arms[0].total()
    for a in arms[1:]:
        out = out + a.total()
    return out
