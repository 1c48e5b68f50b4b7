"""The experiment readout on Spark: one pass over an exposure table, held to the pure readout
on pandas-aggregated units (1e-9), to scipy/statsmodels on unit-level data (1e-6), and to
the same table pre-aggregated to units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
import statsmodels.api as sm

from causal_core.experiments import ArmSums, ExperimentReadout, Metric, ValueCounts
from causal_core.spec import parse_spec
from jobs.estimate import estimate_study
from jobs.experiment import rounded_numpy
from jobs.experiment_readout import MAX_SEGMENT_LEVELS

ARMS = ("control", "b", "c")
N_UNITS, DAYS = 6000, 3
COUNTRIES = [f"k{i:02d}" for i in range(24)]  # more than MAX_SEGMENT_LEVELS: the tail is "other"


def units_frame(seed: int = 11, n: int = N_UNITS, lose_c_on: str | None = "opera") -> pd.DataFrame:
    """One row per unit: arm, segments, pre-period covariate and the unit's totals. With
    ``lose_c_on`` 60% of arm c's units on that browser are lost (a planted SRM)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(ARMS, size=n)
    browser = rng.choice(["chrome", "safari", "opera"], p=[0.6, 0.3, 0.1], size=n)
    country = np.array(COUNTRIES)[np.minimum((len(COUNTRIES) * rng.random(n) ** 2).astype(int), 23)]
    pre = np.round(np.exp(rng.normal(2.0, 0.7, n)), 2)
    lift = np.select([arm == "b", arm == "c"], [0.8, 1.6], 0.0)
    sessions = 1 + rng.poisson(2 + 0.1 * pre)
    revenue = np.maximum(0.0, 0.6 * pre + lift + rng.normal(0, 3, n))  # continuous: no ties at rounding
    purchased = (rng.random(n) < 0.2 + 0.05 * (arm == "c")).astype(int)
    df = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "variant": arm, "browser": browser,
                       "country": country, "pre_revenue": pre, "sessions": sessions, "revenue": revenue,
                       "purchased": purchased})
    if lose_c_on:
        lost = (df.variant == "c") & (df.browser == lose_c_on) & (rng.random(n) < 0.6)
        df = df[~lost].reset_index(drop=True)
    return df


def exposures(units: pd.DataFrame, seed: int = 12) -> pd.DataFrame:
    """The same units as several rows each (one to DAYS days): sums split at random across
    the rows, conversion on one of them, covariate and segments repeated."""
    rng = np.random.default_rng(seed)
    days = rng.integers(1, DAYS + 1, len(units))
    rows = units.loc[units.index.repeat(days)].reset_index()
    share = rng.random(len(rows))
    share = share / rows.assign(s=share).groupby("index").s.transform("sum").to_numpy()
    first = ~rows["index"].duplicated()
    out = rows.assign(revenue=rows.revenue * share, sessions=rows.sessions * share,
                      purchased=np.where(first, rows.purchased, 0), day=rows.groupby("index").cumcount())
    return out.drop(columns="index")


SPEC = """name: ab
design: experiment
data: {{path: {path}, format: parquet, unit_id: user_id, buckets: 50}}
graph: |
  variant -> revenue
  variant -> sessions
  variant -> purchased
  pre_revenue -> revenue
treatment: variant
treatment_values: {{arms: [control, b, c], control: control}}
metrics:
  - {{name: revenue, kind: mean, column: revenue}}
  - {{name: conversion, kind: proportion, column: purchased}}
  - {{name: rps, kind: ratio, numerator: revenue, denominator: sessions}}
  - {{name: p75, kind: quantile, column: revenue, quantile: 0.75}}
multiple_testing: {mt}
segments: [browser, country]
bootstrap: {{replicates: 50, seed: 3}}
"""


def run(spark, tmp_path, df: pd.DataFrame, name: str, mt: str = "holm", segments: bool = True):
    path = tmp_path / f"{name}.parquet"
    df.to_parquet(path)
    text = SPEC.format(path=path, mt=mt)
    spec = parse_spec(text if segments else text.replace("segments: [browser, country]\n", ""))
    return estimate_study(spark, spec)


