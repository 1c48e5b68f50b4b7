"""Always-valid (sequential) intervals and p-values for lifts read out every day.

Asymptotic confidence sequences of Waudby-Smith, Arnold, Wu, Howard & Ramdas (2023),
"Time-uniform central limit theory and asymptotic confidence sequences" (arXiv:2103.06476
v7), two-sided normal-mixture boundary, eq. (9): with ``N`` units so far, ``σ̂² = N·se²``
and a tuning parameter ρ, the half-width is

    σ̂ · sqrt( 2 (Nρ² + 1) / (N² ρ²) · log( sqrt(Nρ² + 1) / α ) ).

ρ is chosen so that the boundary is tightest at a planned sample size ``n*`` (ibid.
eq. (161)): ``ρ = sqrt( (-2 log α + log(-2 log α + 1)) / n* )``. The always-valid p-value is
the reciprocal of the mixture e-value (ibid. eq. (155)). These are the formulas of
GrowthBook's ``SequentialTwoSidedTTest`` (gbstats 0.8), whose ``sequential_tuning_parameter``
is ``n*`` (default 5000); the same interval can be wrapped around an absolute or a
relative lift, CUPED-adjusted or not, since only its estimate and standard error enter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from causal_core.errors import EstimationError

DEFAULT_PLANNED_N = 5000


@dataclass(frozen=True)
class SequentialResult:
    """A lift with its always-valid interval and p-value at this look."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n: float
    rho: float
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def mixture_rho(alpha: float, planned_n: float = DEFAULT_PLANNED_N):
    """ρ that minimises the boundary's width at ``planned_n`` units (Waudby-Smith et al.
    2023, eq. (161))."""
    if not 0 < alpha < 1 or np.any(np.asarray(planned_n) <= 0):
        raise EstimationError(f"sequential: alpha in (0, 1) and planned_n > 0 needed, got "
                              f"{alpha}, {planned_n}")
    la = -2.0 * np.log(alpha)
    return np.sqrt((la + np.log(la + 1.0)) / planned_n)


def half_width(se, n, alpha: float = 0.05, planned_n: float = DEFAULT_PLANNED_N):
    """Half-width of the two-sided asymptotic confidence sequence (eq. (9)) for an
    estimate with standard error ``se`` from ``n`` units (arrays broadcast)."""
    se, n = np.asarray(se, dtype=float), np.asarray(n, dtype=float)
    rho2 = mixture_rho(alpha, planned_n) ** 2
    tr = n * rho2 + 1.0
    return se * np.sqrt(n) * np.sqrt(2.0 * tr * np.log(np.sqrt(tr) / alpha) / (n ** 2 * rho2))


def always_valid_p(estimate, se, n, planned_n: float = DEFAULT_PLANNED_N, alpha: float = 0.05,
                   null: float = 0.0):
    """``min(1, 1/E)`` for the normal-mixture e-value ``E`` (eq. (155)). ρ depends on
    ``alpha`` through eq. (161), as in GrowthBook, so the p-value and the interval agree."""
    estimate, se, n = (np.asarray(v, dtype=float) for v in (estimate, se, n))
    rho2 = mixture_rho(alpha, planned_n) ** 2
    st2 = (estimate - null) ** 2 / se ** 2
    tr = n * rho2 + 1.0
    log_e = rho2 * n * st2 / (2.0 * tr) - 0.5 * np.log(tr)  # in logs: E overflows on large samples
    return np.exp(-np.maximum(log_e, 0.0))


def sequential_lift(estimate: float, se: float, n: float, *, alpha: float = 0.05,
                    planned_n: float = DEFAULT_PLANNED_N, null: float = 0.0) -> SequentialResult:
    """Always-valid interval and p-value for a lift (from :func:`compare`'s estimate and
    se) at a look with ``n`` units in both arms together."""
    if not se > 0 or not n > 0:
        raise EstimationError(f"sequential: se and n must be positive, got {se}, {n}")
    w = float(half_width(se, n, alpha, planned_n))
    return SequentialResult(estimate=float(estimate), se=float(se), ci_low=float(estimate - w),
                            ci_high=float(estimate + w),
                            p_value=float(always_valid_p(estimate, se, n, planned_n, alpha, null)),
                            n=float(n), rho=float(mixture_rho(alpha, planned_n)), alpha=alpha)
