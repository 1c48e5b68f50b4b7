"""id_plugin: discrete plug-in of identification formulas from per-bucket cell counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import EstimationError
from causal_core.identification.estimand import backdoor_expression, frontdoor_expression
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.moments import PandasMomentEngine

P_X_U = (0.2, 0.8)  # P(X = 1 | U = u)
P_M_X = ((0.6, 0.3, 0.1), (0.1, 0.3, 0.6))  # P(M = m | X = x), m = 0, 1, 2
P_Y_MU = lambda m, u: 0.1 + 0.25 * m + 0.3 * u  # noqa: E731  P(Y = 1 | M = m, U = u)


def frontdoor_data(n: int, seed: int) -> pd.DataFrame:
    """U (latent) -> X, U -> Y, X -> M -> Y; U is not in the frame."""
    rng = np.random.default_rng(seed)
    u = rng.binomial(1, 0.5, n)
    x = rng.binomial(1, np.take(P_X_U, u))
    m = (rng.random(n)[:, None] > np.cumsum(np.take(P_M_X, x, axis=0), axis=1)).sum(axis=1)
    y = rng.binomial(1, P_Y_MU(m, u))
    return pd.DataFrame({"X": x, "M": m, "Y": y}).astype(float).assign(__unit=np.arange(n))


def frontdoor_truth() -> float:
    """E[Y | do(X=1)] - E[Y | do(X=0)] from the structural model (U marginalised)."""
    def mean(x):
        return sum(P_M_X[x][m] * 0.5 * sum(P_Y_MU(m, u) for u in (0, 1)) for m in range(3))
    return mean(1) - mean(0)


def frontdoor_numpy(df: pd.DataFrame) -> float:
    """The front-door formula by hand: sum_m P(m|x) sum_x' P(x') E[Y | m, x']."""
    px = df.X.value_counts(normalize=True)
    pm_x = pd.crosstab(df.X, df.M, normalize="index")
    ey = df.groupby(["M", "X"]).Y.mean()
    def mean(x):
        return sum(pm_x.loc[x, m] * sum(px[x2] * ey[(m, x2)] for x2 in (0.0, 1.0)) for m in pm_x.columns)
    return mean(1.0) - mean(0.0)


def backdoor_data(n: int, seed: int) -> pd.DataFrame:
    """Z (3 levels) -> X, Z -> Y, X -> Y; Y in {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=(0.5, 0.3, 0.2))
    x = rng.binomial(1, np.take((0.2, 0.5, 0.8), z))
    y = rng.binomial(2, 0.1 + 0.2 * x + 0.2 * z)
    return pd.DataFrame({"Z": z, "X": x, "Y": y}).astype(float).assign(__unit=np.arange(n))


BACKDOOR_TRUTH = 2 * 0.2  # E[Y | do(1)] - E[Y | do(0)] = 2 * 0.2 in every stratum


def fit(df, expression, strategy="frontdoor", n_buckets=100, clustered=False, **options):
    variables = tuple(c for c in df.columns if not c.startswith("__"))
    design = ModelRoles(treatment="X", outcome="Y", strategy=strategy, variables=variables, expression=expression,
                    clustered=clustered)
    return get_estimator("id_plugin")(**options).fit(PandasMomentEngine(df, n_buckets=n_buckets), design)


@pytest.fixture(scope="module")
def fd():
    return frontdoor_data(20_000, seed=1)


def test_frontdoor_matches_numpy_and_truth(fd):
    res = fit(fd, frontdoor_expression(["X"], ["Y"], ["M"])).result_
    assert res.estimate == pytest.approx(frontdoor_numpy(fd), rel=1e-9, abs=1e-12)
    truth = frontdoor_truth()
    assert abs(res.estimate - truth) < 4 * res.diagnostics["analytic_se"]
    naive = fd.Y[fd.X == 1].mean() - fd.Y[fd.X == 0].mean()
    assert abs(naive - truth) > 10 * res.diagnostics["analytic_se"]  # U confounds X and Y
    assert res.ci_method == "bootstrap-percentile" and len(res.replicates) == 200
    assert res.diagnostics["bootstrap_se"] == pytest.approx(res.diagnostics["analytic_se"], rel=0.2)
    assert res.contrast == "do(X=1) - do(X=0)"
    assert res.diagnostics["levels"] == {"X": [0.0, 1.0], "M": [0.0, 1.0, 2.0], "Y": [0.0, 1.0]}


def test_backdoor_numeric_outcome_and_levels_option():
    df = backdoor_data(20_000, seed=2)
    expr = backdoor_expression(["X"], ["Y"], ["Z"])
    res = fit(df, expr, strategy="backdoor", levels={"Z": (0, 1, 2), "X": (0, 1), "Y": (0, 1, 2)}).result_
    ey = df.groupby(["X", "Z"]).Y.mean()
    pz = df.Z.value_counts(normalize=True)
    by_hand = sum(pz[z] * (ey[(1.0, z)] - ey[(0.0, z)]) for z in (0.0, 1.0, 2.0))
    assert res.estimate == pytest.approx(by_hand, rel=1e-9)
    assert abs(res.estimate - BACKDOOR_TRUTH) < 4 * res.se
    # P(Y = 2 | do(x)) contrast instead of the mean
    p2 = fit(df, expr, strategy="backdoor", outcome_level=2.0, bootstrap=BootstrapOptions(replicates=0)).result_
    py = df.assign(y2=(df.Y == 2).astype(float)).groupby(["X", "Z"]).y2.mean()
    assert p2.estimate == pytest.approx(sum(pz[z] * (py[(1.0, z)] - py[(0.0, z)]) for z in pz.index), rel=1e-9)


def test_delta_method_se_matches_analytic_formula():
    """For P(y | do(x)) = P(y | x) (no adjustment) the delta SE is the two-sample one."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"X": rng.binomial(1, 0.4, 5000), "Y": rng.binomial(1, 0.3, 5000)}).astype(float)
    df["__unit"] = np.arange(len(df))
    res = fit(df, backdoor_expression(["X"], ["Y"], []), strategy="backdoor",
              bootstrap=BootstrapOptions(replicates=0)).result_
    y1, y0 = df.Y[df.X == 1], df.Y[df.X == 0]
    se = np.sqrt(y1.var(ddof=0) / len(y1) + y0.var(ddof=0) / len(y0))
    assert res.estimate == pytest.approx(y1.mean() - y0.mean(), rel=1e-12)
    assert res.se == pytest.approx(se, rel=1e-5)
    assert res.ci_method == "analytic"


def test_clustered_delta_se(fd):
    dup = pd.concat([fd] * 2, ignore_index=True)
    expr = frontdoor_expression(["X"], ["Y"], ["M"])
    rows = fit(dup, expr, bootstrap=BootstrapOptions(replicates=0)).result_
    units = fit(dup, expr, clustered=True, bootstrap=BootstrapOptions(replicates=0)).result_
    assert units.estimate == pytest.approx(rows.estimate, rel=1e-12)
    assert units.se == pytest.approx(np.sqrt(2) * rows.se, rel=1e-4)  # each unit is counted twice


def test_levels_discovery_errors_and_registry(fd):
    expr = frontdoor_expression(["X"], ["Y"], ["M"])
    with pytest.raises(EstimationError, match="outside the integer codes"):
        fit(fd.assign(M=fd.M + 0.5), expr)
    with pytest.raises(EstimationError, match="outside the given levels"):
        fit(fd, expr, levels={"M": (0, 1)})
    with pytest.raises(EstimationError, match="exceed max_cells=8"):
        fit(fd, expr, max_cells=8)
    with pytest.raises(EstimationError, match="needs the estimand expression"):
        fit(fd, None)
    with pytest.raises(EstimationError, match="does not support the 'iv'"):
        fit(fd, expr, strategy="iv")
    with pytest.raises(EstimationError, match="treatment value 1 of 'X' does not occur"):
        fit(fd[fd.X == 0], expr)


def test_engine_can_supply_levels(fd):
    class LevelEngine(PandasMomentEngine):
        asked: list = []

        def distinct_values(self, column, limit):
            self.asked.append(column)
            return sorted(set(fd[column]))

    design = ModelRoles(treatment="X", outcome="Y", strategy="id", variables=("X", "M", "Y"),
                    expression=frontdoor_expression(["X"], ["Y"], ["M"]))
    eng = LevelEngine(fd, n_buckets=20)
    res = get_estimator("id_plugin")(bootstrap=BootstrapOptions(replicates=0)).fit(eng, design).result_
    assert eng.asked == ["X", "M", "Y"]
    assert res.estimate == pytest.approx(frontdoor_numpy(fd), rel=1e-9)


def test_rows_without_unit_id_warn_about_the_bucket_bootstrap(fd):
    """Hashing identical discrete rows puts them in one bucket: the warning says so."""
    with pytest.warns(UserWarning, match="identical rows share a bucket"):
        res = fit(fd.drop(columns="__unit"), frontdoor_expression(["X"], ["Y"], ["M"]),
                  bootstrap=BootstrapOptions(replicates=50)).result_
    assert res.diagnostics["bootstrap_se"] > 5 * res.diagnostics["analytic_se"]


def test_every_strategy_of_the_plan_gives_the_same_plug_in(fd):
    """identify() offers front-door and the general ID formula; both evaluate to the same
    number on the same joint, and an Estimand works as well as its Formula."""
    from causal_core.identification.plan import identify

    plan = identify("X <-> Y; X -> M -> Y", "X", "Y")
    kinds = {s.kind: s for s in plan.strategies}
    assert set(kinds) == {"frontdoor", "id"}
    values = []
    for kind, estimand in kinds.items():
        for expression in (estimand, estimand.expression):
            values.append(fit(fd, expression, strategy=kind, bootstrap=BootstrapOptions(replicates=0)).result_.estimate)
    assert values == pytest.approx([frontdoor_numpy(fd)] * 4, rel=1e-9)


def test_variables_default_to_those_the_expression_mentions(fd):
    """Without design.variables the joint covers what the formula names (through labels)."""
    frame = fd.rename(columns={"M": "__m0"})
    design = ModelRoles(treatment="X", outcome="Y", strategy="frontdoor", labels=(("__m0", "M"),),
                    expression=frontdoor_expression(["X"], ["Y"], ["M"]))
    est = get_estimator("id_plugin")(bootstrap=BootstrapOptions(replicates=0))
    res = est.fit(PandasMomentEngine(frame, n_buckets=20), design).result_
    assert list(est.levels_) == ["X", "Y", "__m0"]
    assert res.estimate == pytest.approx(frontdoor_numpy(fd), rel=1e-9)


@pytest.mark.parametrize("kind", ["frontdoor", "id", "backdoor"])
def test_batched_contrast_equals_row_by_row_evaluation(fd, kind):
    """The bootstrap and the delta-method gradient evaluate the formula on many joints at
    once; each must equal evaluating that joint alone (Formula.evaluate)."""
    from causal_core.estimators.id_plugin import Contrast, cell_exprs
    from causal_core.identification.plan import identify

    if kind == "backdoor":
        data, graph = backdoor_data(5000, seed=3), "Z -> X -> Y; Z -> Y"
    else:
        data, graph = fd, "X <-> Y; X -> M -> Y"
    estimand = next(s for s in identify(graph, "X", "Y").strategies if s.kind == kind)
    variables = tuple(sorted(c for c in data.columns if not c.startswith("__")))
    levels = {v: sorted(data[v].unique()) for v in variables}
    cells, _ = cell_exprs(variables, levels)
    design = ModelRoles(treatment="X", outcome="Y", strategy=kind, variables=variables, expression=estimand.expression)
    contrast = Contrast(design, variables, cells, None)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(cells)), size=40) * rng.uniform(10, 1000, (40, 1))
    probs[3, :] = 0.0  # an empty replicate gives NaN
    probs[5, rng.choice(len(cells), len(cells) // 3, replace=False)] = 0.0  # empty cells: the 0/0 convention
    got = contrast.batch(probs)
    want = np.array([contrast(row) if row.sum() > 0 else np.nan for row in probs])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert np.isnan(got[3]) and np.isfinite(got).sum() == 39


def test_string_variables_are_coded_and_named():
    """A string confounder and a string treatment on the pandas engine: the numbers of the
    integer-coded data (same units, same buckets), with the values named in the results."""
    df = backdoor_data(5000, seed=4)
    words = df.assign(Z=df.Z.map({0.0: "low", 1.0: "mid", 2.0: "high"}), X=df.X.map({0.0: "old", 1.0: "new"}))
    expr = backdoor_expression(["X"], ["Y"], ["Z"])
    boot = BootstrapOptions(replicates=50, seed=1)
    numbers = fit(df, expr, strategy="backdoor", bootstrap=boot).result_
    design = ModelRoles(treatment="X", outcome="Y", strategy="backdoor", variables=("Z", "X", "Y"), expression=expr,
                    treated_value="new", control_value="old")
    est = get_estimator("id_plugin")(bootstrap=boot).fit(PandasMomentEngine(words, n_buckets=100), design)
    res = est.result_
    assert res.estimate == pytest.approx(numbers.estimate, rel=1e-12)
    assert res.se == pytest.approx(numbers.se, rel=1e-12)
    np.testing.assert_allclose(res.replicates, numbers.replicates, rtol=1e-12)
    assert res.diagnostics["levels"] == {"Z": ["high", "low", "mid"], "X": ["new", "old"], "Y": [0.0, 1.0, 2.0]}
    assert set(res.diagnostics["do_means"]) == {"X=new", "X=old"} and res.contrast == "do(X=new) - do(X=old)"
    assert set(est.joint_.Z) == {"high", "low", "mid"} and est.joint_.p.sum() == pytest.approx(1.0)
    given = get_estimator("id_plugin")(levels={"Z": ["low", "mid", "high"]}, bootstrap=boot).fit(
        PandasMomentEngine(words, n_buckets=100), design).result_
    assert given.estimate == pytest.approx(numbers.estimate, rel=1e-12)
    with pytest.raises(EstimationError, match="treatment value 1 of 'X' does not occur"):
        fit(words, expr, strategy="backdoor")  # the default treated value 1 is not a value of X


def test_string_variable_errors_name_the_variable():
    df = backdoor_data(2000, seed=5)
    words = df.assign(Z=df.Z.map({0.0: "low", 1.0: "mid", 2.0: "high"}))
    expr = backdoor_expression(["X"], ["Y"], ["Z"])
    with pytest.raises(EstimationError, match=r"levels \['zzz'\] of 'Z' do not occur in the data"):
        fit(words, expr, strategy="backdoor", levels={"Z": ["low", "zzz"]})
    with pytest.raises(EstimationError, match="outside the given levels"):
        fit(words, expr, strategy="backdoor", levels={"Z": ["low", "mid"]})
    with pytest.raises(EstimationError, match="'Z' has 3 levels, more than max_levels=2"):
        fit(words, expr, strategy="backdoor", max_levels=2, levels={"X": (0, 1), "Y": (0, 1, 2)})
    design = ModelRoles(treatment="X", outcome="Y", strategy="backdoor", variables=("Z", "X", "Y"), expression=expr,
                    treated_value="new", control_value="old")
    with pytest.raises(EstimationError, match="treatment value 'new' of 'X' does not occur"):
        get_estimator("id_plugin")().fit(PandasMomentEngine(words.assign(X=words.X.map({0.0: "old", 1.0: "mid"})),
                                                            n_buckets=20), design)
