"""id_plugin on string variables through estimate_study: a string confounder, a string
treatment, and a variable with too many levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.spec import parse_spec
from jobs.estimate import estimate_study

pytestmark = pytest.mark.spark

SPEC = """
name: strings
data: {path: PATH, format: parquet, unit_id: uid, buckets: 50}
graph: |
  cat -> d -> y
  cat -> y
treatment: d
outcome: y
encode: {cat: categorical}
estimators: [id_plugin, ols]
bootstrap: {replicates: 100, seed: 4}
"""
CATS = np.array(["a", "b", "c", "d"])


def discrete_data(n: int, seed: int) -> pd.DataFrame:
    """cat (4 levels) -> d, cat -> y, d -> y; d and y binary; one row per unit."""
    rng = np.random.default_rng(seed)
    c = rng.choice(4, size=n, p=(0.4, 0.3, 0.2, 0.1))
    d = rng.binomial(1, np.take((0.2, 0.4, 0.6, 0.8), c))
    y = rng.binomial(1, 0.1 + 0.25 * d + np.take((0.0, 0.1, 0.3, 0.5), c))
    return pd.DataFrame({"uid": np.arange(n), "cat": CATS[c], "d": d, "y": y})


def backdoor_numpy(df: pd.DataFrame) -> float:
    """sum_c P(c) (E[y | d=1, c] - E[y | d=0, c]): the back-door formula by hand."""
    pc = df.cat.value_counts(normalize=True)
    ey = df.groupby(["d", "cat"]).y.mean()
    return float(sum(pc[c] * (ey[(1, c)] - ey[(0, c)]) for c in pc.index))


def run(spark, tmp_path, pdf: pd.DataFrame, spec: str = SPEC) -> dict[str, dict]:
    path = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
    spark.createDataFrame(pdf).write.parquet(str(path))
    result = estimate_study(spark, parse_spec(spec.replace("PATH", str(path))))
    return {e.estimator: e.to_dict() for e in result.estimates}


def test_id_plugin_on_a_string_confounder_is_the_backdoor_formula(spark, tmp_path):
    """The string cat is coded for the plug-in; the estimate is the back-door formula
    computed in pandas, and the very numbers of the study with cat stored as integers
    (same units, same buckets); diagnostics name the levels a..d."""
    pdf = discrete_data(4000, seed=1)
    strings = run(spark, tmp_path, pdf)
    plug_in = strings["id_plugin"]
    assert plug_in["estimate"] == pytest.approx(backdoor_numpy(pdf), rel=1e-9)
    assert abs(plug_in["estimate"] - 0.25) < 4 * plug_in["se"]
    assert plug_in["diagnostics"]["levels"] == {"cat": ["a", "b", "c", "d"], "d": [0.0, 1.0], "y": [0.0, 1.0]}
    assert set(plug_in["diagnostics"]["do_means"]) == {"d=1", "d=0"}
    # OLS with treatment interactions is saturated in (d, cat): the same number
    assert strings["ols"]["estimate"] == pytest.approx(plug_in["estimate"], rel=1e-9)
    codes = run(spark, tmp_path, pdf.assign(cat=pdf.cat.map({c: i for i, c in enumerate(CATS)})))["id_plugin"]
    for key in ("estimate", "se", "ci_low", "ci_high"):
        assert codes[key] == pytest.approx(plug_in[key], rel=1e-12), key
    assert codes["diagnostics"]["levels"]["cat"] == [0.0, 1.0, 2.0, 3.0]


def test_id_plugin_with_a_string_treatment(spark, tmp_path):
    """treatment_values new vs old on a string arm column: the plug-in compares those arms
    (rows of a third arm are left out) and equals the study on the arm coded 1/0."""
    pdf = discrete_data(3000, seed=2)
    arm = np.where(pdf.d == 1, "new", "old").astype(object)
    arm[::10] = "other"  # a third arm, outside the contrast
    pdf = pdf.assign(arm=arm)
    spec = SPEC.replace("-> d ->", "-> arm ->").replace("treatment: d", "treatment: arm\n"
                                                      "treatment_values: {treated: new, control: old}")
    text = run(spark, tmp_path, pdf.drop(columns="d"), spec.replace("[id_plugin, ols]", "[id_plugin]"))["id_plugin"]
    kept = pdf[pdf.arm != "other"]
    assert text["estimate"] == pytest.approx(backdoor_numpy(kept), rel=1e-9)
    assert set(text["diagnostics"]["do_means"]) == {"arm=new", "arm=old"}
    assert text["diagnostics"]["levels"]["arm"] == ["new", "old"]
    coded = pdf.assign(arm=pdf.arm.map({"new": 1, "old": 0, "other": 2}))
    numbers = run(spark, tmp_path, coded.drop(columns="d"),
                  spec.replace("[id_plugin, ols]", "[id_plugin]").replace("{treated: new, control: old}",
                                                                        "{treated: 1, control: 0}"))["id_plugin"]
    for key in ("estimate", "se", "ci_low", "ci_high"):
        assert numbers[key] == pytest.approx(text[key], rel=1e-12), key


def test_too_many_levels_are_refused_naming_the_variable_and_the_count(spark, tmp_path):
    """More levels than preparation codes (200), or than id_plugin's max_levels (50): an
    estimate that says why, not a Spark failure."""
    rng = np.random.default_rng(3)
    n = 2000
    d = rng.binomial(1, 0.5, n)
    spec = SPEC.replace("[id_plugin, ols]", "[id_plugin]")
    for levels, reason in ((250, "id_plugin variable 'cat' has 250 distinct values; at most 200"),
                           (60, "variable 'cat' has 60 levels, more than max_levels=50")):
        cat = np.array([f"c{k:03d}" for k in range(levels)])[np.arange(n) % levels]
        pdf = pd.DataFrame({"uid": np.arange(n), "cat": cat, "d": d, "y": rng.binomial(1, 0.3, n)})
        got = run(spark, tmp_path, pdf, spec)["id_plugin"]
        assert got["estimate"] is None and reason in got["reason"], got["reason"]
