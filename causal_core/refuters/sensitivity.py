"""Omitted-variable-bias sensitivity: how strong must an unobserved confounder be?

Cinelli & Hazlett (2020), "Making sense of sensitivity: extending omitted variable bias", *JRSS-B*
82(1), 39-67. For the treatment coefficient of the OLS of Y on (D, X), a confounder Z is described by
``r2dz_x`` = R²(D ~ Z | X) and ``r2yz_dx`` = R²(Y ~ Z | D, X). Everything needs only the coefficient,
its standard error and residual dof (a :class:`LinearFit`); benchmarks need partial R² of observed
covariates, functions of the Gram matrix ``G = sum v v'`` of ``v = (1, d, x, y)`` that the moment
engine sums (intercept first, as in :mod:`causal_core.estimators.linear`).

E-values: VanderWeele & Ding (2017), "Sensitivity analysis in observational research:
introducing the E-value", *Ann. Intern. Med.* 167(4), 268-274, built on the bounding
factor of Ding & VanderWeele (2016), *Epidemiology* 27(3), 368-377.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from causal_core.errors import EstimationError, SpecError
from causal_core.json_values import json_native
from causal_core.refuters.graph_validation import centred_cross_products
from causal_core.refuters.graph_validation import residual_cross_products as _residual_cross


def residual_cross_products(gram: np.ndarray, names: Sequence[str], targets: Sequence[str],
                            given: Sequence[str] = ()) -> np.ndarray:
    """Residual cross-products of ``targets`` on ``(1, given)`` from a Gram matrix, intercept (``names[0]``)
    first: :func:`causal_core.refuters.graph_validation.residual_cross_products` of the centred matrix."""
    c, _ = centred_cross_products(gram)
    if len(names) != c.shape[0] + 1:
        raise EstimationError(f"{len(names)} names for a Gram matrix of {c.shape[0] + 1} columns")
    return _residual_cross(c, tuple(names[1:]), targets, given)


def partial_r2_from_gram(gram: np.ndarray, names: Sequence[str], a: str, b: str,
                         given: Sequence[str] = ()) -> float:
    """R²(a ~ b | 1, given) = ``S_ab² / (S_aa S_bb)``, ``S`` the residual cross-products: the
    squared partial correlation, the partial R² of Cinelli & Hazlett (2020), section 2."""
    s = residual_cross_products(gram, names, (a, b), given)
    return float(s[0, 1] ** 2 / (s[0, 0] * s[1, 1]))


def group_partial_r2_from_gram(gram: np.ndarray, names: Sequence[str], outcome: str,
                               group: Sequence[str], given: Sequence[str] = ()) -> float:
    """R²(outcome ~ group | 1, given) = 1 - RSS(given + group) / RSS(given): the share of the
    residual variance that a group of columns (a category's dummies) explains."""
    full = residual_cross_products(gram, names, (outcome,), (*given, *group))[0, 0]
    return float(1.0 - full / residual_cross_products(gram, names, (outcome,), given)[0, 0])


@dataclass(frozen=True)
class LinearFit:
    """The treatment coefficient of an OLS fit: estimate, standard error, residual dof."""

    estimate: float
    se: float
    dof: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.estimate) and 0 < self.se < math.inf and self.dof > 1):
            raise EstimationError(f"need a finite estimate, se > 0, dof > 1: {self.estimate}, {self.se}, {self.dof}")

    @property
    def t(self) -> float:
        return self.estimate / self.se


