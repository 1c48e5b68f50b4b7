"""Interval coverage over repeated simulations, on the pandas engine.

    .venv/bin/python bench/coverage.py                  # every case, 400 datasets each
    .venv/bin/python bench/coverage.py --reps 150 ols-att iv-late

For each case, simulate a data set with a known effect, fit the estimator once with a
bucket bootstrap, and record whether the analytic 95% interval (estimate +- z * the
sandwich / delta-method SE), the bootstrap percentile interval and the bootstrap normal
interval (estimate +- z * the bootstrap SE) cover the truth. A
valid 95% interval covers 93-97% of the time at 400 data sets (binomial SE ~1.1%).

To add a row, put a :class:`Case` in ``CASES``: a simulator ``(n, rng) -> Simulated``
(see :mod:`causal_core.datasets`), a registered estimator name, the target and options.
"""

from __future__ import annotations

import argparse
import os
import sys

# Thousands of tiny matrix products: BLAS threads only contend (25x slower on a busy box).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from causal_core.datasets import Simulated, confounded_binary, linear_frontdoor, linear_iv  # noqa: E402
from causal_core.estimators import BootstrapOptions, get_estimator  # noqa: E402
from causal_core.estimators.weighting import PropensityWarning  # noqa: E402
from causal_core.moments import PandasMomentEngine  # noqa: E402

# Per-fit overlap and balance warnings are expected now and then in small simulated samples.
warnings.filterwarnings("ignore", category=PropensityWarning)


# Discrete front-door: U (latent, binary) -> X, U -> Y, X -> M (3 levels) -> Y.
FD_P_X_U = (0.2, 0.8)
FD_P_M_X = ((0.6, 0.3, 0.1), (0.1, 0.3, 0.6))


def _fd_p_y(m, u):
    return 0.1 + 0.25 * m + 0.3 * u


def discrete_frontdoor(n: int, rng: np.random.Generator) -> Simulated:
    """The front-door formula on discrete data, for ``id_plugin``. The frame carries a unit
    id: without one, identical discrete rows would hash to the same bucket."""
    from causal_core.identification.estimand import frontdoor_expression

    u = rng.binomial(1, 0.5, n)
    x = rng.binomial(1, np.take(FD_P_X_U, u))
    m = (rng.random(n)[:, None] > np.cumsum(np.take(FD_P_M_X, x, axis=0), axis=1)).sum(axis=1)
    y = rng.binomial(1, _fd_p_y(m, u))
    frame = pd.DataFrame({"X": x, "M": m, "Y": y}).astype(float).assign(__unit=np.arange(n))
    mean = [sum(FD_P_M_X[v][k] * 0.5 * (_fd_p_y(k, 0) + _fd_p_y(k, 1)) for k in range(3)) for v in (0, 1)]
    design = {"treatment": "X", "outcome": "Y", "strategy": "frontdoor", "variables": ("X", "M", "Y"),
              "expression": frontdoor_expression(["X"], ["Y"], ["M"])}
    return Simulated(frame, design, {"ate": mean[1] - mean[0]})


@dataclass(frozen=True)
class Case:
    simulate: Callable[[int, np.random.Generator], Simulated]
    estimator: str
    target: str = "ate"
    n: int = 1000
    options: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    "ols-ate": Case(confounded_binary, "ols", "ate"),
    "ols-att": Case(confounded_binary, "ols", "att"),
    "ols-atc": Case(confounded_binary, "ols", "atc"),
    # the bucket-cluster sandwich (one pass): K = 200 buckets of ~5 rows, 199 df
    "ols-buckets-ate": Case(confounded_binary, "ols", "ate", options={"cov_type": "buckets"}),
    "ols-buckets-att": Case(confounded_binary, "ols", "att", options={"cov_type": "buckets"}),
    "iv-late": Case(linear_iv, "iv", "late"),
    "frontdoor-ate": Case(linear_frontdoor, "frontdoor", "ate"),
    # propensity-based estimators (logistic propensity; one-step bucket bootstrap)
    "ipw-ate": Case(confounded_binary, "ipw", "ate"),
    "ipw-att": Case(confounded_binary, "ipw", "att"),
    "ipw-atc": Case(confounded_binary, "ipw", "atc"),
    "aipw-ate": Case(confounded_binary, "aipw", "ate"),
    "aipw-att": Case(confounded_binary, "aipw", "att"),
    "aipw-atc": Case(confounded_binary, "aipw", "atc"),
    # 5 strata leave residual confounding (Cochran 1968): biased by design, expect low coverage
    "stratification5-ate": Case(confounded_binary, "stratification", "ate", options={"n_strata": 5}),
    "stratification10-ate": Case(confounded_binary, "stratification", "ate", options={"n_strata": 10}),
    "stratification10-att": Case(confounded_binary, "stratification", "att", options={"n_strata": 10}),
    "id_plugin-frontdoor": Case(discrete_frontdoor, "id_plugin", "ate", n=2000),
}


def run_case(case: Case, reps: int, *, seed: int = 2024, replicates: int = 1000, n_buckets: int = 200,
             level: float = 0.95) -> dict[str, Any]:
    """Coverage of both intervals, and the SEs against the spread of the estimates."""
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for child in np.random.SeedSequence(seed).spawn(reps):
        data_seed, boot_seed = child.generate_state(2)
        sim = case.simulate(case.n, np.random.default_rng(data_seed))
        estimator = get_estimator(case.estimator)(
            bootstrap=BootstrapOptions(replicates=replicates, seed=int(boot_seed)), level=level, **case.options)
        res = estimator.fit(PandasMomentEngine(sim.frame, n_buckets=n_buckets), sim.make_design(case.target)).result_
        truth = sim.truth[case.target]
        se = res.diagnostics["analytic_se"]
        boot_se = res.diagnostics["bootstrap_se"]
        rows.append((res.estimate, se, boot_se, abs(res.estimate - truth) <= z * se,
                     res.ci_low <= truth <= res.ci_high, abs(res.estimate - truth) <= z * boot_se))
    est, se, boot_se, hit_analytic, hit_boot, hit_normal = map(np.array, zip(*rows))
    return {"reps": reps, "n": case.n, "coverage_analytic": hit_analytic.mean(),
            "coverage_bootstrap": hit_boot.mean(), "coverage_bootstrap_normal": hit_normal.mean(),
            "sd_estimates": est.std(ddof=1),
            "mean_analytic_se": se.mean(), "mean_bootstrap_se": boot_se.mean()}


def coverage_table(cases: dict[str, Case], reps: int, **kwargs: Any) -> pd.DataFrame:
    """One row per named case."""
    out = {}
    for name, case in cases.items():
        start = time.perf_counter()
        out[name] = run_case(case, reps, **kwargs)
        out[name]["seconds"] = round(time.perf_counter() - start, 1)
    return pd.DataFrame(out).T


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"any of {', '.join(CASES)}")
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--replicates", type=int, default=1000,
                        help="bootstrap replicates per fit (the estimators' default; with 200 the "
                             "percentile endpoints rest on ~5 replicates each and cover ~1 point less)")
    parser.add_argument("--buckets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--n", type=int, default=None, help="rows per simulated data set (default: each case's)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; valid: {', '.join(CASES)}")
    cases = {name: CASES[name] if args.n is None else replace(CASES[name], n=args.n) for name in args.cases}
    table = coverage_table(cases, args.reps, seed=args.seed, replicates=args.replicates,
                           n_buckets=args.buckets)
    table[["reps", "n"]] = table[["reps", "n"]].astype(int)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.precision", 4):
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
