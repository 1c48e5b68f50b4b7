"""CUPED / regression adjustment with a pre-period covariate, from per-arm sums.

Deng, Xu, Kohavi & Walker (2013), "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data", §3: each arm's metric ``g`` is replaced by
``g - θ (h - h̄)`` where ``h`` is the same statistic of the pre-period covariate and
``h̄`` its value over both arms; the variance per unit becomes
``var(g) + θ² var(h) - 2θ cov(g, h)``. For ratio metrics ``g`` and ``h`` are ratios and
their (co)variances come from the delta method (Deng, Knoblich & Lu 2018, §3.3). θ is

- ``"pooled"``: ``cov(g, h) / var(h)`` on both arms' units pooled (Deng et al. 2013,
  §3.3; GrowthBook's ``compute_theta``; tea-tasting's ``_covariate_coef``);
- ``"within"``: the pooled within-arm slope, which makes the difference of adjusted means
  equal to the OLS coefficient of ``y ~ treatment + z`` (ANCOVA; Yang & Tsiatis 2001);
- a number, fixed in advance.

:func:`lin_arms` is the interacted form of Lin (2013), "Agnostic notes on regression
adjustments to experimental data", §2: one slope per arm, covariate centred at the pooled
mean; it equals OLS of ``y ~ T + (z - z̄) + T (z - z̄)`` and is never less efficient
asymptotically than the unadjusted difference (ibid., Theorem 2).
"""

from __future__ import annotations

from dataclasses import dataclass

from causal_core.errors import EstimationError
from causal_core.experiments.metrics import ArmEstimate, Metric, arm_estimate, delta_cov, ratio_gradient
from causal_core.experiments.sums import ArmSums

THETA_METHODS = ("pooled", "within")


@dataclass(frozen=True)
class CupedArms:
    """Adjusted estimates of both arms, the θ used and the variance reduction achieved:
    ``1 - var(adjusted lift) / var(unadjusted lift)`` (≈ ρ² of metric and covariate,
    Deng et al. 2013, eq. 4)."""

    control: ArmEstimate
    treatment: ArmEstimate
    theta: float
    variance_reduction: float


def _linearised(sums: ArmSums, metric: Metric):
    if not metric.has_covariate:
        raise EstimationError(f"metric {metric.name!r} has no covariate to adjust with")
    g, dg = ratio_gradient(sums, metric.numerator, metric.denominator)
    h, dh = ratio_gradient(sums, metric.covariate, metric.covariate_denominator)
    return g, dg, h, dh


def cuped_theta(control: ArmSums, treatment: ArmSums, metric: Metric, method: str = "pooled") -> float:
    """The adjustment coefficient θ (see the module docstring for the two methods).
    Returns 0 when the covariate has no variance (no adjustment, as GrowthBook does)."""
    if method == "pooled":
        total = control.total() + treatment.total()
        _, dg, _, dh = _linearised(total, metric)
        var_h = delta_cov(total, dh, dh)
        return delta_cov(total, dg, dh) / var_h if var_h > 0 else 0.0
    if method == "within":
        num = den = 0.0
        for arm in (control, treatment):
            _, dg, _, dh = _linearised(arm, metric)
            w = arm.count() - 1
            num += w * delta_cov(arm, dg, dh)
            den += w * delta_cov(arm, dh, dh)
        return num / den if den > 0 else 0.0
    raise EstimationError(f"CUPED theta {method!r} is not one of {list(THETA_METHODS)} or a number")


