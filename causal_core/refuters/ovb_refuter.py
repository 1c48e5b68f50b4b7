"""The ``sensitivity`` refuter: omitted-variable-bias sensitivity of an ``ols`` estimate.

Cinelli & Hazlett (2020), "Making sense of sensitivity: extending omitted variable bias",
*JRSS-B* 82(1), 39-67, in their setting: the additive linear model of the outcome on
(1, treatment, covariates), fitted from the Gram matrix of ``(1, d, x_1..x_p, y)`` over the
kept rows (:func:`causal_core.refuters.sensitivity.ols_from_gram`). With absorbed fixed effects
the Gram is the within Gram and the residual degrees of freedom lose the G - 1 absorbed
intercepts (:class:`~causal_core.estimators.linear_model_gram.LinearModelGram`); partial R² are
then within the fixed effects' levels, as in the regression with their dummies (the paper's
Darfur example absorbs village this way). Benchmarks are graph
variables; each stands for all the model terms that encode it (a category's dummies, a
polynomial's powers), as one group (section 6.1).

Beside them, for a model without absorbed fixed effects: the E-value (VanderWeele & Ding
2017) of the effect standardized by the outcome's standard deviation, through their
conversion of a standardized mean difference ``d`` to a risk ratio, ``RR ≈ exp(0.91 d)``
(interval ``exp(0.91 d ± 1.78 se_d)``) — the risk ratio a confounder would need with both
treatment and outcome to explain the effect (its interval) away.

Pass rule: the estimate passes when RV_{q,α} exceeds both partial R² — with the treatment
and with the outcome — of a confounder as strong as the strongest benchmark (the kd = ky = 1
bound of section 6): such a confounder cannot bring the estimate to a ``(1 - q)`` fraction
of itself at level α. Without benchmarks there is no yardstick and ``passed`` is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import ClassVar

from causal_core.errors import EstimationError
from causal_core.estimators.linear_model_gram import LinearModelGram, gram_names
from causal_core.refuters.registry import Refutation, Refuter, register_refuter
from causal_core.refuters.sensitivity import (
    Benchmark, OmittedVariableBias, benchmark_bounds, benchmark_from_gram, e_value, ols_from_gram,
    omitted_variable_bias,
)


def sensitivity_from_gram(model: LinearModelGram, *, benchmarks: Sequence[str] = (),
                          kd: Sequence[float] = (1, 2, 3), ky: Sequence[float] | None = None, q: float = 1.0,
                          alpha: float = 0.05) -> tuple[OmittedVariableBias, tuple[dict, ...]]:
    """:func:`causal_core.refuters.sensitivity.omitted_variable_bias` of the treatment coefficient in
    the additive OLS of ``model``, each benchmark variable's model terms taken as one group, and the
    multiples that admit no bound (a confounder that strong would need a partial R² above 1, which
    section 6's bounds cannot express: the benchmark is stronger than any explainable confounder)."""
    fit = ols_from_gram(model.gram, model.names, model.outcome, model.treatment, model.covariates,
                        absorbed=model.absorbed)
    treatment = dict(model.labels).get(model.treatment, model.treatment)
    kd = tuple(kd)
    ky = kd if ky is None else tuple(ky)
    base = omitted_variable_bias(fit, (), kd=kd, ky=ky, q=q, alpha=alpha, treatment=treatment)
    bounds, infeasible = [], []
    for bench in benchmark_groups(model, benchmarks):
        feasible = []
        for mult_d, mult_y in zip(kd, ky):
            try:
                benchmark_bounds(bench, mult_d, mult_y)
                feasible.append((mult_d, mult_y))
            except EstimationError as exc:
                infeasible.append({"benchmark": bench.name, "kd": float(mult_d), "ky": float(mult_y),
                                   "reason": str(exc)})
        if feasible:
            bounds += omitted_variable_bias(fit, (bench,), kd=[d for d, _ in feasible], ky=[y for _, y in feasible],
                                            q=q, alpha=alpha, treatment=treatment).bounds
    return replace(base, bounds=tuple(bounds)), tuple(infeasible)


def standardized_e_value(model: LinearModelGram, estimate: float, se: float) -> dict | None:
    """The E-value of ``estimate`` (SE ``se``) divided by the outcome's sample standard deviation
    (from the Gram), as a standardized mean difference; None with absorbed fixed effects (the
    Gram is then within groups) or a constant outcome."""
    if model.absorbed:
        return None
    g, j = model.gram, model.names.index(model.outcome)
    n = g[0, 0]
    var = (g[j, j] - g[0, j] ** 2 / n) / (n - 1) if n > 1 else 0.0
    if not var > 0:
        return None
    sd = float(var ** 0.5)
    return {**e_value(estimate / sd, measure="smd", se=se / sd).to_dict(), "outcome_sd": sd}


def benchmark_groups(model: LinearModelGram, benchmarks: Sequence[str]) -> list[Benchmark]:
    """One :class:`Benchmark` per graph variable: the partial R² of all its model terms together."""
    groups = []
    for variable in benchmarks:
        terms = model.terms_of(variable)
        if not terms:
            encoded = sorted({dict(model.sources).get(c, c) for c in model.covariates})
            raise EstimationError(f"refuters.sensitivity.benchmarks: {variable!r} has no term in the outcome "
                                  f"model, whose covariates encode {encoded}")
        groups.append(benchmark_from_gram(model.gram, model.names, model.outcome, model.treatment,
                                          model.covariates, terms, label=variable))
    return groups


def passes(ovb: OmittedVariableBias, benchmarks: Sequence) -> bool | None:
    """The pass rule of the module docstring; None without benchmarks."""
    if not benchmarks:
        return None
    strongest = 0.0
    for bench in benchmarks:
        try:
            strongest = max(strongest, *benchmark_bounds(bench, 1.0, 1.0))
        except EstimationError:
            return False  # a confounder as strong as this benchmark is beyond any partial R² < 1
    return bool(ovb.rv_qa > strongest)


@register_refuter
class SensitivityRefuter(Refuter):
    """Omitted-variable-bias sensitivity (Cinelli & Hazlett 2020) of ``ols`` estimates.

    ``benchmarks``: graph variables whose model terms serve as benchmark covariates;
    ``kd``/``ky``: the multiples of each benchmark's strength with treatment / outcome
    (``ky`` defaults to ``kd``); ``q``: the fraction of the estimate to explain away;
    ``alpha``: the level of RV_{q,α}."""

    name: ClassVar[str] = "sensitivity"
    refutes: ClassVar[frozenset[str]] = frozenset({"ols"})
    graph_variable_options: ClassVar[tuple[str, ...]] = ("benchmarks",)

    def __init__(self, *, benchmarks: Sequence[str] = (), kd: Sequence[float] = (1, 2, 3),
                 ky: Sequence[float] | None = None, q: float = 1.0, alpha: float = 0.05) -> None:
        self.benchmarks = benchmarks
        self.kd = kd
        self.ky = ky
        self.q = q
        self.alpha = alpha

    def refute(self, model: LinearModelGram, *, estimator: str, metric: str, segment: str) -> Refutation:
        """The refutation of ``estimator``'s estimate: ``new_effect`` is the adjusted estimate at
        the bound with the largest bias (None without benchmarks), ``passed`` the pass rule."""
        benchmarks = (self.benchmarks,) if isinstance(self.benchmarks, str) else tuple(self.benchmarks)
        ovb, infeasible = sensitivity_from_gram(model, benchmarks=benchmarks, kd=_floats(self.kd),
                                                ky=None if self.ky is None else _floats(self.ky),
                                                q=float(self.q), alpha=float(self.alpha))
        groups = benchmark_groups(model, benchmarks)
        strongest = max(ovb.bounds, key=lambda b: abs(ovb.estimate - b.estimate), default=None)
        strengths = {g.name: {"r2dxj_x": g.r2dxj_x, "r2yxj_dx": g.r2yxj_dx} for g in groups}
        return Refutation(self.name, estimator, metric, segment,
                          new_effect=None if strongest is None else strongest.estimate, p_value=None,
                          passed=passes(ovb, groups),
                          details={**ovb.to_dict(), "infeasible_bounds": list(infeasible), "benchmarks": strengths,
                                   "e_value": standardized_e_value(model, ovb.estimate, ovb.se)})


def _floats(values: float | Sequence[float]) -> tuple[float, ...]:
    return (float(values),) if isinstance(values, (int, float)) else tuple(float(v) for v in values)


__all__ = ("LinearModelGram", "SensitivityRefuter", "benchmark_groups", "gram_names", "passes",
           "sensitivity_from_gram")
