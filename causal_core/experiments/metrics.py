"""Metric kinds and their per-arm estimates by the delta method.

A metric is a smooth function of per-arm means of unit-level variables: a mean
(``Σy / n``), a proportion (a mean of 0/1 values), or a ratio of means (``Σy / Σx``,
e.g. orders per session when sessions vary per user). Its per-unit variance is the
delta-method quadratic form ``∇gᵀ Σ ∇g`` of the gradient of ``g`` at the arm's means with
the arm's covariance matrix (Deng, Knoblich & Lu 2018, "Applying the delta method in
metric analytics", §2–3), so ``se² = var / n``. For a ratio this is the variance of the
unit-level linearisation ``(y - R x) / x̄`` (ibid. eq. 3 and §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from causal_core.errors import EstimationError, SpecError
from causal_core.experiments.sums import ArmSums

MetricKind = Literal["mean", "proportion", "ratio", "quantile"]
KINDS = ("mean", "proportion", "ratio", "quantile")


@dataclass(frozen=True)
class Metric:
    """What to read out: ``numerator`` (and ``denominator`` for a ratio) name unit-level
    variables in the arm sums; ``covariate`` (and ``covariate_denominator`` for a ratio)
    name the pre-period values CUPED adjusts with. ``inverse`` marks a metric where lower
    is better (it flips chance to win and risk, as GrowthBook's ``inverse``); ``level`` is
    the quantile level of a quantile metric (0.5 for the median)."""

    name: str
    numerator: str
    denominator: str | None = None
    kind: MetricKind = "mean"
    covariate: str | None = None
    covariate_denominator: str | None = None
    inverse: bool = False
    level: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"metric {self.name!r}: kind {self.kind!r} is not one of {list(KINDS)}",
                            (("metrics.kind", f"one of {list(KINDS)}"),))
        if (self.kind == "ratio") != (self.denominator is not None):
            raise SpecError(f"metric {self.name!r}: a ratio metric needs a denominator and only a "
                            f"ratio metric has one", (("metrics.denominator", "set for ratio only"),))
        if (self.kind == "quantile") != (self.level is not None) or (
                self.level is not None and not 0 < self.level < 1):
            raise SpecError(f"metric {self.name!r}: a quantile metric needs a level in (0, 1) and "
                            f"only a quantile metric has one", (("metrics.level", "in (0, 1)"),))
        if self.covariate_denominator is not None and self.covariate is None:
            raise SpecError(f"metric {self.name!r}: covariate_denominator without covariate",
                            (("metrics.covariate", "a pre-period numerator"),))

    @property
    def has_covariate(self) -> bool:
        return self.covariate is not None


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's metric: ``mean`` (CUPED-adjusted when adjusted), ``variance`` per unit
    (so the standard error of ``mean`` is ``sqrt(variance / n)``), ``n`` units, and
    ``baseline``: the unadjusted metric value, the denominator of relative lifts."""

    mean: float
    variance: float
    n: float
    baseline: float

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variance / self.n))


def ratio_gradient(sums: ArmSums, numerator: str, denominator: str | None) -> tuple[float, np.ndarray]:
    """Value and gradient (w.r.t. the vector of means) of ``mean(numerator) / mean(denominator)``,
    or of ``mean(numerator)`` when ``denominator`` is None (Deng et al. 2018, §2.2)."""
    m = sums.means()
    grad = np.zeros(len(sums.names))
    i = sums.index(numerator)
    if denominator is None:
        grad[i] = 1.0
        return float(m[i]), grad
    j = sums.index(denominator)
    if m[j] == 0:
        raise EstimationError(f"ratio {numerator}/{denominator}: the denominator's mean is 0")
    grad[i] = 1.0 / m[j]
    grad[j] -= m[i] / m[j] ** 2
    return float(m[i] / m[j]), grad


def delta_cov(sums: ArmSums, grad_a: np.ndarray, grad_b: np.ndarray) -> float:
    """Per-unit covariance of two linearised statistics, ``∇aᵀ Σ ∇b`` (Deng et al. 2018, eq. 2)."""
    return float(grad_a @ sums.covariance() @ grad_b)


def arm_estimate(sums: ArmSums, metric: Metric) -> ArmEstimate:
    """The unadjusted per-arm estimate of a mean, proportion or ratio metric.

    A proportion uses the Bernoulli variance ``p(1 - p)`` (divisor n), as GrowthBook's
    ``ProportionStatistic``; a mean uses the sample variance (divisor ``n - 1``).
    """
    if metric.kind == "quantile":
        raise EstimationError(f"metric {metric.name!r} is a quantile: use causal_core.experiments.quantile")
    value, grad = ratio_gradient(sums, metric.numerator, metric.denominator)
    if metric.kind == "proportion":
        variance = value * (1.0 - value)
    else:
        variance = delta_cov(sums, grad, grad)
    return ArmEstimate(mean=value, variance=variance, n=sums.count(), baseline=value)
