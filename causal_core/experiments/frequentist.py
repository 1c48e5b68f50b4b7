"""Two-arm frequentist comparisons from per-arm estimates: absolute and relative lift.

The absolute lift is ``m_b - m_a`` with variance ``v_a/n_a + v_b/n_b``; the relative lift
``(m_b - m_a) / m_a`` has the delta-method variance
``v_b / (m_a² n_b) + v_a m_b² / (m_a⁴ n_a)`` (Kohavi, Tang & Xu 2020, "Trustworthy Online
Controlled Experiments", §18.4; GrowthBook's statistics documentation and
``gbstats.frequentist.tests.frequentist_variance``). Tests: Welch's t with the
Welch–Satterthwaite degrees of freedom (Welch 1947), Student's pooled t, or the normal z.
The relative lift's t uses the same Welch degrees of freedom, as GrowthBook does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

from causal_core.errors import EstimationError
from causal_core.experiments.metrics import ArmEstimate

TestKind = Literal["welch", "student", "z"]
TESTS = ("welch", "student", "z")


@dataclass(frozen=True)
class LiftResult:
    """A lift with its interval and test. ``df`` is ``inf`` for the z test."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    df: float
    relative: bool
    alpha: float
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


def absolute_lift(control: ArmEstimate, treatment: ArmEstimate) -> tuple[float, float]:
    """``(m_b - m_a, v_a/n_a + v_b/n_b)``: the difference of means and its variance."""
    return (treatment.mean - control.mean,
            control.variance / control.n + treatment.variance / treatment.n)


def relative_lift(control: ArmEstimate, treatment: ArmEstimate) -> tuple[float, float]:
    """``((m_b - m_a) / b_a, var)`` with the delta-method variance of the ratio of two
    independent means (Kohavi et al. 2020, §18.4). ``b_a`` is the control's unadjusted
    value; with CUPED the means are adjusted and the baselines are not, as in GrowthBook
    (``frequentist_diff`` / ``frequentist_variance``)."""
    base_a, base_b = control.baseline, treatment.baseline
    if base_a == 0:
        raise EstimationError("relative lift: the control's value is 0")
    estimate = (treatment.mean - control.mean) / base_a
    variance = (treatment.variance / (base_a ** 2 * treatment.n)
                + control.variance * base_b ** 2 / (base_a ** 4 * control.n))
    return estimate, variance


def welch_df(control: ArmEstimate, treatment: ArmEstimate) -> float:
    """Welch–Satterthwaite degrees of freedom of ``v_a/n_a + v_b/n_b`` (Welch 1947, eq. 9)."""
    qa, qb = control.variance / control.n, treatment.variance / treatment.n
    den = qa ** 2 / (control.n - 1) + qb ** 2 / (treatment.n - 1)
    return float((qa + qb) ** 2 / den) if den > 0 else float("inf")


def pooled(control: ArmEstimate, treatment: ArmEstimate) -> tuple[ArmEstimate, ArmEstimate]:
    """Both arms with the pooled within-arm variance (Student's equal-variance t)."""
    na, nb = control.n, treatment.n
    v = ((na - 1) * control.variance + (nb - 1) * treatment.variance) / (na + nb - 2)
    return (ArmEstimate(control.mean, v, na, control.baseline),
            ArmEstimate(treatment.mean, v, nb, treatment.baseline))


def _reference(test: str, control: ArmEstimate, treatment: ArmEstimate):
    """The reference distribution's (ppf, sf) and degrees of freedom."""
    if test == "z":
        return stats.norm.ppf, stats.norm.sf, float("inf")
    df = welch_df(control, treatment) if test == "welch" else control.n + treatment.n - 2
    return (lambda q: stats.t.ppf(q, df)), (lambda x: stats.t.sf(x, df)), float(df)


def compare(control: ArmEstimate, treatment: ArmEstimate, *, relative: bool = False,
            alpha: float = 0.05, test: TestKind = "welch", null: float = 0.0) -> LiftResult:
    """Two-sided test and ``1 - alpha`` interval for the treatment-vs-control lift.

    ``test="welch"`` matches ``scipy.stats.ttest_ind(equal_var=False)`` and GrowthBook's
    ``TwoSidedTTest``; ``"student"`` matches ``equal_var=True``; ``"z"`` uses the normal.
    ``null`` is the lift under the null hypothesis.
    """
    if test not in TESTS:
        raise EstimationError(f"test {test!r} is not one of {list(TESTS)}")
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must be in (0, 1), got {alpha}")
    if control.n < 2 or treatment.n < 2:
        raise EstimationError("each arm needs at least two units")
    a, b = pooled(control, treatment) if test == "student" else (control, treatment)
    estimate, variance = relative_lift(a, b) if relative else absolute_lift(a, b)
    if not variance > 0:
        raise EstimationError("the lift has zero variance (constant metric in both arms)")
    se = float(np.sqrt(variance))
    ppf, sf, df = _reference(test, a, b)
    statistic = (estimate - null) / se
    half = float(ppf(1 - alpha / 2)) * se
    return LiftResult(estimate=float(estimate), se=se, ci_low=float(estimate - half),
                      ci_high=float(estimate + half), p_value=float(2 * sf(abs(statistic))),
                      statistic=float(statistic), df=df, relative=relative, alpha=alpha,
                      method=test)


def log_ratio_interval(control: ArmEstimate, treatment: ArmEstimate, *, alpha: float = 0.05,
                       test: TestKind = "welch") -> tuple[float, float]:
    """Interval for the relative lift ``m_b/m_a - 1`` from the delta method on
    ``log m_b - log m_a`` (variance ``v/(m² n)`` per arm), exponentiated: always above
    -100 % and asymmetric. tea-tasting reports this interval for ``rel_effect_size``
    (Deng et al. 2018, §3.2 for the log transform)."""
    if control.mean <= 0 or treatment.mean <= 0:
        raise EstimationError("a log-ratio interval needs positive means in both arms")
    la = ArmEstimate(np.log(control.mean), control.variance / control.mean ** 2, control.n, 1.0)
    lb = ArmEstimate(np.log(treatment.mean), treatment.variance / treatment.mean ** 2,
                     treatment.n, 1.0)
    if test == "student":
        la, lb = pooled(la, lb)
    est, var = absolute_lift(la, lb)
    ppf, _, _ = _reference(test, la, lb)
    half = float(ppf(1 - alpha / 2)) * np.sqrt(var)
    return float(np.expm1(est - half)), float(np.expm1(est + half))
