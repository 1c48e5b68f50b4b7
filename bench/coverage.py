"""Interval coverage over repeated simulations, on the pandas engine.

    .venv/bin/python bench/coverage.py                  # every case, 400 datasets each
    .venv/bin/python bench/coverage.py --reps 150 ols-att iv-late

For each case, simulate a data set with a known effect, fit the estimator once with a
bucket bootstrap, and record whether the analytic 95% interval (estimate +- z * the
sandwich / delta-method SE) and the bootstrap percentile interval cover the truth. A
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from causal_core.datasets import Simulated, confounded_binary, linear_frontdoor, linear_iv  # noqa: E402
from causal_core.estimators import BootstrapOptions, get_estimator  # noqa: E402
from causal_core.moments import PandasMomentEngine  # noqa: E402


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
    "iv-late": Case(linear_iv, "iv", "late"),
    "frontdoor-ate": Case(linear_frontdoor, "frontdoor", "ate"),
}


def run_case(case: Case, reps: int, *, seed: int = 2024, replicates: int = 200, n_buckets: int = 200,
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
        rows.append((res.estimate, se, res.diagnostics["bootstrap_se"],
                     abs(res.estimate - truth) <= z * se, res.ci_low <= truth <= res.ci_high))
    est, se, boot_se, hit_analytic, hit_boot = map(np.array, zip(*rows))
    return {"reps": reps, "n": case.n, "coverage_analytic": hit_analytic.mean(),
            "coverage_bootstrap": hit_boot.mean(), "sd_estimates": est.std(ddof=1),
            "mean_analytic_se": se.mean(), "mean_bootstrap_se": boot_se.mean()}


def coverage_table(names: Sequence[str], reps: int, **kwargs: Any) -> pd.DataFrame:
    out = {}
    for name in names:
        start = time.perf_counter()
        out[name] = run_case(CASES[name], reps, **kwargs)
        out[name]["seconds"] = round(time.perf_counter() - start, 1)
    return pd.DataFrame(out).T


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", default=list(CASES), help=f"any of {', '.join(CASES)}")
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--replicates", type=int, default=200, help="bootstrap replicates per fit")
    parser.add_argument("--buckets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; valid: {', '.join(CASES)}")
    table = coverage_table(args.cases, args.reps, seed=args.seed, replicates=args.replicates,
                           n_buckets=args.buckets)
    table[["reps", "n"]] = table[["reps", "n"]].astype(int)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.precision", 4):
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