def ols_from_gram(gram: np.ndarray, names: Sequence[str], outcome: str, treatment: str,
                  covariates: Sequence[str], absorbed: int = 0) -> LinearFit:
    """The coefficient of ``treatment`` in the OLS of ``outcome`` on (1, treatment, covariates) by
    Frisch-Waugh-Lovell: ``b = S_dy / S_dd``, ``se² = (S_yy - S_dy² / S_dd) / (dof S_dd)``, ``dof = n -
    |covariates| - 2 - absorbed``: the classical standard error that Cinelli & Hazlett's formulas
    take. ``absorbed`` counts fixed-effect intercepts absorbed beyond the constant (G - 1) when
    ``gram`` is a within Gram: the regression with their dummies has the same coefficient and
    residuals and that many fewer residual dof."""
    s = residual_cross_products(gram, names, (treatment, outcome), covariates)
    n = float(np.asarray(gram)[0, 0])
    k = len(covariates) + 2 + int(absorbed)
    dof = n - k
    if not dof > 1:
        raise EstimationError(f"{n:g} rows leave {dof:g} residual dof for {k} regressors")
    rss = s[1, 1] - s[0, 1] ** 2 / s[0, 0]
    return LinearFit(float(s[0, 1] / s[0, 0]), float(math.sqrt(rss / dof / s[0, 0])), dof)


@dataclass(frozen=True)
class Benchmark:
    """An observed covariate (or group) as yardstick: ``r2dxj_x`` = R²(D~Xj|X-j), ``r2yxj_dx`` = R²(Y~Xj|D,X-j)."""

    name: str
    r2dxj_x: float
    r2yxj_dx: float

    def __post_init__(self) -> None:
        if not (0 <= self.r2dxj_x < 1 and 0 <= self.r2yxj_dx < 1):
            raise EstimationError(f"benchmark {self.name!r}: partial R² {self.r2dxj_x}, {self.r2yxj_dx} not in [0, 1)")


def benchmark_from_gram(gram: np.ndarray, names: Sequence[str], outcome: str, treatment: str,
                        covariates: Sequence[str], benchmark: str | Sequence[str],
                        label: str | None = None) -> Benchmark:
    """Partial R² of a benchmark covariate (or group: a category's dummies) in D ~ X and in Y ~ D + X."""
    group = (benchmark,) if isinstance(benchmark, str) else tuple(benchmark)
    if not group or not set(group) <= set(covariates):
        raise EstimationError(f"benchmark {list(group)} must be among the covariates {list(covariates)}")
    rest = [c for c in covariates if c not in group]
    return Benchmark(label or ", ".join(group), group_partial_r2_from_gram(gram, names, treatment, group, rest),
                     group_partial_r2_from_gram(gram, names, outcome, group, (treatment, *rest)))


def partial_r2(t: float, dof: float) -> float:
    """R²(Y ~ D | X) = t² / (t² + dof) (Cinelli & Hazlett 2020, section 4: the share of the treatment's
    residual variance that a confounder explaining all of the outcome's must explain)."""
    return t * t / (t * t + dof)


def robustness_value(t: float, dof: float, q: float = 1.0, alpha: float | None = None) -> float:
    """RV_q, the equal partial R² of Z with D and with Y that cuts a fraction ``q`` of the
    estimate (Cinelli & Hazlett 2020, section 4): with Cohen's ``f_q = q |t| / sqrt(dof)``,
    ``RV_q = (sqrt(f_q^4 + 4 f_q²) - f_q²) / 2``.

    With ``alpha``, RV_{q,α}: the least strength that leaves the adjusted estimate not
    significantly different from ``(1 - q)`` times the estimate. With ``f* = t*_{α/2, dof-1}
    / sqrt(dof - 1)`` and ``f = f_q - f*``: 0 when ``f <= 0``, ``(sqrt(f^4 + 4 f²) - f²) / 2``
    when ``f_q <= 1 / f*``. When ``f_q > 1 / f*`` the least max(R²) lies off the diagonal,
    at R²(D~Z|X) = RV and R²(Y~Z|D,X) = RV / (RV + f*²) < RV, and
    ``RV = (f_q² - f*²) / (1 + f_q²)`` (the case split of the authors' sensemakr).
    """
    if not q > 0:
        raise SpecError(f"q must be positive, got {q}", (("q", "a positive fraction"),))
    fq = q * abs(t) / math.sqrt(dof)
    if alpha is None:
        return 0.5 * (math.sqrt(fq ** 4 + 4 * fq ** 2) - fq ** 2)
    if not 0 < alpha < 1:
        raise SpecError(f"alpha must lie in (0, 1), got {alpha}", (("alpha", "a level in (0, 1)"),))
    fcrit = stats.t.isf(alpha / 2, dof - 1) / math.sqrt(dof - 1)
    f = fq - fcrit
    if f <= 0:
        return 0.0
    if fq > 1 / fcrit:
        return (fq ** 2 - fcrit ** 2) / (1 + fq ** 2)
    return 0.5 * (math.sqrt(f ** 4 + 4 * f ** 2) - f ** 2)


