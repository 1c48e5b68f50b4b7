"""Absorbed fixed effects in ols and iv (pandas engine), held to the regressions with level
dummies (statsmodels, linearmodels) and to pyfixest's absorbed fits; the spec field and which
estimators may run with it."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from causal_core.errors import EstimationError, SpecError
from causal_core.estimators import BootstrapOptions, ModelRoles
from causal_core.estimators.iv import IV
from causal_core.estimators.ols import OLS
from causal_core.identification import identify
from causal_core.moments.pandas_engine import PandasMomentEngine
from causal_core.refuters.ovb_refuter import sensitivity_from_gram
from causal_core.spec import parse_spec
from causal_core.study import choose_estimators

G, N, EFFECT = 60, 3000, 1.5
NO_BOOT = BootstrapOptions(replicates=0)


def simulate(seed: int = 0) -> pd.DataFrame:
    """A binary treatment and an outcome that both depend on a 60-level group intercept."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, G, N)
    alpha = 2.0 * rng.normal(size=G)
    x1, x2 = rng.normal(size=N) + alpha[g], rng.normal(size=N)
    d = (rng.random(N) < 1 / (1 + np.exp(-(alpha[g] + 0.5 * x1)))).astype(float)
    y = EFFECT * d + 0.7 * x1 - 0.3 * x2 + 3.0 * alpha[g] + rng.normal(size=N)
    return pd.DataFrame(dict(d=d, y=y, x1=x1, x2=x2, g=g.astype(float), unit=rng.integers(0, 400, N)))


def design(clustered: bool = False) -> ModelRoles:
    return ModelRoles("d", "y", ("x1", "x2"), fixed_effects=(("g", G),), clustered=clustered)


def dummies_fit(df: pd.DataFrame, **fit):
    dummies = pd.get_dummies(df.g.astype(int), prefix="g", drop_first=True).astype(float)
    return sm.OLS(df.y, sm.add_constant(pd.concat([df[["d", "x1", "x2"]], dummies], axis=1))).fit(**fit)


def fit_ols(frame: pd.DataFrame, cov_type: str, clustered: bool = False, **options):
    est = OLS(cov_type=cov_type, bootstrap=options.pop("bootstrap", NO_BOOT), **options)
    return est.fit(PandasMomentEngine(frame, n_buckets=100), design(clustered))


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC1"])
def test_ols_equals_the_regression_with_level_dummies(cov_type):
    df = simulate()
    est = fit_ols(df.drop(columns="unit"), cov_type)
    ref = dummies_fit(df, cov_type=cov_type)
    r = est.result_
    assert r.estimate == pytest.approx(ref.params["d"], abs=1e-8)
    assert r.se == pytest.approx(ref.bse["d"], rel=1e-6)
    assert r.diagnostics["fixed_effects"]["levels"] == G and r.diagnostics["fixed_effects"]["absorbed"] == G - 1
    assert abs(r.estimate - EFFECT) < 4 * r.se
    naive = sm.OLS(df.y, sm.add_constant(df[["d", "x1", "x2"]])).fit().params["d"]
    assert abs(naive - EFFECT) > 10 * r.se  # the group intercepts confound the model without them


def test_cluster_robust_by_unit_counts_absorbed_levels_unless_nested():
    """Units that cut across levels: statsmodels' dummies regression clustered by unit. Levels
    that are the clusters: Stata's convention, which leaves the nested levels out of k —
    statsmodels' SE rescaled by sqrt((n - K_dummies) / (n - k))."""
    df = simulate()
    across = fit_ols(df.rename(columns={"unit": "__unit"}), "HC1", clustered=True).result_
    ref = dummies_fit(df, cov_type="cluster", cov_kwds={"groups": df.unit})
    assert across.se == pytest.approx(ref.bse["d"], rel=1e-6)
    assert across.diagnostics["cov_type"] == "cluster"
    assert across.diagnostics["fixed_effects"]["nested_in_clusters"] is False
    nested = fit_ols(df.drop(columns="unit").assign(__unit=df.g), "HC1", clustered=True).result_
    ref = dummies_fit(df, cov_type="cluster", cov_kwds={"groups": df.g})
    rescale = np.sqrt((N - ref.df_model - 1) / (N - 4))
    assert nested.diagnostics["fixed_effects"]["nested_in_clusters"] is True
    assert nested.se == pytest.approx(ref.bse["d"] * rescale, rel=1e-6)


