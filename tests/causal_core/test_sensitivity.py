"""Omitted-variable-bias sensitivity and E-values: published values (Cinelli & Hazlett 2020 on
the Darfur data; VanderWeele & Ding 2017), the authors' own Python implementation
(pysensemakr) as an independent computation, statsmodels for the Gram-matrix route, and
simulated data with a planted confounder of known strength."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import sensemakr
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from causal_core.errors import EstimationError, SpecError
from causal_core.refuters.sensitivity import (
    Benchmark, LinearFit, adjusted_estimate, adjusted_se, adjusted_t, benchmark_bounds, benchmark_from_gram,
    contour_grid, e_value, e_value_of, group_partial_r2_from_gram, ols_from_gram, omitted_variable_bias,
    partial_r2, partial_r2_from_gram, robustness_value,
)

FORMULA = ("peacefactor ~ directlyharmed + age + farmer_dar + herder_dar + pastvoted + hhsize_darfur + female"
           " + village")
EXACT = 1e-10


def gram_of(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """What the moment engine sums: the Gram matrix of (1, columns)."""
    v = np.column_stack([np.ones(len(frame)), frame[columns].to_numpy(dtype=float)])
    return v.T @ v, ["1", *columns]


@pytest.fixture(scope="module")
def darfur():
    """The Darfur survey (Hazlett 2019) shipped with pysensemakr; village enters as dummies."""
    data = sensemakr.load_darfur()
    model = smf.ols(FORMULA, data=data).fit()
    exog = pd.DataFrame(model.model.exog, columns=model.model.exog_names).drop(columns="Intercept")
    frame = exog.assign(peacefactor=model.model.endog)
    gram, names = gram_of(frame, list(frame.columns))
    covariates = [c for c in exog.columns if c != "directlyharmed"]
    fit = ols_from_gram(gram, names, "peacefactor", "directlyharmed", covariates)
    female = benchmark_from_gram(gram, names, "peacefactor", "directlyharmed", covariates, "female")
    return dict(model=model, gram=gram, names=names, covariates=covariates, fit=fit, female=female,
                ovb=omitted_variable_bias(fit, [female], kd=(1, 2, 3), treatment="directlyharmed"))


def test_darfur_published_values(darfur):
    """Cinelli & Hazlett (2020) on Darfur, to the digits the paper prints: estimate 0.097, se
    0.023, t 4.18, R²(Y~D|X) 2.19%, RV 13.9%, RV(α=0.05) 7.6%, and adjusted estimates 0.075,
    0.053, 0.030 for confounders 1-3 times as strong as female; and the same analysis as the
    authors' R package sensemakr prints it (README, print and summary output)."""
    ovb = darfur["ovb"]
    assert (round(ovb.estimate, 3), round(ovb.se, 3), round(ovb.t, 2)) == (0.097, 0.023, 4.18)
    assert (round(100 * ovb.r2yd_x, 2), round(100 * ovb.rv_q, 1), round(100 * ovb.rv_qa, 1)) == (2.19, 13.9, 7.6)
    assert ovb.dof == 783
    assert [round(b.estimate, 3) for b in ovb.bounds] == [0.075, 0.053, 0.030]
    # the R package's printed output (5 and 4 decimals)
    assert (round(ovb.estimate, 5), round(ovb.se, 5), round(ovb.t, 5)) == (0.09732, 0.02326, 4.18445)
    assert (round(ovb.r2yd_x, 5), round(ovb.rv_q, 5), round(ovb.rv_qa, 5)) == (0.02187, 0.13878, 0.07626)
    printed = [("1x female", 0.0092, 0.1246, 0.0752, 0.0219, 3.4389, 0.0323, 0.1182),
               ("2x female", 0.0183, 0.2493, 0.0529, 0.0204, 2.6002, 0.0130, 0.0929),
               ("3x female", 0.0275, 0.3741, 0.0304, 0.0187, 1.6281, -0.0063, 0.0670)]
    ours = [(b.label, *(round(v, 4) for v in (b.r2dz_x, b.r2yz_dx, b.estimate, b.se, b.t, b.ci_low, b.ci_high)))
            for b in ovb.bounds]
    assert ours == printed


# pysensemakr's own warnings: a duplicated intercept in its treatment regression, pandas deprecations.
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::FutureWarning",
                            "ignore::statsmodels.tools.sm_exceptions.SingularMatrixWarning")