@pytest.fixture(scope="module")
def units():
    return units_frame()


@pytest.fixture(scope="module")
def result(spark, units, tmp_path_factory):
    return run(spark, tmp_path_factory.mktemp("exp"), exposures(units), "rows")


def _sums(df: pd.DataFrame) -> ArmSums:
    return ArmSums.from_units({"sum(revenue)": df.revenue, "max(purchased)": df.purchased,
                               "sum(sessions)": df.sessions, "max(pre_revenue)": df.pre_revenue})


def pandas_units(rows: pd.DataFrame) -> pd.DataFrame:
    """Exposure rows to units with pandas: sums, the maximum of purchased and of the
    covariate, the segments (constant per unit here) and the arm."""
    return rows.groupby("user_id", as_index=False).agg(
        variant=("variant", "max"), browser=("browser", "max"), country=("country", "max"),
        pre_revenue=("pre_revenue", "max"), sessions=("sessions", "sum"), revenue=("revenue", "sum"),
        purchased=("purchased", "max"))


def oracle(units: pd.DataFrame):
    """The pure readout on sums computed by pandas from the unit rows, segments ranked by
    units with the tail as ``other``."""
    grids, hists = {}, {}
    parts = [("all", units)]
    for column in ("browser", "country"):
        counts = units.groupby(column).size().reset_index(name="n").sort_values(["n", column], ascending=[False, True])
        levels = list(counts[column])
        keep = levels if len(levels) <= MAX_SEGMENT_LEVELS else levels[:MAX_SEGMENT_LEVELS - 1]
        parts += [(f"{column}={lv}", units[units[column] == lv]) for lv in keep]
        if len(keep) < len(levels):
            parts.append((f"{column}=other", units[~units[column].isin(keep)]))
    for seg, part in parts:
        for a in ARMS:
            mine = part[part.variant == a]
            grids[seg, a] = _sums(mine)
            hists[seg, a, "p75"] = ValueCounts.from_units(rounded_numpy(mine.revenue))
    metrics = (Metric("revenue", "sum(revenue)", covariate="max(pre_revenue)"),
               Metric("conversion", "max(purchased)", kind="proportion"),
               Metric("rps", "sum(revenue)", "sum(sessions)", kind="ratio", covariate="max(pre_revenue)"),
               Metric("p75", "revenue", kind="quantile", level=0.75))
    out = []
    for seg, _ in parts:
        grid = {(seg, a): grids[seg, a] for a in ARMS}
        out += ExperimentReadout(metrics=metrics, control="control", relative=False,
                                 expected_split={a: 1 / 3 for a in ARMS}).fit(grid, hists).result_.rows
    return out


def test_the_spark_readout_equals_the_pure_readout_on_pandas_aggregated_units(result, units):
    spark_rows = {(r["metric"], r["arm"], r["segment"]): r for r in result.experiment["readouts"]["absolute"]["rows"]}
    expected = oracle(pandas_units(exposures(units)))
    assert len(expected) == len(spark_rows) == 24 * 4 * 2  # all, 3 browsers, 19 countries + other
    for e in expected:
        got = spark_rows[e.metric, e.arm, e.segment]
        for f in ("estimate", "se", "ci_low", "ci_high", "p_value", "p_adjusted", "control_value", "n_control"):
            assert got[f] == pytest.approx(getattr(e, f), rel=1e-9, abs=1e-12), (e.metric, e.arm, e.segment, f)
    assert result.rows == len(exposures(units))


