"""The simulation refuters: placebo treatment, random common cause, dummy outcome, data
subset and an unobserved common cause, re-solved from the moments the estimate already has.

DoWhy's refuters (Sharma & Kiciman 2020, "DoWhy: an end-to-end library for causal
inference", section 4) refit the estimator on a changed data set, once per simulation.
Here the change is made in the per-bucket moments, so a simulation costs a few
microseconds on the driver and no pass over the rows:

* ``placebo_treatment``, ``random_common_cause``, ``dummy_outcome`` (``ols``): the random
  variable is drawn per **bucket** — a random set of units, the design's resampling unit
  (DESIGN.md, "The engine") — so within bucket k it is a constant c_k, and every product
  with it is c_k times a sum the grouped pass of ``ols`` already holds: ``sum c v = c_k
  S_k(v)``, ``sum c² = c_k² n_k``. A per-row draw would need one moment column per
  simulation and product (100 simulations x 28 products for five covariates: 2,800 sums per
  row). Buckets are random hash groups, so a bucket-level random treatment is a cluster-
  randomised one over about a thousand clusters: independent of every variable, with the
  treatment's share of treated rows in expectation.
* ``data_subset`` (every estimator): subsets of buckets, each estimate's
  ``bucket_statistic_`` evaluated at 0/1 bucket weights (scaled by 1 / fraction).
* ``unobserved_common_cause`` (``ols``): a confounder of given partial R² with the treatment
  and the outcome, in closed form (Cinelli & Hazlett 2020, section 4 — DoWhy's
  ``add_unobserved_common_cause`` with ``simulation_method="linear-partial-R2"`` computes
  the same bias), over a grid of strengths.

Pass rules, each at level ``alpha`` (0.05 by default), with DoWhy's two-sided percentile
p-value of a value among the simulated effects (``percentile_p``):

* placebo_treatment: passes when the estimate is unlike the placebo effects (p of the
  estimate among them <= alpha) — a random treatment does not reproduce it;
* dummy_outcome: passes when zero is typical of the dummy effects (p of 0 > alpha) — the
  estimator finds no effect on an outcome that has none;
* random_common_cause, data_subset: pass when the estimate is typical of the new effects
  (p of the estimate > alpha) — an irrelevant covariate or a subset does not move it;
* unobserved_common_cause: passes when, at the strongest given confounder, the adjusted
  interval still excludes zero on the estimate's side.

A random treatment or outcome is independent of every variable, so a consistent estimator
gives it an effect of zero on any data: placebo and dummy outcome check the estimation (an
estimator that finds effects where none can exist), not the graph; the hidden-confounder
refuters (this module's last one, and ``sensitivity``) check the data's story.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np
from scipy import stats

from causal_core.errors import EstimationError
from causal_core.estimators.moment_batch import unpack_symmetric
from causal_core.estimators.ols_gram import Layout, effect_statistic
from causal_core.refuters.registry import FittedEstimate, Refutation, Refuter, register_refuter
from causal_core.refuters.sensitivity import LinearFit, adjusted_estimate, adjusted_se, contour_grid

RANDOM_COVARIATE = "__random_common_cause"


def percentile_p(value: float, simulations: np.ndarray) -> float:
    """DoWhy's two-sided percentile p-value of ``value`` among ``simulations``:
    ``2 min(h, 1 - h)``, ``h`` the share above it (ties count half)."""
    sims = np.asarray(simulations, dtype=float)
    h = float(np.mean((sims > value) + 0.5 * (sims == value)))
    return 2.0 * min(h, 1.0 - h)


def _summary(effects: np.ndarray, estimate: float) -> dict:
    finite = effects[np.isfinite(effects)]
    q = np.quantile(finite, [0.025, 0.5, 0.975]) if len(finite) else [np.nan] * 3
    return {"simulations": int(len(effects)), "failed": int(len(effects) - len(finite)),
            "mean": float(np.mean(finite)) if len(finite) else None,
            "sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else None,
            "q025": float(q[0]), "median": float(q[1]), "q975": float(q[2]), "estimate": float(estimate),
            "effects": [float(e) for e in effects]}


def _distribution(refuter: Refuter, fit: FittedEstimate, effects: np.ndarray, *, against: float,
                  passes_when_typical: bool, alpha: float) -> Refutation:
    finite = effects[np.isfinite(effects)]
    if len(finite) < max(2, 0.5 * len(effects)):
        return Refutation(refuter.name, fit.estimator, fit.metric, fit.segment,
                          details={"reason": f"{len(effects) - len(finite)} of {len(effects)} simulations "
                                             "could not be estimated", **_summary(effects, fit.estimate)})
    p = percentile_p(against, finite)
    passed = p > alpha if passes_when_typical else p <= alpha
    return Refutation(refuter.name, fit.estimator, fit.metric, fit.segment, new_effect=float(np.mean(finite)),
                      p_value=p, passed=bool(passed),
                      details={**_summary(effects, fit.estimate), "alpha": alpha, "tested_value": float(against)})


def _check(simulations: int, alpha: float) -> None:
    if not isinstance(simulations, int) or simulations < 2:
        raise EstimationError(f"simulations must be an integer >= 2, got {simulations!r}")
    if not 0 < alpha < 1:
        raise EstimationError(f"alpha must lie in (0, 1), got {alpha}")


# --- ols: bucket-constant variables in the grouped Gram -------------------------------------------

def _ols_parts(fit: FittedEstimate) -> tuple[Layout, np.ndarray]:
    model = fit.fitted
    layout, grouped = getattr(model, "layout_", None), getattr(model, "grouped_", None)
    if layout is None or grouped is None:
        raise EstimationError(f"{fit.estimator}: no grouped moments to simulate from")
    return layout, unpack_symmetric(grouped, len(layout.base))  # (K, 3, mb, mb)


def _with_constant(base: np.ndarray, c: np.ndarray, g: np.ndarray, index: int) -> np.ndarray:
    """Per-simulation grouped Gram totals ``(S, 3, m, m)`` in which variable ``index`` is the
    bucket constant ``c`` (S, K): its products are ``sum_k c_sk G_k[0, :]`` (c times the
    intercept's row of bucket k's Gram ``g`` (K, 3, m, m)), its square ``sum_k c_sk² n_k``.
    ``base`` (S or 1, 3, m, m) holds the other entries."""
    out = np.array(np.broadcast_to(base, (c.shape[0],) + base.shape[1:]))
    rows = np.einsum("sk,kaj->saj", c, g[:, :, 0, :])
    out[..., index, :] = rows
    out[..., :, index] = rows
    out[..., index, index] = np.einsum("sk,ka->sa", c * c, g[:, :, 0, 0])
    return out


def _insert_before_outcome(g: np.ndarray) -> np.ndarray:
    """Gram matrices with a zero variable inserted before the last (the outcome)."""
    m = g.shape[-1]
    out = np.zeros(g.shape[:-2] + (m + 1, m + 1))
    keep = np.array([*range(m - 1), m])
    out[..., keep[:, None], keep[None, :]] = g
    return out


def _effects(layout: Layout, totals: np.ndarray) -> np.ndarray:
    """(S,) effects from (S, 3, m, m) per-simulation grouped Gram totals of ``layout.base``:
    the ols statistic is a function of the totals, so each simulation is one "bucket"."""
    rows, cols = np.triu_indices(totals.shape[-1])
    with np.errstate(all="ignore"):
        return np.asarray(effect_statistic(layout)(layout.assemble(totals[..., rows, cols])), dtype=float)


def placebo_effects(fit: FittedEstimate, simulations: int, rng: np.random.Generator) -> np.ndarray:
    """The ols effect with the treatment replaced by a bucket-level random one: Bernoulli with
    the treated share for a 0/1 treatment, else normal with its mean and sd (additive model)."""
    layout, g = _ols_parts(fit)
    pooled = g.sum(axis=1)  # (K, m, m): all arms
    k, n = pooled.shape[0], pooled[:, 0, 0].sum()
    if g[:, 2, 0, 0].sum() == 0:  # 0/1 treatment: the buckets drawn treated form arm 1
        draw = (rng.random((simulations, k)) < pooled[:, 0, 1].sum() / n).astype(float)
        totals = np.zeros((simulations, 3) + pooled.shape[1:])
        for arm, weights in ((0, 1.0 - draw), (1, draw)):
            arm_total = np.einsum("sk,kij->sij", weights, pooled)
            totals[:, arm] = _with_constant(arm_total[:, None], np.full((simulations, k), float(arm)) * weights,
                                            pooled[:, None], 1)[:, 0]
        return _effects(layout, totals)
    mean = pooled[:, 0, 1].sum() / n
    sd = np.sqrt(max(pooled[:, 1, 1].sum() / n - mean ** 2, 0.0))
    base = np.zeros((1, 3) + pooled.shape[1:])
    base[0, 2] = pooled.sum(axis=0)
    only_level_2 = np.zeros_like(g)
    only_level_2[:, 2] = pooled
    return _effects(layout, _with_constant(base, rng.normal(mean, sd, (simulations, k)), only_level_2, 1))


def random_cause_effects(fit: FittedEstimate, simulations: int, rng: np.random.Generator) -> np.ndarray:
    """The ols effect with a bucket-level standard normal covariate added to the adjustment."""
    layout, g = _ols_parts(fit)
    widened = _insert_before_outcome(g)  # (K, 3, m + 1, m + 1), the new covariate at m - 1
    design = replace(layout.design, covariates=(*layout.design.covariates, RANDOM_COVARIATE))
    new = Layout(design, interactions=layout.interactions, shift=layout.shift)
    c = rng.standard_normal((simulations, g.shape[0]))
    return _effects(new, _with_constant(widened.sum(axis=0)[None], c, widened, g.shape[-1] - 1))


def dummy_outcome_effects(fit: FittedEstimate, simulations: int, rng: np.random.Generator) -> np.ndarray:
    """The ols effect on a bucket-level normal outcome with the outcome's sd, independent of all."""
    layout, g = _ols_parts(fit)
    pooled = g.sum(axis=(0, 1))
    y = g.shape[-1] - 1
    n = pooled[0, 0]
    sd = np.sqrt(max(pooled[y, y] / n - (pooled[0, y] / n) ** 2, 0.0)) or 1.0
    noise = rng.normal(0.0, sd, (simulations, g.shape[0]))
    return _effects(layout, _with_constant(g.sum(axis=0)[None], noise, g, y))