def test_ols_equals_pyfixest():
    pf = pytest.importorskip("pyfixest")
    df = simulate(2)
    data = df.assign(g=df.g.astype(int))
    cases = [("nonrobust", "iid", None), ("HC1", "hetero", None), ("HC1", {"CRV1": "unit"}, "unit"),
             ("HC1", {"CRV1": "g"}, "g")]
    for cov_type, vcov, cluster in cases:
        frame = df.drop(columns="unit") if cluster is None else df.drop(columns="unit").assign(__unit=df[cluster])
        r = fit_ols(frame, cov_type, clustered=cluster is not None).result_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = pf.feols("y ~ d + x1 + x2 | g", data=data, vcov=vcov, fixef_rm="none")
        assert r.estimate == pytest.approx(ref.coef()["d"], abs=1e-8)
        assert r.se == pytest.approx(ref.se()["d"], rel=1e-6), (cov_type, vcov)


def test_the_bucket_bootstrap_and_bucket_clusters_agree_with_hc1():
    df = simulate(3).drop(columns="unit")
    engine = PandasMomentEngine(df, n_buckets=1000)
    boot = OLS(cov_type="HC1", bootstrap=BootstrapOptions(replicates=1000, seed=4)).fit(engine, design()).result_
    buckets = OLS(cov_type="buckets", bootstrap=NO_BOOT).fit(engine, design()).result_
    hc1 = boot.diagnostics["analytic_se"]
    assert boot.diagnostics["bootstrap_se"] == pytest.approx(hc1, rel=0.1)
    assert buckets.se == pytest.approx(hc1, rel=0.1)
    assert buckets.estimate == boot.estimate


def test_the_linear_gram_drives_the_sensitivity_refuter_with_absorbed_dof():
    """Cinelli & Hazlett's t, dof and partial R² of the treatment from ``linear_gram_`` equal
    the dummies regression's."""
    df = simulate(5).drop(columns="unit")
    est = fit_ols(df, "nonrobust")
    assert est.linear_gram_.absorbed == G - 1
    ovb, _ = sensitivity_from_gram(est.linear_gram_, benchmarks=["x2"])
    ref = dummies_fit(df)
    assert ovb.dof == ref.df_resid
    assert ovb.estimate == pytest.approx(ref.params["d"], abs=1e-8)
    assert ovb.se == pytest.approx(ref.bse["d"], rel=1e-6)
    t = ref.tvalues["d"]
    assert ovb.r2yd_x == pytest.approx(t * t / (t * t + ref.df_resid), rel=1e-6)


@pytest.mark.filterwarnings("ignore::causal_core.estimators.weighting.PropensityWarning")
def test_ols_without_fixed_effects_keeps_the_plain_gram():
    df = simulate().drop(columns=["unit", "g"])
    est = OLS(interactions=False, bootstrap=NO_BOOT).fit(PandasMomentEngine(df, n_buckets=64),
                                                           ModelRoles("d", "y", ("x1", "x2")))
    assert est.linear_gram_.absorbed == 0
    assert est.linear_gram_.gram[0, 0] == N
    ovb, _ = sensitivity_from_gram(est.linear_gram_)
    assert ovb.estimate == pytest.approx(est.result_.estimate, rel=1e-10)


def test_level_wide_covariates_and_interactions_are_refused_by_name():
    df = simulate().drop(columns="unit")
    df["level_wide"] = df.g * 0.5 + 1.0
    roles = ModelRoles("d", "y", ("x1", "level_wide"), fixed_effects=(("g", G),))
    with pytest.raises(EstimationError, match="'level_wide' do not vary within the levels of fixed effect 'g'"):
        OLS(bootstrap=NO_BOOT).fit(PandasMomentEngine(df, n_buckets=64), roles)
    with pytest.raises(EstimationError, match="interactions=True cannot be fitted with an absorbed fixed effect"):
        OLS(interactions=True, bootstrap=NO_BOOT).fit(PandasMomentEngine(df, n_buckets=64), design())


