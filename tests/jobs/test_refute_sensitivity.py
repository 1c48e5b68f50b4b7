"""The sensitivity refuter in a Spark study, held to an independent statsmodels OLS fed to
Cinelli & Hazlett's (2020) formulas, and its options checked when the spec is parsed; the
placebo and graph validation beside it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from causal_core.errors import SpecError
from causal_core.refuters.sensitivity import Benchmark, benchmark_bounds, robustness_value
from causal_core.spec import parse_spec
from causal_core.study import StudyResult
from jobs.estimate import estimate_study

SPEC = """
name: ovb
data: {path: PATH, format: parquet}
graph: |
  x1 -> d -> y
  x1 -> y
  x2 -> d
  x2 -> y
treatment: d
outcome: y
estimators: [ols]
bootstrap: {replicates: 20, seed: 3}
refuters: [REFUTERS]
"""


def _partial_r2_of(result, column: int) -> float:
    """The partial R² of one regressor in a statsmodels fit: t² / (t² + dof)."""
    t = result.tvalues[column]
    return t * t / (t * t + result.df_resid)


@pytest.mark.spark
def test_sensitivity_matches_statsmodels(spark, tmp_path):
    rng = np.random.default_rng(11)
    n = 4000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    d = np.round(0.4 * x1 + 0.3 * x2 + rng.normal(size=n), 2)
    y = 0.1 * d + 0.3 * x1 + 0.4 * x2 + rng.normal(size=n)
    spark.createDataFrame([tuple(map(float, r)) for r in zip(x1, x2, d, y)], "x1 double, x2 double, d double, y double") \
        .write.mode("overwrite").parquet(str(tmp_path / "ovb"))
    spec = parse_spec(SPEC.replace("PATH", str(tmp_path / "ovb"))
                      .replace("REFUTERS", "{sensitivity: {benchmarks: [x1]}}, placebo_treatment, graph_validation"))
    assert spec.ignored_fields() == ()
    result = estimate_study(spark, spec)

    ref, placebo = result.refutations
    assert placebo["refuter"] == "placebo_treatment" and placebo["passed"] is True
    assert placebo["details"]["simulations"] == 100 and abs(placebo["new_effect"]) < 3 * placebo["details"]["sd"]
    # graph validation: the one implication x1 ⊥ x2, by Fisher's z on the same rows
    (test,) = result.graph_validation["tests"]
    r = np.corrcoef(x1, x2)[0, 1]
    assert test["implication"] == {"x": "x1", "y": "x2", "given": []}
    assert test["statistic"] == pytest.approx(math.atanh(r) * math.sqrt(n - 3), rel=1e-8)
    assert test["p_value"] == pytest.approx(2 * stats.norm.sf(abs(math.atanh(r) * math.sqrt(n - 3))), rel=1e-8)
    assert result.graph_validation["passed"] is (test["p_value"] > 0.05)
    assert (ref["refuter"], ref["estimator"], ref["metric"], ref["segment"]) == ("sensitivity", "ols", "y", "all")
    details = ref["details"]

    full = sm.OLS(y, sm.add_constant(np.column_stack([d, x1, x2]))).fit()
    b, se, dof = full.params[1], full.bse[1], full.df_resid
    t = b / se
    assert details["estimate"] == pytest.approx(b, rel=1e-9)
    assert details["se"] == pytest.approx(se, rel=1e-9)
    assert details["t"] == pytest.approx(t, rel=1e-9) and details["dof"] == dof
    assert details["r2yd_x"] == pytest.approx(t * t / (t * t + dof), rel=1e-9)
    # the robustness value, in closed form from t and dof (Cinelli & Hazlett 2020, section 4)
    fq = abs(t) / math.sqrt(dof)
    assert details["rv_q"] == pytest.approx(0.5 * (math.sqrt(fq ** 4 + 4 * fq ** 2) - fq ** 2), rel=1e-9)
    fcrit = stats.t.isf(0.025, dof - 1) / math.sqrt(dof - 1)
    f = fq - fcrit
    assert fq <= 1 / fcrit  # the diagonal case of RV_{q,α}
    assert details["rv_qa"] == pytest.approx(0.5 * (math.sqrt(f ** 4 + 4 * f ** 2) - f ** 2), rel=1e-9)
    assert details["rv_qa"] == pytest.approx(robustness_value(t, dof, 1.0, 0.05), rel=1e-12)
    assert 0 < details["rv_qa"] < details["rv_q"]

    # the benchmark x1: partial R² with d (given x2) and with y (given d, x2), from statsmodels
    rd = _partial_r2_of(sm.OLS(d, sm.add_constant(np.column_stack([x1, x2]))).fit(), 1)
    ry = _partial_r2_of(full, 2)
    assert details["benchmarks"]["x1"]["r2dxj_x"] == pytest.approx(rd, rel=1e-8)
    assert details["benchmarks"]["x1"]["r2yxj_dx"] == pytest.approx(ry, rel=1e-8)
    k1 = next(bound for bound in details["bounds"] if bound["kd"] == 1.0)
    r2dz, r2yz = benchmark_bounds(Benchmark("x1", rd, ry), 1.0, 1.0)
    assert (k1["r2dz_x"], k1["r2yz_dx"]) == (pytest.approx(r2dz, rel=1e-8), pytest.approx(r2yz, rel=1e-8))
    bias = se * math.sqrt(dof * r2yz * r2dz / (1 - r2dz))
    assert k1["estimate"] == pytest.approx(np.sign(b) * (abs(b) - bias), rel=1e-8)
    assert [bound["kd"] for bound in details["bounds"]] == [1.0, 2.0, 3.0]

    # new_effect: the adjusted estimate at the strongest bound (3x x1, the largest bias)
    assert ref["new_effect"] == details["bounds"][-1]["estimate"] < k1["estimate"] < b
    # x1 is a strong confounder: one as strong as it could make the effect insignificant
    assert details["rv_qa"] < max(r2dz, r2yz) and ref["passed"] is False
    assert ref["p_value"] is None
    # the E-value of the effect in outcome standard deviations (VanderWeele & Ding 2017's
    # conversion RR = exp(0.91 d), interval exp(0.91 d - 1.78 se_d)), in closed form
    sd = np.std(y, ddof=1)
    rr, rr_low = math.exp(0.91 * b / sd), math.exp(0.91 * b / sd - 1.78 * se / sd)
    ev = details["e_value"]
    assert ev["outcome_sd"] == pytest.approx(sd, rel=1e-9) and ev["risk_ratio"] == pytest.approx(rr, rel=1e-9)
    assert ev["point"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)), rel=1e-9)
    assert ev["ci"] == pytest.approx(1.0 if rr_low <= 1 else rr_low + math.sqrt(rr_low * (rr_low - 1)), rel=1e-9)
    assert StudyResult.from_json(result.to_json()) == result


def test_an_unknown_sensitivity_option_fails_at_parse_time():
    with pytest.raises(SpecError) as info:
        parse_spec(SPEC.replace("PATH", "/nowhere").replace("REFUTERS", "{sensitivity: {benchmark: [x1], kd: [1]}}"))
    fields = dict(info.value.problems)
    assert "refuters.sensitivity.benchmark" in fields
    assert "benchmarks, kd, ky, q, alpha" in fields["refuters.sensitivity.benchmark"]
    assert "did you mean 'benchmarks'" in fields["refuters.sensitivity.benchmark"]


def test_a_benchmark_must_be_a_graph_variable():
    with pytest.raises(SpecError) as info:
        parse_spec(SPEC.replace("PATH", "/nowhere").replace("REFUTERS", "{sensitivity: {benchmarks: [x3]}}"))
    assert "'x3' is not an observed variable" in dict(info.value.problems)["refuters.sensitivity.benchmarks"]


def test_every_spec_refuter_is_built_so_none_is_ignored():
    spec = parse_spec(SPEC.replace("PATH", "/nowhere").replace(
        "REFUTERS", "placebo_treatment, {sensitivity: {kd: [1]}}, data_subset, dummy_outcome, random_common_cause, "
                    "unobserved_common_cause, graph_validation"))
    assert spec.ignored_fields() == ()