def test_darfur_equals_pysensemakr(darfur):
    """The authors' Python implementation, fed the statsmodels fit, agrees to 1e-10."""
    model, ovb, fit = darfur["model"], darfur["ovb"], darfur["fit"]
    ref = sensemakr.Sensemakr(model=model, treatment="directlyharmed", benchmark_covariates=["female"],
                              kd=[1, 2, 3], q=1, alpha=0.05)
    st = ref.sensitivity_stats
    for ours, theirs in [(ovb.estimate, st["estimate"]), (ovb.se, st["se"]), (ovb.r2yd_x, st["r2yd_x"]),
                         (ovb.rv_q, st["rv_q"]), (ovb.rv_qa, st["rv_qa"])]:
        assert ours == pytest.approx(float(theirs), rel=EXACT, abs=EXACT)
    bounds = ref.bounds
    for col, attr in [("r2dz_x", "r2dz_x"), ("r2yz_dx", "r2yz_dx"), ("adjusted_estimate", "estimate"),
                      ("adjusted_se", "se"), ("adjusted_t", "t"), ("adjusted_lower_CI", "ci_low"),
                      ("adjusted_upper_CI", "ci_high")]:
        np.testing.assert_allclose([getattr(b, attr) for b in ovb.bounds], bounds[col].to_numpy(), rtol=EXACT)
    for q, alpha in [(0.5, None), (0.5, 0.05), (1.0, 0.1), (0.25, 0.01)]:
        theirs = sensemakr.robustness_value(t_statistic=fit.t, dof=fit.dof, q=q, alpha=1.0 if alpha is None else alpha)
        assert robustness_value(fit.t, fit.dof, q, alpha) == pytest.approx(float(np.asarray(theirs)[0]), rel=EXACT)
    grid = np.array([0.0, 0.01, 0.05, 0.2, 0.5])
    for rd in grid:
        for reduce in (True, False):
            kw = dict(estimate=fit.estimate, se=fit.se, dof=fit.dof, r2dz_x=rd, r2yz_dx=grid)
            np.testing.assert_allclose(adjusted_estimate(fit, rd, grid, reduce),
                                       sensemakr.adjusted_estimate(reduce=reduce, **kw), rtol=EXACT, atol=EXACT)
            np.testing.assert_allclose(adjusted_t(fit, rd, grid, reduce),
                                       sensemakr.adjusted_t(reduce=reduce, **kw), rtol=EXACT, atol=EXACT)
        np.testing.assert_allclose(adjusted_se(fit, rd, grid),
                                   sensemakr.adjusted_se(se=fit.se, dof=fit.dof, r2dz_x=rd, r2yz_dx=grid), rtol=EXACT)


def test_gram_route_equals_statsmodels(darfur):
    """Estimate, se, dof and the benchmark partial R² from the Gram matrix alone equal
    statsmodels regressions on the rows."""
    model, gram, names, covariates, fit = (darfur[k] for k in ("model", "gram", "names", "covariates", "fit"))
    assert fit.estimate == pytest.approx(model.params["directlyharmed"], rel=1e-10)
    assert fit.se == pytest.approx(model.bse["directlyharmed"], rel=1e-10)
    assert fit.dof == model.df_resid
    exog = pd.DataFrame(model.model.exog, columns=model.model.exog_names)
    treatment_fit = sm.OLS(exog["directlyharmed"], exog.drop(columns="directlyharmed")).fit()
    t_d, t_y = treatment_fit.tvalues["female"], model.tvalues["female"]
    female = darfur["female"]
    assert female.r2dxj_x == pytest.approx(partial_r2(t_d, treatment_fit.df_resid), rel=1e-9)
    assert female.r2yxj_dx == pytest.approx(partial_r2(t_y, model.df_resid), rel=1e-9)
    rest = [c for c in covariates if c != "female"]
    assert partial_r2_from_gram(gram, names, "peacefactor", "female", ["directlyharmed", *rest]) == pytest.approx(
        female.r2yxj_dx, rel=1e-12)
    # a group: the 485 village dummies, against the restricted regression's residual sum of squares
    village = [c for c in covariates if c.startswith("village")]
    without = sm.OLS(model.model.endog, exog.drop(columns=village)).fit()
    expected = 1 - model.ssr / without.ssr
    others = [c for c in covariates if c not in village]
    got = group_partial_r2_from_gram(gram, names, "peacefactor", village, ["directlyharmed", *others])
    assert got == pytest.approx(expected, rel=1e-9)
    assert expected > 0.3  # village explains much: the comparison is not of two zeros