class _Simulating(Refuter):
    refutes: ClassVar[frozenset[str] | None] = frozenset({"ols"})

    def __init__(self, *, simulations: int = 100, alpha: float = 0.05) -> None:
        self.simulations = simulations
        self.alpha = alpha


@register_refuter
class PlaceboTreatment(_Simulating):
    """The treatment replaced by a random one with the same share; see the module docstring."""

    name: ClassVar[str] = "placebo_treatment"

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        _check(self.simulations, self.alpha)
        effects = placebo_effects(fit, self.simulations, fit.rng(self.name))
        return _distribution(self, fit, effects, against=fit.estimate, passes_when_typical=False, alpha=self.alpha)


@register_refuter
class RandomCommonCause(_Simulating):
    """An independent random covariate added to the adjustment; see the module docstring."""

    name: ClassVar[str] = "random_common_cause"

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        _check(self.simulations, self.alpha)
        effects = random_cause_effects(fit, self.simulations, fit.rng(self.name))
        return _distribution(self, fit, effects, against=fit.estimate, passes_when_typical=True, alpha=self.alpha)


@register_refuter
class DummyOutcome(_Simulating):
    """The outcome replaced by noise independent of the treatment; see the module docstring."""

    name: ClassVar[str] = "dummy_outcome"

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        _check(self.simulations, self.alpha)
        effects = dummy_outcome_effects(fit, self.simulations, fit.rng(self.name))
        return _distribution(self, fit, effects, against=0.0, passes_when_typical=True, alpha=self.alpha)


