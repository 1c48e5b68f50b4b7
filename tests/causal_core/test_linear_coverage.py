"""Interval coverage of ols, iv and frontdoor over repeated simulations (slow).

The same cases as ``bench/coverage.py`` (which runs 400 data sets each) with 150 data
sets of 1000 rows: the analytic (sandwich / delta-method) and the bucket-bootstrap
percentile 95% intervals must each cover the true effect 90-99% of the time, and the
analytic SE must track the spread of the estimates. Seeds are fixed, so the outcome is
reproducible.
"""

from __future__ import annotations

import pytest

from bench.coverage import CASES, run_case

LINEAR_CASES = ["ols-ate", "ols-att", "ols-atc", "ols-buckets-ate", "ols-buckets-att", "iv-late", "frontdoor-ate"]


@pytest.mark.slow
@pytest.mark.parametrize("name", LINEAR_CASES)
def test_intervals_cover_the_truth(name):
    row = run_case(CASES[name], reps=150, seed=7, replicates=200, n_buckets=200)
    assert 0.90 <= row["coverage_analytic"] <= 0.99, row
    assert 0.90 <= row["coverage_bootstrap"] <= 0.99, row
    # The SD of 150 estimates is itself uncertain by ~1/sqrt(2 * 149) = 6%: allow 4 of those.
    assert row["mean_analytic_se"] == pytest.approx(row["sd_estimates"], rel=0.25), row