def planted(n: int, seed: int) -> pd.DataFrame:
    """x1, x2, z ~ N(0, 1) independent; d = 0.5 x1 - 0.3 x2 + 0.6 z + e; y = d + 0.8 x1 + 0.4 x2 + 0.7 z + e.
    Population: R²(D~Z|X) = 0.36 / 1.36, R²(Y~Z|D,X) = 0.49 (1 - R²dz) / (0.49 (1 - R²dz) + 1)."""
    rng = np.random.default_rng(seed)
    x1, x2, z = rng.normal(size=(3, n))
    d = 0.5 * x1 - 0.3 * x2 + 0.6 * z + rng.normal(size=n)
    y = 1.0 * d + 0.8 * x1 + 0.4 * x2 + 0.7 * z + rng.normal(size=n)
    return pd.DataFrame({"x1": x1, "x2": x2, "z": z, "d": d, "y": y})


TRUE_R2DZ = 0.36 / 1.36
TRUE_R2YZ = 0.49 * (1 - TRUE_R2DZ) / (0.49 * (1 - TRUE_R2DZ) + 1)


def test_planted_confounder_sample_strengths_recover_the_full_regression_exactly():
    """In sample, OVB in partial R² is an identity: at Z's own partial R², the adjusted
    estimate and se are the coefficient and se of the regression that includes Z."""
    frame = planted(2000, 11)
    gram, names = gram_of(frame, ["d", "x1", "x2", "z", "y"])
    short = ols_from_gram(gram, names, "y", "d", ["x1", "x2"])
    rd = partial_r2_from_gram(gram, names, "d", "z", ["x1", "x2"])
    ry = partial_r2_from_gram(gram, names, "y", "z", ["d", "x1", "x2"])
    long = sm.OLS(frame["y"], sm.add_constant(frame[["d", "x1", "x2", "z"]])).fit()
    assert float(adjusted_estimate(short, rd, ry)) == pytest.approx(long.params["d"], rel=1e-10)
    assert float(adjusted_se(short, rd, ry)) == pytest.approx(long.bse["d"], rel=1e-10)
    assert float(adjusted_t(short, rd, ry)) == pytest.approx(long.tvalues["d"], rel=1e-10)


def test_planted_confounder_population_strengths_remove_the_bias():
    """At the true population (R²(D~Z|X), R²(Y~Z|D,X)) the adjusted estimate lands on the true
    effect 1.0 within sampling error, where the naive estimate is off by about 0.31."""
    frame = planted(40_000, 5)
    gram, names = gram_of(frame, ["d", "x1", "x2", "y"])
    fit = ols_from_gram(gram, names, "y", "d", ["x1", "x2"])
    assert fit.estimate - 1.0 == pytest.approx(0.42 / 1.36, abs=0.03)
    adj, se = float(adjusted_estimate(fit, TRUE_R2DZ, TRUE_R2YZ)), float(adjusted_se(fit, TRUE_R2DZ, TRUE_R2YZ))
    assert abs(adj - 1.0) < 4 * se + 0.005, (adj, se)
    # the benchmark machinery: Z, had it been observed, is "1x z"
    gram_z, names_z = gram_of(frame, ["d", "x1", "x2", "z", "y"])
    bench = benchmark_from_gram(gram_z, names_z, "y", "d", ["x1", "x2", "z"], "z")
    assert bench.r2dxj_x == pytest.approx(TRUE_R2DZ, abs=0.01)