@register_refuter
class DataSubset(Refuter):
    """Re-estimation on random subsets of ``fraction`` of the buckets, for every estimator."""

    name: ClassVar[str] = "data_subset"
    refutes: ClassVar[frozenset[str] | None] = None

    def __init__(self, *, simulations: int = 100, fraction: float = 0.8, alpha: float = 0.05) -> None:
        self.simulations = simulations
        self.fraction = fraction
        self.alpha = alpha

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        _check(self.simulations, self.alpha)
        if not 0 < self.fraction < 1:
            raise EstimationError(f"data_subset: fraction must lie in (0, 1), got {self.fraction}")
        statistic = getattr(fit.fitted, "bucket_statistic_", None)
        if statistic is None:
            raise EstimationError(f"{fit.estimator}: no per-bucket moments to subset")
        k = statistic.moments.shape[0]
        keep = max(1, int(round(self.fraction * k)))
        rng = fit.rng(self.name)
        weights = np.zeros((self.simulations, k))
        for row in weights:
            row[rng.choice(k, keep, replace=False)] = k / keep
        effects = statistic(weights)
        ref = _distribution(self, fit, effects, against=fit.estimate, passes_when_typical=True, alpha=self.alpha)
        return replace(ref, details={**ref.details, "fraction": float(self.fraction), "buckets_kept": keep})


