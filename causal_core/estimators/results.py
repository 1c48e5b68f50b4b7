"""Immutable results: estimates and typed "not applicable" values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causal_core.json_values import json_native

from causal_core.moments.bootstrap import normal_interval, percentile_interval

CI_METHODS = ("analytic", "bootstrap-percentile", "bootstrap-normal")


@dataclass(frozen=True)
class EstimateResult:
    """One effect estimate with its uncertainty (the ``estimates`` rows of results.json).

    ``replicates`` holds the bootstrap draws when a bootstrap ran; ``confint`` uses them
    for the percentile interval, else the normal interval from ``se`` (both from
    :mod:`causal_core.moments.bootstrap`, as the estimators' own intervals are).
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
        if self.ci_method == "bootstrap-percentile" and np.isfinite(reps).sum() > 1:
            return percentile_interval(reps, level)
        return normal_interval(self.estimate, self.se, level)

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
        return json_native({
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