def _r2s(r2dz_x, r2yz_dx) -> tuple[np.ndarray, np.ndarray]:
    rd, ry = np.asarray(r2dz_x, dtype=np.float64), np.asarray(r2yz_dx, dtype=np.float64)
    if not (np.all((rd >= 0) & (rd < 1)) and np.all((ry >= 0) & (ry <= 1))):
        raise EstimationError("r2dz_x must lie in [0, 1) and r2yz_dx in [0, 1]")
    return rd, ry


def bias(fit: LinearFit, r2dz_x, r2yz_dx) -> np.ndarray:
    """|bias| = se sqrt(dof R²(Y~Z|D,X) R²(D~Z|X) / (1 - R²(D~Z|X))) (Cinelli & Hazlett 2020, section 3)."""
    rd, ry = _r2s(r2dz_x, r2yz_dx)
    return fit.se * np.sqrt(fit.dof * ry * rd / (1 - rd))


def adjusted_estimate(fit: LinearFit, r2dz_x, r2yz_dx, reduce: bool = True) -> np.ndarray:
    """``sign(b) (|b| -+ bias)``: the coefficient had Z been included (section 3); ``+`` if not ``reduce``."""
    return np.sign(fit.estimate) * (abs(fit.estimate) + (-1.0 if reduce else 1.0) * bias(fit, r2dz_x, r2yz_dx))


def adjusted_se(fit: LinearFit, r2dz_x, r2yz_dx) -> np.ndarray:
    """``se sqrt((1 - R²(Y~Z|D,X)) / (1 - R²(D~Z|X)) dof / (dof - 1))``: the se had Z been included."""
    rd, ry = _r2s(r2dz_x, r2yz_dx)
    return fit.se * np.sqrt((1 - ry) / (1 - rd) * fit.dof / (fit.dof - 1))


def adjusted_t(fit: LinearFit, r2dz_x, r2yz_dx, reduce: bool = True, h0: float = 0.0) -> np.ndarray:
    """``(adjusted estimate - h0) / adjusted se``."""
    with np.errstate(divide="ignore"):
        return (adjusted_estimate(fit, r2dz_x, r2yz_dx, reduce) - h0) / adjusted_se(fit, r2dz_x, r2yz_dx)


