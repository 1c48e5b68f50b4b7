"""Graph validation: Fisher's z against residual regressions in statsmodels, the G² test
against scipy's contingency test per stratum, the family-wise false-alarm rate on data
simulated from the graph, and power against an edge the assumed graph lacks."""

from __future__ import annotations

import gc
import json

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from causal_core.errors import EstimationError, SpecError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.implications import Independence, implied_independences
from causal_core.refuters.graph_validation import (
    METHODS, Covariance, adjust, fisher_z_test, g_test, partial_correlation, validate_graph,
)
from tests.causal_core.discrete_scm import random_scm

ASSUMED = "A -> B; A -> C; B -> D; C -> D; D -> E"
TRUE_WITH_EXTRA_EDGE = ASSUMED + "; A -> D"


@pytest.fixture
def frozen_heap():
    """statsmodels' Holm branch calls gc.collect() on every call, which walks the whole test
    session's heap; over hundreds of simulated families that dominates. Objects alive before
    the test are moved out of the collector's sight for its duration."""
    gc.freeze()
    yield
    gc.unfreeze()


def linear_gaussian(text: str, n: int, rng: np.random.Generator, weight: float = 0.5) -> pd.DataFrame:
    """A linear Gaussian SEM on the graph: each node = weight * sum of parents + N(0, 1)."""
    dag = CausalGraph.parse(text).canonical_dag()
    data: dict[str, np.ndarray] = {}
    for v in nx.topological_sort(dag):
        data[v] = sum((weight * data[p] for p in dag.predecessors(v)), np.zeros(n)) + rng.normal(size=n)
    return pd.DataFrame(data)


def covariance_of(frame: pd.DataFrame) -> Covariance:
    return Covariance(np.cov(frame.to_numpy(), rowvar=False), tuple(frame.columns), len(frame))


