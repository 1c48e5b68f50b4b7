"""Sample-ratio mismatch: do the arms' unit counts fit the split the experiment planned?

Pearson's chi-square goodness-of-fit test of the observed counts against
``total × expected share`` (Fabijan et al. 2019, "Diagnosing sample ratio mismatch in
online controlled experiments", §3), computed by ``scipy.stats.chisquare``. The default
threshold ``alpha = 0.001`` is the one GrowthBook and Fabijan et al. use: an SRM is a
data-quality alarm, so a false alarm must be rare across many daily readouts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from causal_core.errors import DataCheckError


@dataclass(frozen=True)
class SrmResult:
    """Observed and expected counts per arm, the chi-square statistic, its p-value and
    whether it flags a mismatch (``p_value < alpha``)."""

    arms: tuple[str, ...]
    observed: tuple[float, ...]
    expected: tuple[float, ...]
    statistic: float
    p_value: float
    alpha: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict:
        return {**asdict(self), "mismatch": self.mismatch}


def srm_test(counts, expected_split, *, arms=None, alpha: float = 0.001) -> SrmResult:
    """Chi-square test of per-arm unit counts against the expected split.

    ``counts`` and ``expected_split`` are sequences in the same arm order (or mappings
    keyed by arm); the split need not sum to 1. Arms with an expected share of 0 must
    have no units.
    """
    if isinstance(counts, dict):
        arms = tuple(counts)
        counts = [counts[a] for a in arms]
        expected_split = [expected_split[a] for a in arms]
    obs = np.asarray(counts, dtype=float)
    split = np.asarray(expected_split, dtype=float)
    arms = tuple(arms) if arms is not None else tuple(str(i) for i in range(len(obs)))
    if obs.shape != split.shape or obs.ndim != 1 or len(obs) < 2:
        raise DataCheckError(f"SRM check needs one count and one expected share per arm "
                             f"(at least two arms), got {obs.shape} counts and {split.shape} shares")
    if np.any(split < 0) or split.sum() <= 0:
        raise DataCheckError(f"SRM check: expected shares must be >= 0 and not all 0, got {split.tolist()}")
    if obs.sum() <= 0:
        raise DataCheckError("SRM check: no units in any arm")
    live = split > 0
    if np.any(obs[~live] > 0):
        bad = [a for a, o, s in zip(arms, obs, split) if s == 0 and o > 0]
        raise DataCheckError(f"SRM check: arms {bad} have units but an expected share of 0")
    expected = np.where(live, obs.sum() * split / split.sum(), 0.0)
    res = stats.chisquare(obs[live], expected[live])
    return SrmResult(arms=arms, observed=tuple(obs.tolist()), expected=tuple(expected.tolist()),
                     statistic=float(res.statistic), p_value=float(res.pvalue), alpha=alpha)
