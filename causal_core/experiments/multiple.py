"""Multiple-testing corrections across the metrics × arms (× segments) of one readout.

Holm (1979), "A simple sequentially rejective multiple test procedure" (family-wise
error), and Benjamini & Hochberg (1995), "Controlling the false discovery rate" (false
discovery rate), both by ``statsmodels.stats.multitest.multipletests``. The p-values keep
their shape: a (metrics, arms) grid comes back as a grid, corrected as one family.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests

from causal_core.errors import EstimationError

METHODS = {"holm": "holm", "bh": "fdr_bh", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}


@dataclass(frozen=True)
class AdjustedPValues:
    """Adjusted p-values and rejections, in the shape of the input."""

    method: str
    alpha: float
    p_values: np.ndarray
    adjusted: np.ndarray
    reject: np.ndarray


def adjust_p_values(p_values, method: str = "holm", alpha: float = 0.05) -> AdjustedPValues:
    """Correct a family of p-values (any shape; NaNs, e.g. an arm without data, are left
    out of the family and stay NaN). ``method``: ``holm``, ``bh`` (Benjamini–Hochberg),
    ``bonferroni`` or ``none``."""
    if method not in METHODS:
        raise EstimationError(f"multiple_testing {method!r} is not one of {sorted(METHODS)}")
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    ok = ~np.isnan(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise EstimationError("p-values must lie in [0, 1]")
    if ok.any():
        if METHODS[method] is None:
            adjusted[ok], reject[ok] = p[ok], p[ok] <= alpha
        else:
            # statsmodels' multipletests calls gc.collect(); with the objects already alive
            # frozen the collection scans only its own (0.2 s per call otherwise in a
            # Spark driver's heap, once per segment and readout)
            gc.freeze()
            try:
                rej, adj, _, _ = multipletests(p[ok], alpha=alpha, method=METHODS[method])
            finally:
                gc.unfreeze()
            adjusted[ok], reject[ok] = adj, rej
    for a in (p, adjusted, reject):
        a.setflags(write=False)
    return AdjustedPValues(method=method, alpha=alpha, p_values=p, adjusted=adjusted, reject=reject)
