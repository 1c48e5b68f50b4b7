"""GrowthBook's Bayesian readout: a Gaussian posterior for the lift, chance to beat
control, risk (expected loss) and a credible interval.

The data's likelihood for the lift is normal with the frequentist estimate and variance
(absolute, or relative by the delta method; :mod:`frequentist`). With a Gaussian prior
``N(μ₀, τ²)`` the posterior is normal with precision ``1/v + 1/τ²`` and mean
``(d/v + μ₀/τ²) / precision`` (conjugate normal–normal update; GrowthBook's statistics
documentation, "Bayesian statistics", and ``gbstats.bayesian.tests.EffectBayesianABTest``).

Default prior: GrowthBook's — on the relative lift, mean 0, standard deviation 0.1, and
*not* proper unless asked (``proper=False``): by default the posterior is the
likelihood, a flat prior. A prior stated on the other scale is rescaled by the control's
value (``μ₀/|m_a|``, ``τ²/m_a²``), as GrowthBook does.

Chance to win is ``P(δ > 0)`` (``P(δ < 0)`` for an inverse metric). Risk is the expected
loss of each decision (Stucchio 2015, "Bayesian A/B testing at VWO", §4):
``E[max(δ, 0)]`` for shipping control and ``E[max(-δ, 0)]`` for shipping treatment, in
closed form ``μΦ(μ/σ) + σφ(μ/σ)`` and ``σφ(μ/σ) - μΦ(-μ/σ)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from causal_core.errors import EstimationError
from causal_core.experiments.frequentist import absolute_lift, relative_lift
from causal_core.experiments.metrics import ArmEstimate


@dataclass(frozen=True)
class GaussianPrior:
    """Prior on the lift: ``N(mean, variance)``, used only when ``proper``; ``scale`` says
    whether it is stated on the relative or the absolute lift."""

    mean: float = 0.0
    variance: float = 0.1 ** 2
    proper: bool = False
    scale: str = "relative"

    def __post_init__(self) -> None:
        if self.scale not in ("relative", "absolute"):
            raise EstimationError(f"prior scale {self.scale!r} is not 'relative' or 'absolute'")
        if self.proper and not self.variance > 0:
            raise EstimationError(f"a proper prior needs a positive variance, got {self.variance}")


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of the lift and the decision quantities."""

    expected: float
    posterior_sd: float
    ci_low: float
    ci_high: float
    chance_to_win: float
    risk_control: float
    risk_treatment: float
    relative: bool
    alpha: float

    def to_dict(self) -> dict:
        return asdict(self)


def expected_losses(mu: float, sigma: float) -> tuple[float, float]:
    """``(E[max(δ,0)], E[max(-δ,0)])`` for ``δ ~ N(mu, sigma²)``."""
    r = mu / sigma
    pdf = float(stats.norm.pdf(r))
    return (mu * float(stats.norm.cdf(r)) + sigma * pdf,
            sigma * pdf - mu * float(stats.norm.cdf(-r)))


def _prior_on(prior: GaussianPrior, relative: bool, base: float) -> tuple[float, float]:
    if relative == (prior.scale == "relative"):
        return prior.mean, prior.variance
    if relative:
        return prior.mean / abs(base), prior.variance / base ** 2
    return prior.mean * abs(base), prior.variance * base ** 2


def bayesian_compare(control: ArmEstimate, treatment: ArmEstimate, *, relative: bool = True,
                     prior: GaussianPrior = GaussianPrior(), alpha: float = 0.05,
                     inverse: bool = False) -> BayesianResult:
    """Posterior of the treatment-vs-control lift (relative by default, as GrowthBook).

    With CUPED estimates, the adjusted means and unadjusted baselines enter exactly as in
    the frequentist lift. ``inverse`` (lower is better) swaps chance to win and risks.
    """
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must be in (0, 1), got {alpha}")
    d, v = relative_lift(control, treatment) if relative else absolute_lift(control, treatment)
    if not v > 0:
        raise EstimationError("the lift has zero variance (constant metric in both arms)")
    precision = 1.0 / v
    mu = d
    if prior.proper:
        m0, t2 = _prior_on(prior, relative, control.baseline)
        precision += 1.0 / t2
        mu = (d / v + m0 / t2) / precision
    sigma = float(np.sqrt(1.0 / precision))
    win = float(stats.norm.sf(0.0, mu, sigma))
    risk_c, risk_t = expected_losses(mu, sigma)
    if inverse:
        win, risk_c, risk_t = 1.0 - win, risk_t, risk_c
    lo, hi = stats.norm.ppf([alpha / 2, 1 - alpha / 2], mu, sigma)
    return BayesianResult(expected=float(mu), posterior_sd=sigma, ci_low=float(lo), ci_high=float(hi),
                          chance_to_win=win, risk_control=risk_c, risk_treatment=risk_t,
                          relative=relative, alpha=alpha)
