"""Absorbed fixed effects on Spark: the Spark engine gives the pandas engine's fit, and the
Darfur analysis of Cinelli & Hazlett (2020) runs through ``whybatch run`` with village
absorbed and reproduces the paper's numbers."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from typer.testing import CliRunner

from causal_core.estimators import BootstrapOptions, ModelRoles
from causal_core.estimators.iv import IV
from causal_core.estimators.ols import OLS
from causal_core.moments.pandas_engine import PandasMomentEngine
from causal_core.refuters.sensitivity import robustness_value
from jobs.cli import app
from tests.causal_core.test_fixed_effects import G, dummies_fit, simulate, simulate_iv

pytestmark = pytest.mark.spark
runner = CliRunner()
NO_BOOT = BootstrapOptions(replicates=0)


def _engines(spark, frame: pd.DataFrame, k: int = 50):
    from jobs.spark.engine import SparkMomentEngine

    rows = frame["__unit"].to_numpy() if "__unit" in frame else np.arange(len(frame))
    frame = frame.assign(__bucket=rows % k)  # a unit's rows in one bucket, as hashing puts them
    return PandasMomentEngine(frame, n_buckets=k), SparkMomentEngine(spark.createDataFrame(frame), n_buckets=k)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC1", "cluster"])
def test_spark_ols_equals_pandas_and_the_dummies_regression(spark, cov_type):
    df = simulate(7)
    clustered = cov_type == "cluster"
    frame = df.rename(columns={"unit": "__unit"}) if clustered else df.drop(columns="unit")
    roles = ModelRoles("d", "y", ("x1", "x2"), fixed_effects=(("g", G),), clustered=clustered)
    boot = BootstrapOptions(replicates=50, seed=2)
    fits = [OLS(cov_type="HC1" if clustered else cov_type, bootstrap=boot).fit(e, roles).result_
            for e in _engines(spark, frame)]
    pandas_fit, spark_fit = fits
    ref = dummies_fit(df, **({"cov_type": "cluster", "cov_kwds": {"groups": df.unit}} if clustered
                             else {"cov_type": cov_type}))
    for r in fits:
        assert r.estimate == pytest.approx(ref.params["d"], abs=1e-8)
        assert r.diagnostics["analytic_se"] == pytest.approx(ref.bse["d"], rel=1e-6)
    assert spark_fit.replicates == pytest.approx(pandas_fit.replicates, rel=1e-9)


def test_spark_iv_equals_pandas(spark):
    df = simulate_iv(3).drop(columns="unit")
    roles = ModelRoles("d", "y", ("w1",), instruments=("z",), kind="iv", strategy="iv", fixed_effects=(("g", 40),))
    pandas_fit, spark_fit = (IV(bootstrap=NO_BOOT).fit(e, roles).result_ for e in _engines(spark, df))
    assert spark_fit.estimate == pytest.approx(pandas_fit.estimate, rel=1e-10)
    assert spark_fit.se == pytest.approx(pandas_fit.se, rel=1e-9)
    assert abs(spark_fit.estimate - 2.0) < 4 * spark_fit.se


CONFOUNDERS = ("village", "female", "age", "farmer_dar", "herder_dar", "pastvoted", "hhsize_darfur")
DARFUR = """
name: darfur
description: Cinelli & Hazlett (2020), section 5 - village absorbed
data: {path: PATH, format: parquet}
graph: |
  directlyharmed -> peacefactor
EDGES
treatment: directlyharmed
outcome: peacefactor
fixed_effects: [village]
estimators:
  - ols: {cov_type: nonrobust}
bootstrap: {replicates: 0}
refuters:
  - sensitivity: {benchmarks: [female], kd: [1, 2, 3]}
