"""identify() and the estimand plan: every nonparametric strategy is numerically right,
plans round-trip through JSON exactly, defaults and reasons are what the docs promise."""

import numpy as np
import pandas as pd
import pytest

from causal_core.errors import GraphError, IdentificationError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.identification.plan import EstimandPlan, identify
from tests.causal_core.discrete_scm import TooLarge, random_admg, random_scm


def _check_strategies_against_truth(graph, x, y, rng):
    plan = identify(graph, x, y)
    if not plan.identifiable:
        return plan, 0
    try:
        scm = random_scm(graph, rng)
        joint = scm.observed_joint()
        truth = scm.interventional(x, y)
    except TooLarge:
        return plan, 0
    cols = list(x) + list(y)
    truth = truth.sort_values(cols).reset_index(drop=True)
    checked = 0
    for s in plan.strategies:
        if s.parametric:
            with pytest.raises(IdentificationError, match="linear structural model"):
                s.evaluate(joint)
            continue
        got = s.evaluate(joint)
        merged = truth.merge(got, on=cols, suffixes=("_true", "_got"))
        assert len(merged) == len(truth), s.name
        err = np.abs(merged["p_true"] - merged["p_got"]).max()
        assert err < 1e-9, (s.name, str(graph), x, y, err)
        checked += 1
    return plan, checked


def test_every_strategy_of_random_plans_equals_the_interventional_truth():
    rng = np.random.default_rng(2026)
    checked = kinds = 0
    seen_kinds = set()
    for i in range(120):
        n = int(rng.integers(3, 8))
        g = random_admg(rng, n, p_directed=0.45, p_bidirected=0.2)
        order = g.topological_order()
        x = (order[int(rng.integers(0, n - 1))],)
        later = [v for v in order if v not in x]
        y = (later[int(rng.integers(0, len(later)))],)
        plan, c = _check_strategies_against_truth(g, x, y, rng)
        checked += c
        seen_kinds |= {s.kind for s in plan.strategies}
        assert EstimandPlan.from_json(plan.to_json()) == plan
    assert checked > 150
    assert {"backdoor", "id"} <= seen_kinds


@pytest.mark.parametrize("text, default, kinds", [
    ("Z -> X -> Y; Z -> Y", "backdoor.optimal", {"backdoor", "id"}),
    ("X -> M -> Y; X <-> Y", "frontdoor", {"frontdoor", "id"}),
    ("Z -> X -> Y; X <-> Y", "iv", {"iv"}),
    # the napkin: W2 is also a conditional instrument given W1 (W2 <- W1 <-> Y is blocked by W1)
    ("W1 -> W2 -> X -> Y; W1 <-> X; W1 <-> Y", "id", {"id", "iv"}),
])
def test_default_strategy_and_kinds_on_classic_graphs(text, default, kinds):
    plan = identify(text, "X", "Y")
    assert plan.identifiable and plan.default == plan.strategy().name
    assert plan.default.startswith(default)
    assert {s.kind for s in plan.strategies} == kinds
    assert plan.default_reason
    rng = np.random.default_rng(1)
    _check_strategies_against_truth(CausalGraph.parse(text), ("X",), ("Y",), rng)


def test_iv_only_plan_says_it_is_parametric():
    plan = identify("Z -> X -> Y; X <-> Y", "X", "Y")
    iv = plan.strategy("iv")
    assert iv.parametric and iv.instruments == ("Z",) and iv.expression is None
    assert "linear" in plan.reason and "hedge" in plan.reason
    assert plan.estimators_for("iv") == ("iv",)


def test_conditional_instrument_in_plan():
    plan = identify("W -> Z -> X -> Y; W -> Y; X <-> Y", "X", "Y")
    iv = plan.strategy("iv")
    assert iv.instruments == ("Z",) and iv.conditioning == ("W",)


def test_not_identifiable_names_the_hedge_and_the_strategies_tried():
    plan = identify("X -> Y; X <-> Y", "X", "Y")
    assert not plan.identifiable and plan.strategies == () and plan.default == ""
    assert "hedge" in plan.reason and "Strategies tried" in plan.reason
    assert plan.hedge == (("X", "Y"), ("Y",))
    assert EstimandPlan.from_json(plan.to_json()) == plan
    with pytest.raises(IdentificationError, match="no strategy"):
        plan.strategy()


def test_optimal_set_prefers_outcome_parents_over_treatment_parents():
    # Henckel et al. (2022), example: O uses the precision variable P, not the instrument-like A.
    plan = identify("A -> X -> Y; C -> X; C -> Y; P -> Y", "X", "Y")
    assert plan.strategy("backdoor.optimal").adjustment == ("C", "P")
    assert plan.default == "backdoor.optimal"


def test_include_exclude_are_respected_and_checked():
    plan = identify("A -> X -> Y; A -> B -> Y; X <- C -> Y", "X", "Y", include=["B"], exclude=["A"])
    backdoor = [s for s in plan.strategies if s.kind == "backdoor"]
    assert backdoor and all("B" in s.adjustment and "A" not in s.adjustment for s in backdoor)
    assert all("A" not in s.expression.mentioned_variables() for s in plan.strategies if s.expression)
    with pytest.raises(GraphError, match="'Q'"):
        identify("X -> Y", "X", "Y", include=["Q"])


def test_plan_text_and_latex():
    plan = identify("Z -> X -> Y; Z -> Y", "X", "Y")
    text = str(plan)
    assert "P(Y | do(X))" in text and "default: backdoor.optimal" in text
    assert plan.strategy().to_latex() == r"\sum_{Z} P(Y \mid X, Z) P(Z)"


def test_multiple_treatments_and_outcomes():
    plan = identify("Z -> X1 -> Y1; Z -> Y1; X2 -> Y2; X1 -> X2; Z -> Y2", ["X1", "X2"], ["Y1", "Y2"])
    assert plan.identifiable and plan.treatment == ("X1", "X2") and plan.outcome == ("Y1", "Y2")
    rng = np.random.default_rng(3)
    _, checked = _check_strategies_against_truth(plan.graph, plan.treatment, plan.outcome, rng)
    assert checked >= 2


def test_evaluate_broadcasts_over_a_treatment_that_drops_out():
    plan = identify("X1 -> Y; X2", ["X1", "X2"], "Y")
    joint = pd.DataFrame({"X1": [0, 0, 1, 1] * 2, "X2": [0] * 4 + [1] * 4, "Y": [0, 1] * 4, "p": [1 / 8] * 8})
    out = plan.strategy().evaluate(joint)
    assert list(out.columns) == ["X1", "X2", "Y", "p"] and len(out) == 8


def test_implications_are_in_the_plan():
    plan = identify("Z -> X -> M -> Y", "X", "Y")
    pairs = {(i.x, i.y, i.given) for i in plan.implications}
    assert ("Z", "M", ("X",)) in pairs or ("M", "Z", ("X",)) in pairs
