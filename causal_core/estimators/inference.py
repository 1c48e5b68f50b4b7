"""Uncertainty shared by the moment estimators: bootstrap replicates, intervals, results.

An estimator written as ``statistic(totals)`` — a vectorised function from ``(B, m)``
moment totals to ``(B,)`` effects — gets its point estimate from the column sums of the
per-bucket moments and its bootstrap from reweighted totals, with no second look at the
rows (DESIGN.md, "The engine"):

* ``kind`` "poisson" / "multinomial": the bucket bootstrap, ``W @ M`` with (B, K) bucket
  weights drawn on the driver (Chamandy et al. 2012; a cluster bootstrap over buckets);
* ``kind`` "row-poisson": the exact row-level Poisson bootstrap (Hanley & MacGibbon
  2006), ``engine.replicate_sums`` — one more pass, to check the bucket bootstrap.

``ci_method`` "bootstrap-percentile" (Efron & Tibshirani 1993, ch. 13) is the default
when replicates > 0, "bootstrap-normal" uses the bootstrap standard error, and
"analytic" the estimator's sandwich / delta-method standard error. The reported ``se``
is the one behind the interval; both are kept in the diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, ModelRoles
from causal_core.estimators.results import CI_METHODS, EstimateResult
from causal_core.moments.bootstrap import (
    BOOTSTRAP_KINDS, ROW_POISSON, bootstrap_se, bucket_weights, normal_interval, percentile_interval, two_sided_p,
)
from causal_core.moments.expr import Expr


def check_options(bootstrap: BootstrapOptions, ci_method: str | None, level: float | None) -> None:
    """Validate an estimator's stored options at fit time (``__init__`` only stores)."""
    if bootstrap.kind not in BOOTSTRAP_KINDS:
        raise EstimationError(f"bootstrap.kind {bootstrap.kind!r} is unknown; expected one of {BOOTSTRAP_KINDS}")
    if bootstrap.replicates < 0:
        raise EstimationError(f"bootstrap.replicates must be >= 0, got {bootstrap.replicates}")
    if ci_method is not None and ci_method not in CI_METHODS:
        raise EstimationError(f"ci_method {ci_method!r} is unknown; expected one of {CI_METHODS}")
    if ci_method is not None and ci_method.startswith("bootstrap") and bootstrap.replicates == 0:
        raise EstimationError(f"ci_method {ci_method!r} needs bootstrap.replicates > 0")
    if level is not None and not 0 < level < 1:
        raise EstimationError(f"level must lie in (0, 1), got {level}")


def resolve_ci_method(ci_method: str | None, bootstrap: BootstrapOptions) -> str:
    if ci_method is not None:
        return ci_method
    if bootstrap.replicates > 0:
        return "bootstrap-normal" if bootstrap.interval == "normal" else "bootstrap-percentile"
    return "analytic"


def replicate_totals(engine, exprs: Sequence[Expr], moments: np.ndarray, bootstrap: BootstrapOptions) -> np.ndarray:
    """(B, m) bootstrap moment totals: bucket-reweighted, or exact row-level Poisson."""
    if bootstrap.kind == ROW_POISSON:
        return np.asarray(engine.replicate_sums(list(exprs), bootstrap.replicates, bootstrap.seed), dtype=float)
    weights = bucket_weights(bootstrap.replicates, moments.shape[0],
                             seed=np.random.SeedSequence(bootstrap.seed), kind=bootstrap.kind)
    return weights @ moments


def bootstrap_replicates(engine, exprs: Sequence[Expr], moments: np.ndarray,
                         statistic: Callable[[np.ndarray], np.ndarray], bootstrap: BootstrapOptions) -> np.ndarray:
    """The (B,) replicate statistics; an empty array when the bootstrap is off."""
    if bootstrap.replicates == 0:
        return np.empty(0)
    totals = replicate_totals(engine, exprs, moments, bootstrap)
    with np.errstate(all="ignore"):
        return np.asarray(statistic(totals), dtype=float)


