"""When the prepared frame is cached: only when more than one pass reads it after the
preparation pass, or when its rows come from a catalog table (whose partitions Spark lists
per query). An ``ols`` study on files at a path reads them twice instead — the preparation
with the opening pass, then the variance pass — and gets the numbers of a cached run."""

from __future__ import annotations

import numpy as np
import pytest

from causal_core.spec import parse_spec
from jobs.estimate import Interval, estimate_study
from tests.jobs.test_warehouse import _rows_scanned

N = 600


@pytest.fixture(scope="module")
def path(spark, tmp_path_factory):
    rng = np.random.default_rng(5)
    x = rng.normal(size=N)
    t = (rng.random(N) < 1 / (1 + np.exp(-x))).astype(int)
    y = 1.5 * t + x + rng.normal(size=N)
    out = tmp_path_factory.mktemp("frame_cache") / "rows"
    rows = [(float(a), int(b), float(c), "ab"[i % 2]) for i, (a, b, c) in enumerate(zip(x, t, y))]
    spark.createDataFrame(rows, "x double, t int, y double, g string") \
        .repartition(2).write.parquet(str(out))
    return out


def _spec(data: str, estimators: str, extra: str = "") -> object:
    return parse_spec(f"name: cache\ndata: {{{data}, buckets: 20}}\ngraph: |\n  x -> t\n  x -> y\n  t -> y\n"
                      f"treatment: t\noutcome: y\nestimators: {estimators}\nbootstrap: {{replicates: 30, seed: 3}}\n"
                      + extra)


def _ols(result):
    (row,) = [e for e in result.estimates if e.estimator == "ols" and e.segment == "all"]
    return row


def test_an_ols_study_on_files_reads_them_twice_and_matches_a_cached_run(spark, path):
    alone = _spec(f"path: {path}, format: parquet", "[ols]")
    with_ipw = _spec(f"path: {path}, format: parquet", "[ols, ipw]")
    runs = {}
    scans = {name: _rows_scanned(spark, lambda s=spec, n=name: runs.__setitem__(n, estimate_study(spark, s, Interval())))
             for name, spec in (("alone", alone), ("with_ipw", with_ipw))}
    assert scans["alone"] == [N, N]  # preparation (with the opening pass), then the variance pass
    assert scans["with_ipw"] == [N]  # several passes follow: read once into the cache
    a, b = _ols(runs["alone"]), _ols(runs["with_ipw"])
    assert a.estimate == pytest.approx(b.estimate, rel=1e-12) and a.se == pytest.approx(b.se, rel=1e-10)
    assert a.ci_low == pytest.approx(b.ci_low, rel=1e-10) and a.ci_high == pytest.approx(b.ci_high, rel=1e-10)
    assert abs(a.estimate - 1.5) < 4 * a.se  # the simulated effect


def test_segments_unit_ids_and_catalog_tables_keep_the_cache(spark, path):
    spark.read.parquet(str(path)).write.mode("overwrite").saveAsTable("frame_cache_rows")
    cases = {
        "segments": _spec(f"path: {path}, format: parquet", "[ols]", "segments: [g]\n"),
        "catalog table": _spec("table: frame_cache_rows", "[ols]"),
        "unit id": _spec(f"path: {path}, format: parquet, unit_id: x", "[ols]"),
    }
    for name, spec in cases.items():
        assert _rows_scanned(spark, lambda s=spec: estimate_study(spark, s, Interval())) == [N], name
