"""Interval coverage of ipw, aipw and stratification over repeated simulations (slow).

200 datasets per case (confounded, heterogeneous effects; truths by quadrature).
Both the analytic interval (sandwich / influence function / stratum variances) and the
one-step bucket-bootstrap percentile interval must cover 90-99% of the time.

Stratification with 5 strata is biased by design (residual confounding within strata,
about 1-2 SE at this n with the default simulation; see
test_stratification.py::test_five_strata_leave_residual_confounding); its coverage is
checked with 10 strata on a weaker confounder and 1000 rows, where the bias is ~0.3 SE
(expected coverage ~0.94; it grows with sqrt(n)).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine
from tests.causal_core.propensity_sims import ALPHA, simulate, truths

REPS, N = 200, 2000
CASES = [
    ("ipw", "ate", ALPHA, N, {}),
    ("ipw", "att", ALPHA, N, {}),
    ("aipw", "ate", ALPHA, N, {}),
    ("aipw", "atc", ALPHA, N, {}),
    ("stratification", "ate", (-0.3, 0.4, 0.5), 1000, {"n_strata": 10}),
]


def coverage(name: str, target: str, alpha, n: int, options) -> tuple[float, float]:
    truth = truths(alpha)[target]
    hits = []
    for r in range(REPS):
        df = simulate(n, seed=10_000 + r, alpha=alpha)
        design = ModelRoles(treatment="d", outcome="y", covariates=("x1", "x2"), target=target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = get_estimator(name)(bootstrap=BootstrapOptions(replicates=200, seed=r), **options).fit(
                PandasMomentEngine(df, n_buckets=200), design).result_
        half = 1.959964 * res.diagnostics["analytic_se"]
        lo, hi = res.estimate - half, res.estimate + half
        hits.append((lo < truth < hi, res.ci_low < truth < res.ci_high))
    return tuple(np.mean(hits, axis=0))


@pytest.mark.slow
@pytest.mark.parametrize("name,target,alpha,n,options", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_interval_coverage(name, target, alpha, n, options):
    analytic, bootstrap = coverage(name, target, alpha, n, options)
    assert 0.90 <= analytic <= 0.99, f"analytic coverage {analytic:.3f}"
    assert 0.90 <= bootstrap <= 0.99, f"bootstrap coverage {bootstrap:.3f}"


@pytest.mark.slow
def test_id_plugin_frontdoor_coverage():
    """Delta-method and bucket-bootstrap intervals of the discrete front-door plug-in."""
    from causal_core.identification.estimand import frontdoor_expression
    from tests.causal_core.test_id_plugin import frontdoor_data, frontdoor_truth

    truth, expr, hits = frontdoor_truth(), frontdoor_expression(["X"], ["Y"], ["M"]), []
    design = ModelRoles(treatment="X", outcome="Y", strategy="frontdoor", variables=("X", "M", "Y"), expression=expr)
    for r in range(150):
        df = frontdoor_data(N, seed=20_000 + r)
        res = get_estimator("id_plugin")(bootstrap=BootstrapOptions(replicates=100, seed=r)).fit(
            PandasMomentEngine(df, n_buckets=200), design).result_
        half = 1.959964 * res.diagnostics["analytic_se"]
        hits.append((abs(res.estimate - truth) < half, res.ci_low < truth < res.ci_high))
    analytic, bootstrap = np.mean(hits, axis=0)
    assert 0.90 <= analytic <= 0.99 and 0.90 <= bootstrap <= 0.99, (analytic, bootstrap)