@dataclass(frozen=True)
class BucketStatistic:
    """A fitted estimate as a function of bucket weights: the (K, m) per-bucket moments its
    bootstrap reweights and the vectorised ``statistic`` of their totals. Refuters that
    re-estimate on subsets of buckets (``data_subset``) call it with 0/1 weights: no pass."""

    moments: np.ndarray
    statistic: Callable[[np.ndarray], np.ndarray]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """(S,) estimates for (S, K) bucket weights."""
        with np.errstate(all="ignore"):
            return np.asarray(self.statistic(np.asarray(weights, dtype=float) @ self.moments), dtype=float)


def fit_replicates(owner, engine, exprs: Sequence[Expr], moments: np.ndarray,
                   statistic: Callable[[np.ndarray], np.ndarray], bootstrap: BootstrapOptions) -> np.ndarray:
    """:func:`bootstrap_replicates`, keeping the fit as ``owner.bucket_statistic_`` (a
    :class:`BucketStatistic`) for the refuters that reweight buckets."""
    owner.bucket_statistic_ = BucketStatistic(np.asarray(moments, dtype=float), statistic)
    return bootstrap_replicates(engine, exprs, moments, statistic, bootstrap)


def summarize(estimator: str, design: ModelRoles, *, estimate: float, analytic_se: float, n: int,
              replicates: np.ndarray, bootstrap: BootstrapOptions, ci_method: str | None,
              level: float | None, diagnostics: Mapping[str, Any], contrast: str | None = None) -> EstimateResult:
    """The :class:`EstimateResult`: interval by ``ci_method``, both standard errors kept."""
    method = resolve_ci_method(ci_method, bootstrap)
    lvl = bootstrap.level if level is None else level
    finite = replicates[np.isfinite(replicates)] if len(replicates) else replicates
    boot_se = bootstrap_se(replicates) if len(replicates) else float("nan")
    diag = dict(diagnostics)
    diag.update(analytic_se=float(analytic_se), bootstrap_se=boot_se, bootstrap_replicates=int(len(replicates)),
                bootstrap_failed=int(len(replicates) - len(finite)),
                bootstrap_kind=bootstrap.kind if len(replicates) else None)
    # Every result carries its list of warnings (empty when there are none), so readers —
    # the study's comparison, the report, the estimator contract — need not test for the key.
    warns = diag.setdefault("warnings", [])
    if len(replicates) and len(finite) < 0.9 * len(replicates):
        warns.append(f"{len(replicates) - len(finite)} of {len(replicates)} bootstrap replicates were degenerate")
    if method == "analytic":
        se = float(analytic_se)
        lo, hi = normal_interval(estimate, se, lvl)
    elif method == "bootstrap-normal":
        se = boot_se
        lo, hi = normal_interval(estimate, se, lvl)
    else:
        se = boot_se
        lo, hi = percentile_interval(replicates, lvl)
    # The study's text for the contrast (design.contrast) names it alike for every estimator;
    # the estimator's own words serve a design built without one.
    text = design.contrast or contrast
    extra = {"contrast": text} if text else {}
    return EstimateResult(
        estimator=estimator, strategy=design.strategy, metric=design.metric, target=design.target,
        segment=design.segment,
        estimate=float(estimate), se=se, ci_low=lo, ci_high=hi, ci_method=method,
        p_value=two_sided_p(estimate, se), n=int(n), level=lvl, diagnostics=diag,
        replicates=tuple(float(r) for r in replicates), **extra)


def coefficient_row(coef: float, se: float) -> dict[str, float]:
    """A coefficient-table row: estimate, robust se, z statistic, two-sided normal p."""
    return {"coef": float(coef), "se": float(se), "z": float(coef / se) if se > 0 else float("nan"),
            "p_value": two_sided_p(coef, se)}