def test_the_lifts_equal_scipy_and_statsmodels_on_unit_level_data(result, units):
    rows = {(e.metric, e.contrast): e for e in result.estimates if e.segment == "all"}
    ctrl = units[units.variant == "control"]
    for arm in ("b", "c"):
        trt = units[units.variant == arm]
        # conversion: Welch on 0/1 with the Bernoulli variance (divisor n) GrowthBook uses
        e = rows["conversion", f"variant: {arm} vs control"]
        pa, pb = ctrl.purchased.mean(), trt.purchased.mean()
        se = np.sqrt(pa * (1 - pa) / len(ctrl) + pb * (1 - pb) / len(trt))
        assert e.estimate == pytest.approx(pb - pa, rel=1e-9) and e.se == pytest.approx(se, rel=1e-9)
        # CUPED with the pooled θ = OLS slope of revenue on the centred covariate over both
        # arms; the adjusted lift is Welch's test on y - θ(z - z̄)
        both = pd.concat([ctrl, trt])
        z = both.pre_revenue - both.pre_revenue.mean()
        theta = sm.OLS(both.revenue.to_numpy(), sm.add_constant(z.to_numpy())).fit().params[1]
        adj_a = ctrl.revenue - theta * (ctrl.pre_revenue - both.pre_revenue.mean())
        adj_b = trt.revenue - theta * (trt.pre_revenue - both.pre_revenue.mean())
        welch = stats.ttest_ind(adj_b, adj_a, equal_var=False)
        cm = CompareMeans(DescrStatsW(adj_b.to_numpy()), DescrStatsW(adj_a.to_numpy()))
        e = rows["revenue", f"variant: {arm} vs control"]
        assert e.estimate == pytest.approx(adj_b.mean() - adj_a.mean(), rel=1e-6)
        assert e.se == pytest.approx(cm.std_meandiff_separatevar, rel=1e-6)
        assert e.p_value == pytest.approx(welch.pvalue, rel=1e-6)
        assert (e.ci_low, e.ci_high) == pytest.approx(cm.tconfint_diff(usevar="unequal"), rel=1e-6)
        assert e.diagnostics["cuped_theta"] == pytest.approx(theta, rel=1e-6)
        raw = np.sqrt(ctrl.revenue.var() / len(ctrl) + trt.revenue.var() / len(trt))
        assert e.diagnostics["variance_reduction"] == pytest.approx(1 - (e.se / raw) ** 2, rel=1e-6)
        # ratio: delta method = variance of the linearisation (y - R x) / x̄ (Deng et al. 2018)
        e = rows["rps", f"variant: {arm} vs control"]
        def linear(d):
            r = d.revenue.sum() / d.sessions.sum()
            return (d.revenue - r * d.sessions) / d.sessions.mean(), r
        (la, ra), (lb, rb), (lp, _) = linear(ctrl), linear(trt), linear(both)
        ha = ctrl.pre_revenue - both.pre_revenue.mean()
        hb = trt.pre_revenue - both.pre_revenue.mean()
        th = np.cov(lp, both.pre_revenue)[0, 1] / both.pre_revenue.var()  # θ on the pooled linearisation
        va, vb = (la - th * ha).var(), (lb - th * hb).var()
        assert e.se == pytest.approx(np.sqrt(va / len(ctrl) + vb / len(trt)), rel=1e-6)
        assert e.estimate == pytest.approx(rb - ra - th * (hb.mean() - ha.mean()), rel=1e-6)


def test_several_rows_per_unit_read_out_as_the_units_themselves(spark, result, units, tmp_path):
    once = run(spark, tmp_path, units, "units")
    a, b = once.experiment["readouts"], result.experiment["readouts"]
    assert set(a) == set(b) == {"absolute", "relative"}
    for kind in a:
        for ra, rb in zip(a[kind]["rows"], b[kind]["rows"], strict=True):
            assert (ra["metric"], ra["arm"], ra["segment"]) == (rb["metric"], rb["arm"], rb["segment"])
            for f, v in ra.items():
                if isinstance(v, float):
                    assert rb[f] == pytest.approx(v, rel=1e-9, abs=1e-12), (kind, ra["metric"], ra["segment"], f)
    assert once.rows == len(units) < result.rows


def test_without_segments_the_whole_experiment_reads_out_the_same(spark, result, units, tmp_path):
    alone = run(spark, tmp_path, exposures(units), "no_segments", segments=False)
    assert alone.experiment["segments"] == ["all"]
    for kind, readout in alone.experiment["readouts"].items():
        mine = {(r["metric"], r["arm"]): r for r in readout["rows"]}
        theirs = [r for r in result.experiment["readouts"][kind]["rows"] if r["segment"] == "all"]
        assert len(theirs) == len(mine) == 8
        for r in theirs:
            for f, v in r.items():
                if isinstance(v, float):
                    assert mine[r["metric"], r["arm"]][f] == pytest.approx(v, rel=1e-12, abs=1e-15), (kind, f)
    boot = lambda res: {(e.metric, e.contrast): e.diagnostics["bootstrap_se"] for e in res.estimates  # noqa: E731
                        if e.segment == "all" and "bootstrap_se" in e.diagnostics}
    assert len(boot(alone)) == 6 and boot(alone) == pytest.approx(boot(result), rel=1e-12)