def cuped_arms(control: ArmSums, treatment: ArmSums, metric: Metric,
               theta: str | float = "pooled") -> CupedArms:
    """Both arms CUPED-adjusted with one θ (Deng et al. 2013, §3.2–3.3).

    Means are centred at the pooled covariate value (as tea-tasting), so the adjusted
    control mean stays on the metric's scale; the lift is unchanged by the centring.
    """
    th = cuped_theta(control, treatment, metric, theta) if isinstance(theta, str) else float(theta)
    total = control.total() + treatment.total()
    h_pool, _ = ratio_gradient(total, metric.covariate, metric.covariate_denominator)
    out = []
    for arm in (control, treatment):
        g, dg, h, dh = _linearised(arm, metric)
        var = (delta_cov(arm, dg, dg) + th ** 2 * delta_cov(arm, dh, dh)
               - 2 * th * delta_cov(arm, dg, dh))
        out.append(ArmEstimate(mean=g - th * (h - h_pool), variance=var, n=arm.count(), baseline=g))
    a, b = out
    raw_a, raw_b = arm_estimate(control, _plain(metric)), arm_estimate(treatment, _plain(metric))
    raw = raw_a.variance / raw_a.n + raw_b.variance / raw_b.n
    adj = a.variance / a.n + b.variance / b.n
    return CupedArms(control=a, treatment=b, theta=th, variance_reduction=1.0 - adj / raw)


def _plain(metric: Metric) -> Metric:
    kind = "ratio" if metric.denominator is not None else "mean"
    return Metric(name=metric.name, numerator=metric.numerator, denominator=metric.denominator,
                  kind=kind)


@dataclass(frozen=True)
class LinArms:
    """Lin's interacted adjustment: per-arm estimates at the pooled covariate value and
    the per-arm slopes."""

    control: ArmEstimate
    treatment: ArmEstimate
    theta_control: float
    theta_treatment: float


def lin_arms(control: ArmSums, treatment: ArmSums, metric: Metric) -> LinArms:
    """Per-arm regression of the metric on the covariate, evaluated at the pooled
    covariate value (Lin 2013, §2; the difference of the two equals the treatment
    coefficient of the fully interacted OLS with the covariate centred).

    Each arm's variance is the classical variance of a fitted value at ``h̄`` from that
    arm's own regression, ``s²_k (1/n_k + (h_k - h̄)² / SS_h,k)`` with
    ``s²_k = SSR_k / (n_k - 2)``: separate residual variances per arm, so unequal arm
    variances are allowed (the heteroskedasticity Lin's robust errors address; the
    robust sandwich itself needs fourth moments that per-arm sums do not carry). For a
    ratio metric the same is done on the delta-method linearisations.
    """
    total = control.total() + treatment.total()
    h_pool, _ = ratio_gradient(total, metric.covariate, metric.covariate_denominator)
    out, slopes = [], []
    for arm in (control, treatment):
        g, dg, h, dh = _linearised(arm, metric)
        n = arm.count()
        if n < 3:
            raise EstimationError("Lin's adjustment needs at least three units per arm")
        var_h, cov_gh, var_g = delta_cov(arm, dh, dh), delta_cov(arm, dg, dh), delta_cov(arm, dg, dg)
        if not var_h > 0:
            raise EstimationError(f"metric {metric.name!r}: the covariate is constant in an arm")
        slope = cov_gh / var_h
        s2 = (n - 1) * (var_g - slope * cov_gh) / (n - 2)
        fitted_var = s2 * (1.0 / n + (h - h_pool) ** 2 / ((n - 1) * var_h))
        out.append(ArmEstimate(mean=g + slope * (h_pool - h), variance=fitted_var * n, n=n, baseline=g))
        slopes.append(slope)
    return LinArms(control=out[0], treatment=out[1], theta_control=slopes[0], theta_treatment=slopes[1])


def variance_reduction_bound(control: ArmSums, treatment: ArmSums, metric: Metric) -> float:
    """``ρ²``, the squared pooled correlation of metric and covariate: the variance
    reduction CUPED achieves asymptotically with the optimal θ (Deng et al. 2013, eq. 4)."""
    total = control.total() + treatment.total()
    _, dg, _, dh = _linearised(total, metric)
    c = delta_cov(total, dg, dh)
    return float(c ** 2 / (delta_cov(total, dg, dg) * delta_cov(total, dh, dh)))