def gram_of(frame: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    v = np.column_stack([np.ones(len(frame)), frame.to_numpy()])
    return v.T @ v, ["1", *frame.columns]


def test_fisher_z_equals_residual_regressions_in_statsmodels():
    frame = linear_gaussian(TRUE_WITH_EXTRA_EDGE, 400, np.random.default_rng(1))
    frame["D"] += 3.0 + 0.2 * frame["A"]  # shifted: the intercept must be partialled out
    cov = covariance_of(frame)
    from_gram = Covariance.from_gram(*gram_of(frame))
    for imp in [Independence("A", "D", ("B", "C")), Independence("B", "E", ("D",)), Independence("B", "C")]:
        given = list(imp.given)
        regressors = sm.add_constant(frame[given]) if given else np.ones((len(frame), 1))
        ex = sm.OLS(frame[imp.x], regressors).fit().resid
        ey = sm.OLS(frame[imp.y], regressors).fit().resid
        r = np.corrcoef(ex, ey)[0, 1]
        z = np.arctanh(r) * np.sqrt(len(frame) - len(given) - 3)
        p = 2 * stats.norm.sf(abs(z))
        for moments in (cov, from_gram):
            test = fisher_z_test(moments, imp)
            assert test.partial_correlation == pytest.approx(r, abs=1e-10)
            assert test.statistic == pytest.approx(z, abs=1e-10)
            assert test.p_value == pytest.approx(p, abs=1e-10)
        # the precision-matrix route: -P_xy / sqrt(P_xx P_yy)
        sub = frame[[imp.x, imp.y, *given]].cov().to_numpy()
        prec = np.linalg.inv(sub)
        assert partial_correlation(cov.matrix, cov.names, imp.x, imp.y, given) == pytest.approx(
            -prec[0, 1] / np.sqrt(prec[0, 0] * prec[1, 1]), abs=1e-12)


def test_no_false_alarms_beyond_the_level_on_data_from_the_graph(frozen_heap):
    """Holm at 0.05 over the graph's 5 implications: the family-wise false-alarm rate over 200
    simulated data sets stays near (at most) the level."""
    implications = implied_independences(CausalGraph.parse(ASSUMED))
    assert len(implications) == 5
    rng = np.random.default_rng(2024)
    alarms = sum(not validate_graph(implications, covariance=covariance_of(
        linear_gaussian(ASSUMED, 300, rng))).passed for _ in range(200))
    print(f"Fisher z, Holm 0.05: family-wise false-alarm rate {alarms / 200:.3f}")
    assert alarms / 200 <= 0.1


def test_a_missing_edge_is_rejected(frozen_heap):
    """Data with A -> D; the assumed graph lacks it, so A ⊥ D | B, C is false and rejected,
    and the implications that still hold are not."""
    implications = implied_independences(CausalGraph.parse(ASSUMED))
    violated = Independence("A", "D", ("B", "C"))
    assert violated in implications
    rng = np.random.default_rng(7)
    results = [validate_graph(implications, covariance=covariance_of(linear_gaussian(TRUE_WITH_EXTRA_EDGE, 300, rng)))
               for _ in range(50)]
    power = np.mean([violated in r.rejected for r in results])
    others = np.mean([any(i != violated for i in r.rejected) for r in results])
    print(f"power against the missing edge A -> D: {power:.2f}; other rejections {others:.2f}")
    assert power >= 0.9
    assert others <= 0.1


def stratified_counts(rng: np.random.Generator) -> pd.DataFrame:
    """x in {0, 1, 2}, y in {0, 1}, stratum s in {a, b, c}; in stratum c, x = 2 never occurs."""
    rows = []
    for s in "abc":
        for x in range(3):
            for y in range(2):
                rows.append({"s": s, "x": x, "y": y, "other": 0, "n": 0 if (s == "c" and x == 2) else
                             int(rng.integers(3, 40))})
    frame = pd.DataFrame(rows)
    return pd.concat([frame, frame.assign(other=1, n=lambda f: f["n"] // 2)], ignore_index=True)


def test_g_test_equals_scipy_log_likelihood_contingency_summed_over_strata():
    counts = stratified_counts(np.random.default_rng(3))
    test = g_test(counts, Independence("x", "y", ("s",)))
    total, dof = 0.0, 0
    for _, stratum in counts.groupby("s"):
        table = stratum.pivot_table(index="x", columns="y", values="n", aggfunc="sum")
        table = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0]  # empty levels dropped
        stat, _, df, _ = stats.chi2_contingency(table.to_numpy(), correction=False, lambda_="log-likelihood")
        total, dof = total + stat, dof + df
    assert dof == 2 + 2 + 1  # stratum c has two values of x
    assert test.statistic == pytest.approx(total, rel=1e-12)
    assert test.dof == dof
    assert test.p_value == pytest.approx(stats.chi2.sf(total, dof), rel=1e-12)
    assert test.n == counts["n"].sum()
    # no conditioning set: one table over everything
    marginal = counts.pivot_table(index="x", columns="y", values="n", aggfunc="sum").to_numpy()
    stat, p, df, _ = stats.chi2_contingency(marginal, correction=False, lambda_="log-likelihood")
    plain = g_test(counts, Independence("x", "y"))
    assert (plain.statistic, plain.dof, plain.p_value) == pytest.approx((stat, df, p), rel=1e-12)


def test_g_test_with_nothing_to_test_has_p_one():
    counts = pd.DataFrame({"x": [0, 1, 0, 1], "y": [0, 0, 1, 1], "s": [0, 0, 1, 1], "n": [5, 7, 3, 4]})
    test = g_test(counts, Independence("x", "y", ("s",)))  # y is constant within every stratum
    assert (test.statistic, test.dof, test.p_value) == (0.0, 0, 1.0)


def sampled_counts(scm, n: int, rng: np.random.Generator) -> pd.DataFrame:
    joint = scm.observed_joint()
    p = joint["p"].to_numpy()
    return joint.drop(columns="p").assign(n=rng.multinomial(n, p / p.sum()))


def test_g_test_calibration_and_power_on_a_discrete_model_of_the_graph(frozen_heap):
    implications = implied_independences(CausalGraph.parse(ASSUMED))
    rng = np.random.default_rng(11)
    null_model = random_scm(CausalGraph.parse(ASSUMED), np.random.default_rng(5))
    alarms = sum(not validate_graph(implications, counts=sampled_counts(null_model, 2000, rng)).passed
                 for _ in range(100))
    print(f"G-test, Holm 0.05: family-wise false-alarm rate {alarms / 100:.3f}")
    assert alarms / 100 <= 0.1
    alt = random_scm(CausalGraph.parse(TRUE_WITH_EXTRA_EDGE), np.random.default_rng(5))
    violated = Independence("A", "D", ("B", "C"))
    power = np.mean([violated in validate_graph(implications, counts=sampled_counts(alt, 2000, rng)).rejected
                     for _ in range(30)])
    print(f"G-test power against the missing edge A -> D: {power:.2f}")
    assert power >= 0.9


def test_correction_matches_multipletests_and_options_are_checked():
    frame = linear_gaussian(TRUE_WITH_EXTRA_EDGE, 200, np.random.default_rng(4))
    implications = implied_independences(CausalGraph.parse(ASSUMED))
    cov = covariance_of(frame)
    raw = [fisher_z_test(cov, i) for i in implications]
    for method in ("holm", "bonferroni", "fdr_bh"):
        result = validate_graph(implications, covariance=cov, alpha=0.1, method=method)
        reject, p_adj, _, _ = multipletests([t.p_value for t in raw], alpha=0.1, method=method)
        assert [t.p_adjusted for t in result.tests] == pytest.approx(list(p_adj), rel=1e-14)
        assert [t.rejected for t in result.tests] == list(reject)
        assert result.rejected == tuple(i for i, r in zip(implications, reject) if r)
    with pytest.raises(SpecError, match="'bonferoni' is unknown; expected one of .*holm"):
        adjust(raw, method="bonferoni")
    with pytest.raises(SpecError, match="alpha"):
        validate_graph(implications, covariance=cov, alpha=1.5)
    assert set(METHODS) >= {"holm", "bonferroni", "fdr_bh"}
    assert adjust([]).passed


def test_result_value_and_errors():
    frame = linear_gaussian(TRUE_WITH_EXTRA_EDGE, 300, np.random.default_rng(8))
    implications = implied_independences(CausalGraph.parse(ASSUMED))
    result = validate_graph(implications, covariance=covariance_of(frame))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is result.passed and len(data["tests"]) == 5
    assert data["tests"][0]["implication"] == implications[0].to_dict()
    assert data["tests"][0]["test"] == "fisher-z" and data["tests"][0]["dof"] is None
    assert list(result.summary().columns) == ["implication", "test", "statistic", "dof", "p_value", "p_adjusted",
                                              "rejected"]
    assert "rejected: A ⊥ D | B, C" in str(result)
    with pytest.raises(EstimationError, match=r"no moments for \['E'\]"):
        validate_graph(implications, covariance=covariance_of(frame.drop(columns="E")))
    with pytest.raises(EstimationError, match="columns \\['s'\\] are not in the counts"):
        g_test(pd.DataFrame({"x": [0], "y": [1], "n": [3]}), Independence("x", "y", ("s",)))
    collinear = frame.assign(F=frame["B"] + frame["C"])
    with pytest.raises(EstimationError, match="collinear columns: B, C, F"):
        fisher_z_test(covariance_of(collinear), Independence("A", "E", ("B", "C", "F")))
    with pytest.raises(EstimationError, match=r"\['F'\] are linear functions of \['B', 'C'\]"):
        fisher_z_test(covariance_of(collinear), Independence("A", "F", ("B", "C")))
    with pytest.raises(EstimationError, match="too few"):
        fisher_z_test(covariance_of(frame.iloc[:5]), Independence("A", "E", ("B", "C")))
    with pytest.raises(EstimationError, match="needs p_adjusted"):
        type(result)(tuple(fisher_z_test(covariance_of(frame), i) for i in implications))
