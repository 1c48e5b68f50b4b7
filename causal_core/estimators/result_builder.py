"""From an estimate, its analytic SE and bucket-bootstrap replicates to an EstimateResult."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, Design
from causal_core.moments.bootstrap import (bootstrap_se, bucket_weights, normal_interval, percentile_interval,
                                           two_sided_p)
from causal_core.results import EstimateResult

INTERVALS = ("percentile", "normal")


def replicate_weights(options: BootstrapOptions, n_buckets: int) -> np.ndarray | None:
    """The (B, K) bucket weights for ``options``, or None when the bootstrap is off."""
    if options.replicates <= 0:
        return None
    if options.interval not in INTERVALS:
        raise EstimationError(f"bootstrap interval {options.interval!r} is unknown; expected one of {INTERVALS}")
    return bucket_weights(options.replicates, n_buckets, seed=options.seed, kind=options.kind)


def make_result(*, estimator: str, design: Design, estimate: float, se: float, n: int,
                options: BootstrapOptions, replicates: np.ndarray | None,
                diagnostics: Mapping[str, Any]) -> EstimateResult:
    """Assemble the result.

    ``se`` is the analytic (sandwich / influence-function) standard error when there is
    one (else NaN, and the bootstrap SE takes its place). The interval is the bootstrap
    percentile interval (Efron & Tibshirani 1993, ch. 13) or the normal interval with the
    bootstrap SE, per ``options.interval``; without a bootstrap it is the normal interval
    with the analytic SE. The p-value is the normal two-sided p-value of ``estimate / se``.
    """
    diag = dict(diagnostics)
    level = options.level
    if replicates is None:
        lo, hi = normal_interval(estimate, se, level)
        method, reps = "analytic", ()
    else:
        reps_arr = np.asarray(replicates, dtype=float)
        boot_se = bootstrap_se(reps_arr)
        diag.update(bootstrap_se=boot_se, bootstrap_replicates=int(len(reps_arr)),
                    bootstrap_failed=int(np.sum(~np.isfinite(reps_arr))), bootstrap_kind=options.kind,
                    bootstrap_seed=options.seed)
        if np.isfinite(se):
            diag["analytic_ci"] = normal_interval(estimate, se, level)
        else:
            se = boot_se
        if options.interval == "percentile":
            lo, hi = percentile_interval(reps_arr, level)
            method = "bootstrap-percentile"
        else:
            lo, hi = normal_interval(estimate, boot_se, level)
            method = "bootstrap-normal"
        reps = tuple(float(r) for r in reps_arr)
    return EstimateResult(
        estimator=estimator, strategy=design.strategy, metric=design.metric, target=design.target,
        estimate=float(estimate), se=float(se), ci_low=lo, ci_high=hi, ci_method=method,
        p_value=two_sided_p(float(estimate), float(se)), n=int(n), level=level,
        diagnostics=diag, replicates=reps)