def simulate_iv(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, groups = 2500, 40
    g = rng.integers(0, groups, n)
    alpha = rng.normal(size=groups)
    w1 = rng.normal(size=n) + alpha[g]
    z = rng.normal(size=n) + 0.5 * alpha[g]
    u = rng.normal(size=n)
    d = 0.8 * z + 0.3 * w1 + alpha[g] + u + rng.normal(size=n)
    y = 2.0 * d + 0.5 * w1 + 2.0 * alpha[g] + 1.5 * u + rng.normal(size=n)
    return pd.DataFrame(dict(d=d, y=y, w1=w1, z=z, g=g.astype(float), unit=rng.integers(0, 300, n)))


@pytest.mark.parametrize("cov_type,clustered", [("nonrobust", False), ("HC1", False), ("HC1", True)])
def test_iv_equals_2sls_with_level_dummies(cov_type, clustered):
    linearmodels = pytest.importorskip("linearmodels")
    df = simulate_iv()
    frame = df.rename(columns={"unit": "__unit"}) if clustered else df.drop(columns="unit")
    roles = ModelRoles("d", "y", ("w1",), instruments=("z",), kind="iv", strategy="iv", fixed_effects=(("g", 40),),
                       clustered=clustered)
    r = IV(cov_type=cov_type, bootstrap=NO_BOOT).fit(PandasMomentEngine(frame, n_buckets=100), roles).result_
    dummies = pd.get_dummies(df.g.astype(int), prefix="g", drop_first=True).astype(float)
    exog = pd.concat([pd.Series(1.0, index=df.index, name="const"), df[["w1"]], dummies], axis=1)
    cov = dict(cov_type="clustered", clusters=df.unit) if clustered else \
        dict(cov_type={"nonrobust": "unadjusted", "HC1": "robust"}[cov_type])
    ref = linearmodels.iv.IV2SLS(df.y, exog, df[["d"]], df[["z"]]).fit(debiased=True, **cov)
    assert r.estimate == pytest.approx(ref.params["d"], abs=1e-8)
    assert r.se == pytest.approx(ref.std_errors["d"], rel=1e-6)
    assert abs(r.estimate - 2.0) < 4 * r.se
    if cov_type == "nonrobust":
        f = ref.first_stage.diagnostics["f.stat"].iloc[0]
        assert r.diagnostics["first_stage_f"] == pytest.approx(f, rel=1e-6)


SPEC = """
name: fe
data: {path: /nowhere}
graph: |
  v -> d -> y
  v -> y
  x -> d
  x -> y
treatment: d
outcome: y
fixed_effects: FE
estimators: [ols, ipw]
"""


def test_an_unknown_fixed_effect_is_a_spec_error_naming_the_field():
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.replace("FE", "[vilage]"))
    assert ("fixed_effects", "'vilage' is not an observed variable of the graph") in err.value.problems
    with pytest.raises(SpecError, match="fixed_effects: 'y' is the treatment or an outcome"):
        parse_spec(SPEC.replace("FE", "[y]"))
    spec = parse_spec(SPEC.replace("FE", "[v]"))
    assert spec.fixed_effects == ("v",) and spec.ignored_fields() == ()
    assert spec.spec_hash() != parse_spec(SPEC.replace("FE", "[x]")).spec_hash()


def test_estimators_that_do_not_absorb_need_an_encoding():
    spec = parse_spec(SPEC.replace("FE", "[v]"))
    plan = identify(spec.graph, "d", "y")
    ols, ipw = choose_estimators(spec, plan)
    assert ols.strategy is not None
    assert ipw.strategy is None and "fixed_effects" in ipw.reason and "encode.v" in ipw.reason
    encoded = parse_spec(SPEC.replace("FE", "[v]") + "encode: {v: categorical}\n")
    assert all(s.strategy is not None for s in choose_estimators(encoded, plan))
    auto = parse_spec(SPEC.replace("FE", "[v]").replace("[ols, ipw]", "auto"))
    assert "ols" in [s.name for s in choose_estimators(auto, plan)]
    assert all(s.strategy is not None for s in choose_estimators(auto, plan))