def test_robustness_values_are_the_thresholds_they_claim():
    """At (RV_q, RV_q) the adjusted estimate is (1 - q) b; at RV_{q,α} the adjusted t reaches the
    critical value, and no confounder weaker in both partial R² gets there."""
    fit = LinearFit(0.6, 0.1, 500.0)
    for q in (1.0, 0.5):
        rv = robustness_value(fit.t, fit.dof, q)
        assert float(adjusted_estimate(fit, rv, rv)) == pytest.approx((1 - q) * fit.estimate, abs=1e-12)
        rva = robustness_value(fit.t, fit.dof, q, 0.05)
        crit = stats.t.isf(0.025, fit.dof - 1)
        assert 0 < rva < rv
        assert float(adjusted_t(fit, rva, rva, h0=(1 - q) * fit.estimate)) == pytest.approx(crit, rel=1e-10)
        grid = np.linspace(0, rva * 0.999, 60)
        rd, ry = np.meshgrid(grid, grid)
        assert adjusted_t(fit, rd, ry, h0=(1 - q) * fit.estimate).min() > crit
    # a huge t: f_q > 1/f*, the least-strength confounder sits off the diagonal
    big = LinearFit(6.0, 0.1, 100.0)
    fcrit = stats.t.isf(0.025, 99) / math.sqrt(99)
    assert big.t / math.sqrt(big.dof) > 1 / fcrit
    rva = robustness_value(big.t, big.dof, 1.0, 0.05)
    assert float(adjusted_t(big, rva, rva / (rva + fcrit ** 2))) == pytest.approx(stats.t.isf(0.025, 99), rel=1e-9)
    grid = np.linspace(0, rva * 0.999, 200)
    rd, ry = np.meshgrid(grid, grid)
    assert adjusted_t(big, rd, ry).min() > stats.t.isf(0.025, 99)
    # not significant to begin with: nothing is needed
    assert robustness_value(1.5, 100, 1.0, 0.05) == 0.0


def test_benchmark_bounds_formula_and_limits():
    bench = Benchmark("w", 0.1, 0.2)
    rd, ry = benchmark_bounds(bench, 2.0, 3.0)
    eta = 2 * 0.01 / ((1 - 0.2) * 0.9)
    assert rd == pytest.approx(2 * 0.1 / 0.9, rel=1e-14)
    assert ry == pytest.approx((math.sqrt(3) + math.sqrt(eta)) ** 2 / (1 - eta) * 0.2 / 0.8, rel=1e-14)
    with pytest.raises(EstimationError, match="benchmark 'w'.*smaller kd"):
        benchmark_bounds(bench, 9.5)
    with pytest.raises(EstimationError, match=r"R²\(Y~Z\|D,X\) = .* > 1"):
        benchmark_bounds(Benchmark("w", 0.1, 0.5), 1.0, 2.0)
    with pytest.raises(EstimationError, match="benchmark 'w'"):
        Benchmark("w", 1.0, 0.1)


def test_contour_grid(darfur):
    fit = darfur["fit"]
    grid = contour_grid(fit)
    assert len(grid.r2dz_x) == len(grid.r2yz_dx) == 41 and grid.r2dz_x[-1] == 0.4
    est = np.array(grid.estimate)
    assert est[0, 0] == pytest.approx(fit.estimate, rel=1e-15)
    assert np.all(np.diff(est, axis=0) <= 0) and np.all(np.diff(est, axis=1) <= 0)
    i, j = grid.r2dz_x.index(0.05), grid.r2yz_dx.index(0.3)
    ref = sensemakr.adjusted_estimate(estimate=fit.estimate, se=fit.se, dof=fit.dof, r2dz_x=0.05, r2yz_dx=0.3)
    assert est[i, j] == pytest.approx(float(np.asarray(ref).ravel()[0]), rel=EXACT)
    assert grid.t[i][j] == pytest.approx(float(adjusted_t(fit, 0.05, 0.3)), rel=EXACT)
    edge = contour_grid(fit, [0.1], [1.0])
    assert edge.t == ((-math.inf,),)  # R²(Y~Z|D,X) = 1 leaves no residual: se 0, estimate below 0
    assert json.loads(json.dumps(edge.to_dict()))["t"] == [[None]]


def test_result_value_dict_text_and_frozen(darfur):
    ovb = darfur["ovb"]
    data = json.loads(json.dumps(ovb.to_dict()))
    assert data["treatment"] == "directlyharmed" and data["dof"] == 783
    assert [b["label"] for b in data["bounds"]] == ["1x female", "2x female", "3x female"]
    assert data["bounds"][0]["estimate"] == pytest.approx(0.07522, abs=5e-6)
    table = ovb.summary()
    assert list(table["label"]) == ["unadjusted", "1x female", "2x female", "3x female"]
    text = str(ovb)
    assert "13.88%" in text and "7.63%" in text and "3x female" in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        ovb.rv_q = 0.5
    with pytest.raises(EstimationError, match="rv_qa <= rv_q"):
        dataclasses.replace(ovb, rv_qa=0.5)


