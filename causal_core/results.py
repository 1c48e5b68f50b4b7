"""Immutable results: estimates and typed "not applicable" values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

CI_METHODS = ("analytic", "bootstrap-percentile", "bootstrap-normal")


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


@dataclass(frozen=True)
class EstimateResult:
    """One effect estimate with its uncertainty (the ``estimates`` rows of results.json).

    ``replicates`` holds the bootstrap draws when a bootstrap ran; ``confint`` uses them
    for the percentile interval, else the normal interval from ``se``.
    """

    estimator: str
    strategy: str
    metric: str
    target: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float
    n: int
    contrast: str = "treated - control"
    segment: str = "all"
    level: float = 0.95
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    replicates: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.ci_method not in CI_METHODS:
            raise ValueError(f"ci_method {self.ci_method!r} is unknown; expected one of {CI_METHODS}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must lie in (0, 1), got {self.level}")

    def confint(self, level: float | None = None) -> tuple[float, float]:
        """The interval at ``level`` (default: the result's own level)."""
        level = self.level if level is None else level
        if level == self.level:
            return (self.ci_low, self.ci_high)
        reps = np.asarray(self.replicates, dtype=float)
        reps = reps[np.isfinite(reps)]
        if self.ci_method == "bootstrap-percentile" and len(reps) > 1:
            a = (1 - level) / 2
            lo, hi = np.quantile(reps, [a, 1 - a])
            return float(lo), float(hi)
        z = stats.norm.ppf(0.5 + level / 2)
        return (self.estimate - z * self.se, self.estimate + z * self.se)

    def summary(self) -> pd.DataFrame:
        """One-row DataFrame: estimate, se, interval, p-value, n."""
        return pd.DataFrame([{
            "estimator": self.estimator, "metric": self.metric, "segment": self.segment,
            "target": self.target, "estimate": self.estimate, "se": self.se,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "ci_method": self.ci_method,
            "p_value": self.p_value, "n": self.n,
        }])

    def __str__(self) -> str:
        pct = round(self.level * 100)
        return (f"{self.estimator} [{self.strategy}] {self.target.upper()} of {self.contrast} on {self.metric}"
                f" ({self.segment}): {self.estimate:.6g} (se {self.se:.4g}; {pct}% CI {self.ci_low:.6g}"
                f" .. {self.ci_high:.6g}, {self.ci_method}; p={self.p_value:.3g}; n={self.n})")

    def to_dict(self) -> dict:
        return _clean({
            "estimator": self.estimator, "strategy": self.strategy, "metric": self.metric,
            "contrast": self.contrast, "segment": self.segment, "target": self.target,
            "estimate": self.estimate, "se": self.se, "ci_low": self.ci_low, "ci_high": self.ci_high,
            "ci_method": self.ci_method, "level": self.level, "p_value": self.p_value, "n": self.n,
            "diagnostics": dict(self.diagnostics),
        })


@dataclass(frozen=True)
class NotEstimable:
    """A typed "not applicable" result: the estimator could not run, and why."""

    estimator: str
    strategy: str
    metric: str
    reason: str
    segment: str = "all"

    def to_dict(self) -> dict:
        return {"estimator": self.estimator, "strategy": self.strategy, "metric": self.metric,
                "segment": self.segment, "estimate": None, "reason": self.reason}