@register_refuter
class UnobservedCommonCause(Refuter):
    """A confounder explaining ``r2dz_x`` of the treatment's and ``r2yz_dx`` of the outcome's
    residual variance (partial R², each a list: a grid), in closed form for ols."""

    name: ClassVar[str] = "unobserved_common_cause"
    refutes: ClassVar[frozenset[str] | None] = frozenset({"ols"})

    def __init__(self, *, r2dz_x: float | list = (0.01, 0.02, 0.05, 0.1),
                 r2yz_dx: float | list = (0.01, 0.02, 0.05, 0.1), alpha: float = 0.05) -> None:
        self.r2dz_x = r2dz_x
        self.r2yz_dx = r2yz_dx
        self.alpha = alpha

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        from causal_core.refuters.ovb_refuter import sensitivity_from_gram

        if fit.linear_gram is None:
            raise EstimationError(f"{fit.estimator}: no linear-model Gram for the unobserved common cause")
        rd, ry = (_grid(v, name) for v, name in ((self.r2dz_x, "r2dz_x"), (self.r2yz_dx, "r2yz_dx")))
        base, _ = sensitivity_from_gram(fit.linear_gram)
        linear = LinearFit(base.estimate, base.se, base.dof)
        crit = float(stats.t.isf(self.alpha / 2, linear.dof))
        strongest = (max(rd), max(ry))
        est = float(adjusted_estimate(linear, *strongest))
        se = float(adjusted_se(linear, *strongest))
        low, high = est - crit * se, est + crit * se
        passed = bool(low > 0 if base.estimate > 0 else high < 0)
        grid = contour_grid(linear, rd, ry)
        return Refutation(self.name, fit.estimator, fit.metric, fit.segment, new_effect=est, p_value=None,
                          passed=passed,
                          details={"coefficient": base.estimate, "se": base.se, "dof": base.dof,
                                   "strongest": {"r2dz_x": strongest[0], "r2yz_dx": strongest[1], "estimate": est,
                                                 "se": se, "ci_low": low, "ci_high": high},
                                   "grid": grid.to_dict(), "alpha": self.alpha,
                                   "model": "additive ols of the outcome on (1, treatment, covariates)"})


def _grid(value: float | list, name: str) -> list[float]:
    values = [value] if isinstance(value, (int, float)) else list(value)
    if not values or not all(isinstance(v, (int, float)) and 0 <= v < 1 for v in values):
        raise EstimationError(f"unobserved_common_cause: {name} must be partial R² values in [0, 1), got {value!r}")
    return [float(v) for v in values]


__all__ = ("DataSubset", "DummyOutcome", "PlaceboTreatment", "RandomCommonCause", "UnobservedCommonCause",
           "dummy_outcome_effects", "percentile_p", "placebo_effects", "random_cause_effects")