def test_gram_errors_name_the_columns():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "y"]).assign(d=lambda f: rng.normal(size=50))
    frame["c"] = frame["a"] - 2 * frame["b"]
    gram, names = gram_of(frame, ["d", "a", "b", "c", "y"])
    with pytest.raises(EstimationError, match="collinear columns: a, b, c"):
        ols_from_gram(gram, names, "y", "d", ["a", "b", "c"])
    with pytest.raises(EstimationError, match=r"\['nope'\] not among"):
        ols_from_gram(gram, names, "y", "d", ["a", "nope"])
    with pytest.raises(EstimationError, match=r"\['a'\] are linear functions of \['b', 'c'\]"):
        ols_from_gram(gram, names, "y", "a", ["b", "c"])
    shifted = frame.assign(k=1e6 + 0.25)  # constant: its centred sum of squares is rounding noise
    gram_k, names_k = gram_of(shifted, ["d", "a", "k", "y"])
    with pytest.raises(EstimationError, match=r"constant columns have no partial correlation: \['k'\]"):
        partial_r2_from_gram(gram_k, names_k, "y", "d", ["a", "k"])
    with pytest.raises(EstimationError, match="must be among the covariates"):
        benchmark_from_gram(gram, names, "y", "d", ["a"], "b")
    with pytest.raises(SpecError, match="kd .* and ky .* same length"):
        omitted_variable_bias(LinearFit(1.0, 0.5, 50), [Benchmark("a", 0.1, 0.1)], kd=(1, 2), ky=(1,))


def test_e_value_published_example():
    """VanderWeele & Ding (2017): breastfeeding and infant death, RR 3.9 (95% CI 1.8 to 8.7):
    E-value 7.26 for the estimate and 3.0 for the lower limit."""
    ev = e_value(3.9, 1.8, 8.7)
    assert (round(ev.point, 2), round(ev.ci, 1)) == (7.26, 3.0)
    assert ev.point == pytest.approx(3.9 + math.sqrt(3.9 * 2.9), rel=1e-15)


@pytest.mark.parametrize("rr", [1.01, 1.3, 2.0, 3.9, 17.0])
def test_e_value_is_where_the_bounding_factor_equals_the_risk_ratio(rr):
    """Ding & VanderWeele (2016): a confounder with RR_EU = RR_UD = E can at most produce
    E² / (2E - 1); the E-value is the E at which that equals the observed RR."""
    e = e_value_of(rr)
    assert e * e / (2 * e - 1) == pytest.approx(rr, rel=1e-12)
    assert e_value_of(1 / rr) == pytest.approx(e, rel=1e-12)  # protective: inverted


def test_e_value_directions_and_conversions():
    protective = e_value(0.8, 0.7, 0.95)
    mirrored = e_value(1.25, 1 / 0.95, 1 / 0.7)
    assert protective.point == pytest.approx(mirrored.point, rel=1e-14)
    assert protective.ci == pytest.approx(mirrored.ci, rel=1e-14)
    assert e_value(1.5, 0.9, 2.5).ci == 1.0 and e_value(0.7, 0.4, 1.1).ci == 1.0
    assert e_value(2.0).ci is None
    assert e_value(2.0, measure="or").risk_ratio == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert e_value(2.0, 1.5, 2.7, measure="or-rare").point == pytest.approx(e_value_of(2.0), rel=1e-15)
    hr = e_value(2.0, measure="hr")
    assert hr.risk_ratio == pytest.approx((1 - 0.5 ** math.sqrt(2)) / (1 - 0.5 ** math.sqrt(0.5)), rel=1e-15)
    smd = e_value(0.5, measure="smd", se=0.1)
    assert smd.risk_ratio == pytest.approx(math.exp(0.455), rel=1e-15)
    assert smd.ci == pytest.approx(e_value_of(math.exp(0.455 - 0.178)), rel=1e-12)
    assert "exp(0.91 d)" in smd.conversion
    assert json.loads(json.dumps(smd.to_dict()))["measure"] == "smd"
    with pytest.raises(SpecError, match="expected one of"):
        e_value(2.0, measure="relative risk")
    with pytest.raises(EstimationError, match="does not contain"):
        e_value(2.0, 2.5, 3.0)
    with pytest.raises(EstimationError, match="positive"):
        e_value(-1.0)
