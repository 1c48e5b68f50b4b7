"""The bucket bootstrap: reweight per-bucket moment sums instead of re-reading rows.

Rows are hashed to K buckets by unit id, so resampling buckets is a cluster bootstrap
with buckets as clusters; each replicate is ``W[b] @ M`` for a K x m moment array M, and
costs microseconds on the driver. Poisson(1) weights give the Poisson bootstrap
(Hanley & MacGibbon 2006; Chamandy et al. 2012, "Estimating uncertainty for massive data
streams"); multinomial weights give Efron's bootstrap over buckets.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# The bootstrap kinds a study or an estimator may ask for: the bucket weights drawn on the
# driver (Poisson(1) or multinomial), and the exact row-level Poisson bootstrap, which the
# engine draws per unit in one more pass (``MomentEngine.replicate_sums``) to check the
# bucket bootstrap against.
WEIGHT_KINDS = ("poisson", "multinomial")
ROW_POISSON = "row-poisson"
BOOTSTRAP_KINDS = (*WEIGHT_KINDS, ROW_POISSON)


def bucket_weights(n_replicates: int, n_buckets: int, *, seed: int | np.random.SeedSequence,
                   kind: str = "poisson") -> np.ndarray:
    """A (B, K) array of bucket weights, drawn on the driver from ``seed``.

    The weights depend only on (seed, replicate, bucket), never on how the table is
    partitioned, so the same seed gives the same intervals on any cluster.
    """
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"bootstrap kind {kind!r} is unknown; expected one of {WEIGHT_KINDS}")
    if n_replicates < 1:
        raise ValueError("the bootstrap needs at least one replicate")
    rng = np.random.default_rng(seed)
    if kind == "poisson":
        return rng.poisson(1.0, size=(n_replicates, n_buckets)).astype(np.float64)
    return rng.multinomial(n_buckets, np.full(n_buckets, 1.0 / n_buckets), size=n_replicates).astype(np.float64)


def replicate_moments(weights: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """(B, m) replicate totals from (B, K) weights and a (K, m) per-bucket moment array."""
    return weights @ moments


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Efron's percentile interval (Efron & Tibshirani 1993, ch. 13)."""
    r = replicates[np.isfinite(replicates)]
    if len(r) < 2:
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(r, [a, 1.0 - a])
    return float(lo), float(hi)


def normal_interval(estimate: float, se: float, level: float = 0.95) -> tuple[float, float]:
    """estimate ± z * se."""
    z = stats.norm.ppf(0.5 + level / 2.0)
    return float(estimate - z * se), float(estimate + z * se)


def bootstrap_se(replicates: np.ndarray) -> float:
    r = replicates[np.isfinite(replicates)]
    return float(np.std(r, ddof=1)) if len(r) > 1 else float("nan")


def two_sided_p(estimate: float, se: float) -> float:
    """Normal-approximation two-sided p-value for H0: effect = 0."""
    if not np.isfinite(se) or se <= 0:
        return float("nan")
    return float(2.0 * stats.norm.sf(abs(estimate / se)))