def benchmark_bounds(benchmark: Benchmark, kd: float = 1.0, ky: float | None = None) -> tuple[float, float]:
    """``(r2dz_x, r2yz_dx)`` of a confounder ``kd`` times as strong as the benchmark with D and ``ky`` times
    with Y (Cinelli & Hazlett 2020, section 6, formal bounds). With the benchmark's ``Rd, Ry`` = ``r2dxj_x,
    r2yxj_dx``: ``r2dz_x = kd Rd / (1 - Rd)``, ``η = kd Rd² / ((1 - kd Rd)(1 - Rd))`` and
    ``r2yz_dx = ((sqrt(ky) + sqrt(η)) / sqrt(1 - η))² Ry / (1 - Ry)``."""
    ky = kd if ky is None else ky
    if not (kd >= 0 and ky >= 0):
        raise SpecError(f"multiples kd={kd}, ky={ky} must be non-negative", (("kd", "a multiple >= 0"),))
    rd, ry = benchmark.r2dxj_x, benchmark.r2yxj_dx
    r2dz = kd * rd / (1 - rd)
    eta = kd * rd ** 2 / ((1 - kd * rd) * (1 - rd)) if kd * rd < 1 else math.inf
    if r2dz >= 1 or not eta < 1:
        raise EstimationError(f"kd={kd} times benchmark {benchmark.name!r} implies R²(D~Z|X) >= 1; use a smaller kd")
    r2yz = ((math.sqrt(ky) + math.sqrt(eta)) / math.sqrt(1 - eta)) ** 2 * ry / (1 - ry)
    if r2yz > 1:
        raise EstimationError(f"kd={kd}, ky={ky} times benchmark {benchmark.name!r} imply R²(Y~Z|D,X) = "
                              f"{r2yz:.3g} > 1; use smaller multiples")
    return float(r2dz), float(r2yz)


@dataclass(frozen=True)
class ConfounderBound:
    """The adjusted estimate for a confounder ``kd``/``ky`` times as strong as a benchmark; ``t`` tests
    zero and the interval uses the critical t of the original residual dof, as sensemakr does."""

    benchmark: str
    kd: float
    ky: float
    r2dz_x: float
    r2yz_dx: float
    estimate: float
    se: float
    t: float
    ci_low: float
    ci_high: float

    def __post_init__(self) -> None:
        if not (0 <= self.r2dz_x < 1 and 0 <= self.r2yz_dx <= 1 and self.ci_low <= self.ci_high):
            raise EstimationError(f"bound {self.label}: partial R² outside [0, 1] or ci_low > ci_high")

    @property
    def label(self) -> str:
        return f"{self.kd:g}x {self.benchmark}" if self.kd == self.ky else f"{self.kd:g}/{self.ky:g}x {self.benchmark}"

    def to_dict(self) -> dict:
        return json_native({"label": self.label, **asdict(self)})


@dataclass(frozen=True)
class SensitivityContour:
    """Adjusted estimate and t at ``(r2dz_x[i], r2yz_dx[j])``: the data of the contour plots (section 3)."""

    r2dz_x: tuple[float, ...]
    r2yz_dx: tuple[float, ...]
    estimate: tuple[tuple[float, ...], ...]
    t: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        shape = (len(self.r2dz_x), len(self.r2yz_dx))
        if any((len(g), len(g[0]) if g else len(self.r2yz_dx)) != shape for g in (self.estimate, self.t)):
            raise EstimationError(f"contour grids must be {shape[0]} x {shape[1]}")

    def to_dict(self) -> dict:
        return json_native(asdict(self))


def contour_grid(fit: LinearFit, r2dz_x: Sequence[float] | None = None, r2yz_dx: Sequence[float] | None = None,
                 reduce: bool = True, h0: float = 0.0) -> SensitivityContour:
    """Adjusted estimates and t over a grid; by default 0 to 0.4 by 0.01 (sensemakr's window)."""
    default = np.round(np.linspace(0.0, 0.4, 41), 10)
    rd = np.asarray(default if r2dz_x is None else r2dz_x, dtype=np.float64)
    ry = np.asarray(default if r2yz_dx is None else r2yz_dx, dtype=np.float64)
    mrd, mry = np.meshgrid(rd, ry, indexing="ij")
    est, t = adjusted_estimate(fit, mrd, mry, reduce), adjusted_t(fit, mrd, mry, reduce, h0)
    return SensitivityContour(tuple(rd.tolist()), tuple(ry.tolist()), tuple(map(tuple, est.tolist())),
                              tuple(map(tuple, t.tolist())))