"""


@pytest.fixture(scope="module")
def darfur_run(spark, tmp_path_factory):
    """``whybatch run`` of the Darfur study (village as a text column, 486 levels) -> results.json."""
    sensemakr = pytest.importorskip("sensemakr")
    root = tmp_path_factory.mktemp("darfur")
    data = sensemakr.load_darfur()
    data.to_parquet(root / "darfur.parquet")
    edges = "\n".join(f"  {c} -> directlyharmed\n  {c} -> peacefactor" for c in CONFOUNDERS)
    spec = root / "darfur.yaml"
    spec.write_text(DARFUR.replace("PATH", str(root / "darfur.parquet")).replace("EDGES", edges))
    out = runner.invoke(app, ["run", str(spec), "--output", str(root / "results.json")])
    assert out.exit_code == 0, out.output
    return data, json.loads((root / "results.json").read_text())


def _dummies(data: pd.DataFrame):
    dummies = pd.get_dummies(data.village, prefix="v", drop_first=True).astype(float)
    x = pd.concat([data[["directlyharmed", *CONFOUNDERS[1:]]].astype(float), dummies], axis=1)
    return sm.OLS(data.peacefactor, sm.add_constant(x)).fit()


def test_darfur_estimate_matches_the_paper(darfur_run):
    """Table 1 of the paper (and sensemakr's print): 0.09731582, se 0.02325654, t 4.18445."""
    data, results = darfur_run
    (row,) = results["estimates"]
    assert (row["estimator"], row["n"], row["ci_method"]) == ("ols", 1276, "analytic")
    assert row["estimate"] == pytest.approx(0.09731582, abs=5e-9)
    assert row["se"] == pytest.approx(0.02325654, abs=5e-9)
    assert row["estimate"] / row["se"] == pytest.approx(4.18445, abs=5e-6)
    assert row["diagnostics"]["fixed_effects"]["levels"] == 486
    ref = _dummies(data)  # the independent fit: statsmodels with 485 village dummies
    assert row["estimate"] == pytest.approx(ref.params["directlyharmed"], abs=1e-10)
    assert row["se"] == pytest.approx(ref.bse["directlyharmed"], rel=1e-8)


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::FutureWarning",
                            "ignore::statsmodels.tools.sm_exceptions.SingularMatrixWarning")
def test_darfur_sensitivity_matches_the_paper_and_pysensemakr(darfur_run):
    """The sensitivity refuter on the within Gram (dof 783 = 1276 - 8 - 485): R²(Y~D|X)
    0.02187309, RV 0.1387764, RV(α=0.05) 0.07625797, and the female-benchmarked bounds as
    the authors' Python package computes them (the R package prints 0.0092, 0.1246, 0.0752
    for kd = 1)."""
    import sensemakr

    data, results = darfur_run
    (ref,) = results["refutations"]
    details = ref["details"]
    assert (ref["refuter"], ref["estimator"], details["dof"]) == ("sensitivity", "ols", 783)
    assert details["r2yd_x"] == pytest.approx(0.02187309, abs=5e-9)
    assert details["rv_q"] == pytest.approx(0.1387764, abs=5e-8)
    assert details["rv_qa"] == pytest.approx(0.07625797, abs=5e-9)
    fit = _dummies(data)
    t, dof = fit.tvalues["directlyharmed"], fit.df_resid
    assert details["r2yd_x"] == pytest.approx(t * t / (t * t + dof), rel=1e-8)
    assert details["rv_q"] == pytest.approx(robustness_value(t, dof), rel=1e-8)
    bounds = details["bounds"]
    assert [b["label"] for b in bounds] == ["1x female", "2x female", "3x female"]
    assert bounds[0]["r2dz_x"] == pytest.approx(0.00916428, abs=1e-8)
    assert (round(bounds[0]["r2yz_dx"], 4), round(bounds[0]["estimate"], 4)) == (0.1246, 0.0752)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        formula = "peacefactor ~ directlyharmed + " + " + ".join(CONFOUNDERS[1:]) + " + village"
        import statsmodels.formula.api as smf

        theirs = sensemakr.Sensemakr(model=smf.ols(formula, data=data).fit(), treatment="directlyharmed",
                                     benchmark_covariates=["female"], kd=[1, 2, 3]).bounds
    for ours, col in [("r2dz_x", "r2dz_x"), ("r2yz_dx", "r2yz_dx"), ("estimate", "adjusted_estimate"),
                      ("se", "adjusted_se"), ("ci_low", "adjusted_lower_CI")]:
        np.testing.assert_allclose([b[ours] for b in bounds], theirs[col].to_numpy(), rtol=1e-7)


def test_an_unknown_fixed_effect_fails_before_spark(tmp_path):
    spec = tmp_path / "bad.yaml"
    edges = "\n".join(f"  {c} -> directlyharmed\n  {c} -> peacefactor" for c in CONFOUNDERS)
    spec.write_text(DARFUR.replace("PATH", str(tmp_path / "none.parquet")).replace("EDGES", edges)
                    .replace("[village]", "[vilage]"))
    out = runner.invoke(app, ["run", str(spec), "--output", str(tmp_path / "results.json")])
    assert out.exit_code == 2
    assert "fixed_effects" in out.output and "'vilage' is not an observed variable" in out.output
    assert not (tmp_path / "results.json").exists()