def test_the_planted_srm_is_flagged_in_its_segment_only(result):
    flagged = [seg for seg, s in result.experiment["srm"].items() if s["mismatch"]]
    assert flagged == ["browser=opera"]
    srm = [w for w in result.warnings if w.startswith("sample ratio mismatch")]
    assert len(srm) == 1 and "browser=opera" in srm[0]
    opera = [e for e in result.estimates if e.segment == "browser=opera" and e.estimated]
    assert opera and all(e.diagnostics["srm_mismatch"] is True for e in opera)
    assert all(e.diagnostics["srm_mismatch"] is False for e in result.estimates
               if e.estimated and e.segment != "browser=opera")


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjusted_p_values_equal_multipletests_per_segment(spark, units, tmp_path, method, result):
    res = result if method == "holm" else run(spark, tmp_path, units, "bh", mt=method)
    for seg in ("all", "browser=chrome", "country=other"):
        mine = [e for e in res.estimates if e.segment == seg and e.estimated]
        assert len(mine) == 8
        p = [e.p_value for e in mine]
        expected = multipletests(p, method=method)[1]
        assert [e.diagnostics["p_adjusted"] for e in mine] == pytest.approx(list(expected), rel=1e-12)
        assert all(e.diagnostics["multiple_testing"] == method for e in mine)


def test_a_unit_in_two_arms_is_counted_and_left_out(spark, units, tmp_path):
    rows = exposures(units)
    three, fourth = list(units.user_id[:3]), units.user_id[3]
    twice = rows[rows.user_id.isin(three)].assign(variant="b", day=99)
    odd = rows[rows.user_id == fourth].assign(variant="zzz")
    res = run(spark, tmp_path, pd.concat([rows, twice, odd]), "mixed")
    moved = int((units[units.user_id.isin(three)].variant != "b").sum())
    assert res.experiment["excluded_units"] == {"unit seen in more than one arm": moved,
                                                "arm not among the declared arms": 1}
    assert any(w == f"{moved:,} units left out: unit seen in more than one arm" for w in res.warnings)
    assert sum(res.experiment["units"].values()) == len(units) - moved - 1


def test_the_readout_round_trips_through_results_json(result):
    from causal_core.study import StudyResult

    text = result.to_json()
    assert StudyResult.from_json(text) == result and StudyResult.from_json(text).to_json() == text
    assert set(result.experiment["readouts"]) == {"absolute", "relative"}
    older = result.to_dict()
    del older["experiment"]  # results written before the field existed read back with None
    assert StudyResult.from_dict(older).experiment is None


def test_bucket_bootstrap_agrees_with_the_analytic_standard_errors(result):
    for e in result.estimates:
        if e.segment == "all" and e.metric != "p75":
            assert 0.7 < e.diagnostics["bootstrap_se"] / e.se < 1.3, (e.metric, e.contrast)


@pytest.mark.slow
def test_the_cli_prints_the_readout_rows_of_the_example_study(spark, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app
    from jobs.warehouse.demo_experiment import checkout_exposures

    spark.sql("CREATE DATABASE IF NOT EXISTS demo")
    df, _ = checkout_exposures(spark, 20_000)
    df.write.mode("overwrite").partitionBy("event_date").format("parquet").saveAsTable("demo.checkout_exposures")
    out = CliRunner().invoke(app, ["run", "checkout_readout", "--output", str(tmp_path / "r.json"), "--quiet"])
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if line.split()[:2] and line.split()[1] == "experiment"]
    assert len([line for line in lines if " all " in line]) == 8  # 4 metrics x 2 arms
    assert any(line.startswith("revenue_per_session") for line in lines)
    assert "sample ratio mismatch in segment browser=edge" in out.output
    assert (tmp_path / "report.html").exists()
