"""The sharp marginal-sensitivity bounds from unit rows, written independently of
``causal_core.refuters.marginal_sensitivity``: every arm's Hajek mean maximised (minimised)
by trying every threshold of the sorted outcome (Zhao, Small & Bhattacharya 2019,
Proposition 2: weight Λ above it, 1/Λ below)."""

from __future__ import annotations

import numpy as np

# per target and arm: the true weight is c + s * odds, s in [1/Λ, Λ]
WEIGHTS = {"ate": {1: (1.0, lambda e: (1 - e) / e), 0: (1.0, lambda e: e / (1 - e))},
           "att": {1: (1.0, lambda e: 0 * e), 0: (0.0, lambda e: e / (1 - e))},
           "atc": {1: (0.0, lambda e: (1 - e) / e), 0: (1.0, lambda e: 0 * e)}}


def _extreme(y: np.ndarray, c: float, odds: np.ndarray, lam: float, upper: bool) -> float:
    order = np.argsort(y, kind="stable")
    y, odds = y[order], odds[order]
    best = -np.inf if upper else np.inf
    for k in range(len(y) + 1):  # units k.. get the large weight (upper) or the small one (lower)
        high, low = (lam, 1 / lam) if upper else (1 / lam, lam)
        w = np.concatenate([c + odds[:k] * low, c + odds[k:] * high])
        if w.sum() > 0:
            value = float(w @ y / w.sum())
            best = max(best, value) if upper else min(best, value)
    return best


def exact_bounds(y, d, e, lam: float, target: str = "ate") -> tuple[float, float]:
    """``(lower, upper)`` of the effect μ1 - μ0 under the marginal sensitivity model Λ."""
    y, d, e = (np.asarray(v, dtype=float) for v in (y, d, e))
    ends = {}
    for arm in (1, 0):
        c, odds = WEIGHTS[target][arm]
        m = d == arm
        ends[arm] = (_extreme(y[m], c, odds(e[m]), lam, False), _extreme(y[m], c, odds(e[m]), lam, True))
    return ends[1][0] - ends[0][1], ends[1][1] - ends[0][0]