@dataclass(frozen=True)
class OmittedVariableBias:
    """Sensitivity of one coefficient: R²(Y~D|X), RV_q, RV_{q,α} and the benchmark bounds."""

    treatment: str
    estimate: float
    se: float
    dof: float
    r2yd_x: float
    rv_q: float
    rv_qa: float
    q: float = 1.0
    alpha: float = 0.05
    reduce: bool = True
    bounds: tuple[ConfounderBound, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bounds", tuple(self.bounds))
        if not (0 <= self.r2yd_x < 1 and 0 <= self.rv_qa <= self.rv_q < 1):
            raise EstimationError(f"sensitivity of {self.treatment!r}: need 0 <= rv_qa <= rv_q < 1, r2yd_x in [0, 1)")

    @property
    def t(self) -> float:
        return self.estimate / self.se

    def to_dict(self) -> dict:
        return json_native({**asdict(self), "t": self.t, "bounds": [b.to_dict() for b in self.bounds]})

    def summary(self) -> pd.DataFrame:
        """One row for the unadjusted estimate, then one per bound."""
        rows = [dict(label="unadjusted", r2dz_x=0.0, r2yz_dx=0.0, estimate=self.estimate, se=self.se, t=self.t)]
        rows += [{k: v for k, v in b.to_dict().items() if k not in ("benchmark", "kd", "ky")} for b in self.bounds]
        return pd.DataFrame(rows)

    def summary_text(self) -> str:
        verb = "reduce" if self.reduce else "increase"
        lines = [f"Omitted-variable-bias sensitivity of {self.treatment!r} (Cinelli & Hazlett 2020): estimate "
                 f"{self.estimate:.4g}, se {self.se:.4g}, t {self.t:.4g}, dof {self.dof:g}",
                 f"  partial R2 of treatment with outcome: {self.r2yd_x:.2%}",
                 f"  RV(q={self.q:g}) {self.rv_q:.2%}: confounders explaining less than this of the residual "
                 f"variance of both treatment and outcome cannot {verb} the estimate by {self.q:.0%}",
                 f"  RV(q={self.q:g}, alpha={self.alpha:g}) {self.rv_qa:.2%}: the same, for significance"]
        lines += [f"  bound {b.label}: R2dz.x {b.r2dz_x:.2%}, R2yz.dx {b.r2yz_dx:.2%} -> estimate {b.estimate:.4g}"
                  f" (se {b.se:.4g}, t {b.t:.3g}, CI {b.ci_low:.4g} .. {b.ci_high:.4g})" for b in self.bounds]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary_text()


def omitted_variable_bias(fit: LinearFit, benchmarks: Sequence[Benchmark] = (), kd: Sequence[float] = (1, 2, 3),
                          ky: Sequence[float] | None = None, q: float = 1.0, alpha: float = 0.05,
                          reduce: bool = True, treatment: str = "treatment") -> OmittedVariableBias:
    """Section 4's statistics and, per benchmark and multiple, section 6's bound with its adjusted values."""
    ky = tuple(kd) if ky is None else tuple(ky)
    if len(ky) != len(kd):
        raise SpecError(f"kd {tuple(kd)} and ky {ky} must have the same length", (("ky", "one multiple per kd"),))
    crit, bounds = stats.t.isf(alpha / 2, fit.dof), []
    for bench in benchmarks:
        for mult_d, mult_y in zip(kd, ky):
            rd, ry = benchmark_bounds(bench, mult_d, mult_y)
            est, se = float(adjusted_estimate(fit, rd, ry, reduce)), float(adjusted_se(fit, rd, ry))
            bounds.append(ConfounderBound(bench.name, float(mult_d), float(mult_y), rd, ry, est, se, est / se,
                                          est - crit * se, est + crit * se))
    return OmittedVariableBias(treatment, fit.estimate, fit.se, fit.dof, partial_r2(fit.t, fit.dof),
                               robustness_value(fit.t, fit.dof, q), robustness_value(fit.t, fit.dof, q, alpha),
                               q, alpha, reduce, tuple(bounds))


# Approximate conversions to a risk ratio (VanderWeele & Ding 2017, section "E-values for
# other effect measures" and its table; the standardized mean difference via
# RR ≈ exp(0.91 d), after Hasselblad & Hedges 1995).
CONVERSIONS = {
    "rr": "risk ratio, used as is",
    "or-rare": "odds ratio, outcome prevalence < 15%: RR ≈ OR",
    "or": "odds ratio, common outcome: RR ≈ sqrt(OR)",
    "hr-rare": "hazard ratio, outcome prevalence < 15%: RR ≈ HR",
    "hr": "hazard ratio, common outcome: RR ≈ (1 - 0.5^sqrt(HR)) / (1 - 0.5^sqrt(1/HR))",
    "smd": "standardized mean difference d: RR ≈ exp(0.91 d), interval exp(0.91 d ± 1.78 se)",
}
_TO_RR = {"or": math.sqrt, "smd": lambda d: math.exp(0.91 * d),
          "hr": lambda h: (1 - 0.5 ** math.sqrt(h)) / (1 - 0.5 ** math.sqrt(1 / h))}


def e_value_of(rr: float) -> float:
    """``RR + sqrt(RR (RR - 1))``, of ``1 / RR`` when RR < 1 (VanderWeele & Ding 2017): the least risk ratio
    a confounder needs with treatment and outcome to explain the association away, where Ding &
    VanderWeele's (2016) bounding factor ``E² / (2E - 1)`` equals RR."""
    if not (rr > 0 and math.isfinite(rr)):
        raise EstimationError(f"a risk ratio must be positive and finite, got {rr}")
    rr = 1 / rr if rr < 1 else rr
    return rr + math.sqrt(rr * (rr - 1))


@dataclass(frozen=True)
class EValue:
    """E-values of an estimate and of its interval limit nearest the null (1.0 when the interval covers
    it, None without one); ``conversion`` names the approximation to a risk ratio."""

    measure: str
    estimate: float
    risk_ratio: float
    point: float
    ci: float | None
    conversion: str

    def __post_init__(self) -> None:
        if self.measure not in CONVERSIONS or not (self.point >= 1 and (self.ci is None or 1 <= self.ci <= self.point)):
            raise EstimationError(f"E-value ({self.measure!r}): need 1 <= ci <= point, got {self.ci}, {self.point}")

    def to_dict(self) -> dict:
        return json_native(asdict(self))


def e_value(estimate: float, lower: float | None = None, upper: float | None = None, *, measure: str = "rr",
            se: float | None = None) -> EValue:
    """E-value of a ratio (``rr``, ``or``/``or-rare``, ``hr``/``hr-rare``) and its interval, or of a standardized
    mean difference (``smd``) with optional ``se``; the interval's uses the limit on the null's side."""
    if measure not in CONVERSIONS:
        raise SpecError(f"measure {measure!r} is unknown; expected one of {sorted(CONVERSIONS)}",
                        (("measure", f"one of {sorted(CONVERSIONS)}"),))
    to_rr = _TO_RR.get(measure, float)
    if measure == "smd":
        if lower is not None or upper is not None:
            raise SpecError("give a standardized mean difference's uncertainty as se", (("se", "a positive number"),))
        lower, upper = (None, None) if se is None else (estimate - 1.78 / 0.91 * se, estimate + 1.78 / 0.91 * se)
    rr = to_rr(estimate)
    if (lower is not None and to_rr(lower) > rr) or (upper is not None and to_rr(upper) < rr):
        raise EstimationError(f"interval ({lower}, {upper}) does not contain the estimate {estimate}")
    near = None if (lower if rr >= 1 else upper) is None else to_rr(lower if rr >= 1 else upper)  # null's side
    ci = None if near is None else (1.0 if min(near, rr) <= 1 <= max(near, rr) else e_value_of(near))
    return EValue(measure, float(estimate), float(rr), e_value_of(rr), ci, CONVERSIONS[measure])
