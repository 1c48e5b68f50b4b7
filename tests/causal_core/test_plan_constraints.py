"""identify() with ``include`` / ``exclude``: excluded variables are used by no strategy in
any role, included ones are in every adjustment and IV conditioning set, and a plan that
the constraints leave without a strategy says why.

Every offered set is checked independently: adjustment sets against the path-by-path
criterion of tests/causal_core/graph_oracles.py, front-door sets and instruments against
their definitions on the user's graph, and every nonparametric strategy against the
interventional truth of a random discrete model of the user's graph."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causal_core.identification.adjustment import is_valid_adjustment
from causal_core.errors import GraphError
from causal_core.identification.frontdoor import is_frontdoor_set
from causal_core.graph.causal_graph import CausalGraph
from causal_core.identification.instruments import Instrument, find_instruments, is_instrument
from causal_core.identification.plan import EstimandPlan, identify
from tests.causal_core.discrete_scm import TooLarge, random_admg, random_scm
from tests.causal_core.graph_oracles import (
    AdjustmentOracle,
    InstrumentOracle,
    causal_graphs,
    frontdoor_queries,
    queries,
)

CONFOUNDED = "cat -> d; x1 -> d; x2 -> d; x3 -> d; cat -> y; x1 -> y; x2 -> y; x3 -> y; d -> y"
PRECISION = "cat -> d; x1 -> d; x2 -> d; cat -> y; x1 -> y; x2 -> y; x3 -> y; d -> y"


def _used(strategy) -> set[str]:
    """Every variable a strategy names, in its sets or anywhere in its formula."""
    names = set(strategy.adjustment) | set(strategy.mediators) | set(strategy.instruments)
    names |= set(strategy.conditioning)
    if strategy.expression is not None:
        names |= strategy.expression.mentioned_variables()
    return names


def _assert_numerically_right(plan: EstimandPlan, seed: int) -> int:
    """Each nonparametric strategy equals P(y | do(x)) of a random model of the user's graph."""
    rng = np.random.default_rng(seed)
    try:
        scm = random_scm(plan.graph, rng)
    except TooLarge:
        return 0
    joint = scm.observed_joint()
    cols = list(plan.treatment) + list(plan.outcome)
    truth = scm.interventional(plan.treatment, plan.outcome).sort_values(cols).reset_index(drop=True)
    checked = 0
    for s in plan.strategies:
        if s.parametric:
            continue
        got = s.evaluate(joint)
        merged = truth.merge(got, on=cols, suffixes=("_true", "_got"))
        assert len(merged) == len(truth), s.name
        assert np.abs(merged["p_true"] - merged["p_got"]).max() < 1e-9, s.name
        checked += 1
    return checked


# ---------------------------------------------------------------- exclude
def test_excluding_a_confounder_leaves_no_valid_set_and_the_reason_names_the_path():
    plan = identify(CONFOUNDED, "d", "y", exclude=["x3"])
    assert not plan.identifiable and plan.strategies == () and plan.default == ""
    assert plan.reason.startswith(
        "no valid adjustment set: the back-door path d <- x3 -> y is open given {cat, x1, x2}")
    assert "within the include/exclude constraints" in plan.reason
    assert "with the excluded {x3} treated as unobserved" in plan.reason
    assert plan.hedge == (("d", "y"), ("y",))
    assert "backdoor: the optimal set of the graph, O = {cat, x1, x2, x3}, uses the excluded {x3}" in plan.notes
    assert any(n.startswith("id: ruled out by exclude: with {x3} unobserved") for n in plan.notes)
    # the plan keeps the user's graph and its implications
    assert plan.graph == CausalGraph.parse(CONFOUNDED)
    assert plan.implications == identify(CONFOUNDED, "d", "y").implications
    assert EstimandPlan.from_json(plan.to_json()) == plan


def test_excluding_a_precision_variable_drops_it_from_the_optimal_set():
    unconstrained = identify(PRECISION, "d", "y")
    assert unconstrained.strategy("backdoor.optimal").adjustment == ("cat", "x1", "x2", "x3")
    plan = identify(PRECISION, "d", "y", exclude=["x3"])
    assert plan.identifiable and plan.default == "backdoor.optimal"
    assert plan.strategy("backdoor.optimal").adjustment == ("cat", "x1", "x2")
    assert [s.name for s in plan.strategies] == ["backdoor.optimal", "id"]
    for s in plan.strategies:
        assert "x3" not in _used(s), s.name
    assert _assert_numerically_right(plan, 7) == 2
    assert EstimandPlan.from_json(plan.to_json()) == plan


def test_excluding_the_only_mediator_breaks_the_front_door():
    plan = identify("x -> m -> y; x <-> y", "x", "y", exclude=["m"])
    assert not plan.identifiable
    assert "front-door: every front-door set uses an excluded variable (front-door sets of the graph: {m})" \
        in plan.reason
    assert "frontdoor: ruled out by exclude" in "\n".join(plan.notes)


def test_excluding_one_of_two_alternative_mediators_keeps_the_other():
    text = "x -> m1 -> m2 -> y; x <-> y"
    assert [s.mediators for s in identify(text, "x", "y").strategies if s.kind == "frontdoor"] == [("m1",), ("m2",)]
    plan = identify(text, "x", "y", exclude=["m1"])
    assert [s.name for s in plan.strategies] == ["frontdoor", "id"]
    assert plan.strategy("frontdoor").mediators == ("m2",)
    assert plan.default == "frontdoor"
    for s in plan.strategies:
        assert "m1" not in _used(s), s.name
    assert _assert_numerically_right(plan, 11) == 2


def test_excluding_the_instrument_leaves_nothing():
    plan = identify("z -> x -> y; x <-> y", "x", "y", exclude=["z"])
    assert not plan.identifiable and plan.strategies == ()
    assert "instruments: every instrument found uses an excluded variable" in plan.reason
    assert "(instruments of the graph: z)" in plan.reason


def test_excluding_an_instruments_conditioning_variable_rules_the_instrument_out():
    text = "w -> z -> x -> y; w -> y; x <-> y"
    assert identify(text, "x", "y").strategy("iv").conditioning == ("w",)
    plan = identify(text, "x", "y", exclude=["w"])
    assert not plan.identifiable
    assert "(instruments of the graph: z | w)" in plan.reason


def test_excluding_a_napkin_variable_breaks_the_id_formula():
    napkin = "W1 -> W2 -> X -> Y; W1 <-> X; W1 <-> Y"
    full = identify(napkin, "X", "Y")
    assert {s.kind for s in full.strategies} == {"id", "iv"}
    plan = identify(napkin, "X", "Y", exclude=["W1"])
    assert not plan.identifiable
    # with W1 unobserved, its latent parents join W2 to X and to Y: one district
    assert plan.hedge == (("W2", "X", "Y"), ("Y",))
    assert "id: ruled out by exclude: with {W1} unobserved" in "\n".join(plan.notes)
    assert "instruments: every instrument found uses an excluded variable" in plan.reason


def test_excluding_a_variable_the_id_formula_sums_over_keeps_the_formula_without_it():
    # c is a cause of the mediator only: the ID formula of the graph sums over it
    text = "x -> m -> y; x <-> y; c -> m"
    assert "c" in identify(text, "x", "y").strategy("id").expression.mentioned_variables()
    plan = identify(text, "x", "y", exclude=["c"])
    assert [s.name for s in plan.strategies] == ["frontdoor", "id"]
    assert plan.strategy("id").formula() == "Σ_{m} P(m | x) Σ_{x'} P(x') P(y | x', m)"
    for s in plan.strategies:
        assert "c" not in _used(s), s.name
    assert _assert_numerically_right(plan, 5) == 2


def test_excluding_a_confounder_of_mediator_and_outcome_breaks_the_front_door():
    # the only front-door set is {c, m}: m alone leaves m <- c -> y open
    plan = identify("x -> m -> y; x <-> y; c -> m; c -> y", "x", "y", exclude=["c"])
    assert not plan.identifiable
    assert "front-door sets of the graph: {c, m}" in plan.reason
    assert "hedge F={x, m, y}, F'={m, y}" in plan.reason


# ---------------------------------------------------------------- include
def test_include_forces_a_precision_variable_into_every_backdoor_set():
    # w is a precision variable two steps from y; O = pa(cn) \ forb = {c, v} lacks it
    text = "c -> x -> y; c -> y; w -> v -> y"
    assert identify(text, "x", "y").strategy("backdoor.optimal").adjustment == ("c", "v")
    plan = identify(text, "x", "y", include=["w"])
    backdoor = {s.name: s.adjustment for s in plan.strategies if s.kind == "backdoor"}
    assert backdoor == {
        "backdoor.optimal_with_include": ("c", "v", "w"),
        "backdoor.minimal": ("c", "w"),
    }  # the canonical set equals O ∪ include here and is listed once
    assert plan.default == "backdoor.optimal_with_include"
    assert "backdoor: the optimal set O = {c, v} does not contain the included {w}; O ∪ include = {c, v, w} " \
           "is valid but not claimed optimal among sets containing them" in plan.notes
    assert _assert_numerically_right(plan, 3) == 3


def test_include_of_a_variable_in_the_optimal_set_keeps_it_optimal():
    plan = identify("A -> X -> Y; C -> X; C -> Y; P -> Y", "X", "Y", include=["P"])
    backdoor = {s.name: s.adjustment for s in plan.strategies if s.kind == "backdoor"}
    # the minimal set {C, P} is O itself, so it is listed once
    assert backdoor == {"backdoor.optimal": ("C", "P"), "backdoor.canonical": ("A", "C", "P")}
    assert plan.default == "backdoor.optimal"
    # the instrument A now needs P in its conditioning set
    assert (plan.strategy("iv").instruments, plan.strategy("iv").conditioning) == (("A",), ("P",))


def test_include_of_a_treatment_side_variable_is_not_called_optimal():
    plan = identify("A -> X -> Y; C -> X; C -> Y; P -> Y", "X", "Y", include=["A"])
    backdoor = {s.name: s.adjustment for s in plan.strategies if s.kind == "backdoor"}
    # the canonical set {A, C, P} equals O ∪ include, so it is listed once
    assert backdoor == {"backdoor.optimal_with_include": ("A", "C", "P"), "backdoor.minimal": ("A", "C")}
    assert plan.default == "backdoor.optimal_with_include"
    assert not [s for s in plan.strategies if s.kind == "iv"]  # A was the instrument
    graph = CausalGraph.parse("A -> X -> Y; C -> X; C -> Y; P -> Y")
    for s in plan.strategies:
        if s.kind == "backdoor":
            assert "A" in s.adjustment and is_valid_adjustment(graph, "X", "Y", s.adjustment), s.name


def test_include_and_exclude_together():
    plan = identify("A -> X -> Y; A -> B -> Y; X <- C -> Y", "X", "Y", include=["B"], exclude=["A"])
    backdoor = [s for s in plan.strategies if s.kind == "backdoor"]
    assert {s.adjustment for s in backdoor} == {("B", "C")}
    assert plan.strategy("backdoor.optimal").adjustment == ("B", "C")


def test_include_is_in_every_iv_conditioning_set():
    g = CausalGraph.parse("W -> Z; W -> Y; Z -> X -> Y; X <-> Y; A -> Y")
    assert find_instruments(g, "X", "Y") == (Instrument(("Z",), ("W",)),)
    assert find_instruments(g, "X", "Y", include=["A"]) == (Instrument(("Z",), ("A", "W")),)
    plan = identify(g, "X", "Y", include=["A"])
    assert plan.strategy("iv").conditioning == ("A", "W")
    # an unconditional instrument is no longer unconditional
    h = CausalGraph.parse("Z -> X -> Y; X <-> Y; A -> Y")
    assert find_instruments(h, "X", "Y", include=["A"]) == (Instrument(("Z",), ("A",)),)
    with pytest.raises(GraphError, match="include names"):
        find_instruments(h, "X", "Y", include=["Y"])


def test_include_that_opens_a_path_to_the_instrument_rules_iv_out():
    # conditioning on the collider C joins Z to Y through the latent L
    text = "latent L\nZ -> X -> Y; X <-> Y; Z -> C; L -> C; L -> Y"
    assert identify(text, "X", "Y").strategy("iv").instruments == ("Z",)
    plan = identify(text, "X", "Y", include=["C"])
    assert not plan.identifiable
    assert "instruments: no instrument was found given a conditioning set that contains {C} " \
           "(without include: Z)" in plan.reason


def test_include_leaves_front_door_and_id_alone_and_says_so():
    plan = identify("x -> m -> y; x <-> y; c -> y", "x", "y", include=["c"])
    assert {s.kind for s in plan.strategies} == {"frontdoor", "id"}
    assert plan.strategy("frontdoor").mediators == ("m",)
    assert "include: {c} enter(s) every adjustment set and IV conditioning set only; the front-door and ID " \
           "formulas condition on no user-chosen set" in plan.notes


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, message", [
    ({"exclude": ["X"]}, "exclude names 'X', which is a treatment"),
    ({"exclude": ["Y"]}, "exclude names 'Y', which is an outcome"),
    ({"include": ["Y"]}, "include names 'Y', which is an outcome"),
    ({"exclude": ["U"]}, "exclude names 'U', a latent variable"),
    ({"include": ["U"]}, "include names 'U', a latent variable"),
    ({"exclude": ["Nope"]}, "exclude names unknown variables \\['Nope'\\]"),
    ({"include": ["M"]}, "include names 'M', which is forbidden"),
    ({"include": ["C"], "exclude": ["C"]}, "both included and excluded"),
])
def test_bad_constraints_are_graph_errors_naming_the_variable(kwargs, message):
    g = "latent U\nC -> X; C -> Y; X -> M -> Y; U -> C; U -> Y"
    with pytest.raises(GraphError, match=message):
        identify(g, "X", "Y", **kwargs)


# ---------------------------------------------------------------- properties on random graphs
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def constrained_queries(draw):
    """Random graphs and front-door-shaped ones, one treatment, mostly something excluded."""
    random_graphs = queries(graphs=causal_graphs(max_observed=8), max_treatments=1, max_outcomes=1)
    graph, xs, ys = draw(st.one_of(random_graphs, random_graphs, frontdoor_queries()))
    oracle = AdjustmentOracle(graph, xs, ys)
    covariates = sorted(set(graph.observed) - set(xs) - set(ys))
    least = min(len(covariates), draw(st.integers(0, 3)), 1)
    exclude = draw(st.lists(st.sampled_from(covariates), min_size=least, max_size=2, unique=True)) if covariates else []
    free = sorted(set(covariates) - oracle.forb - set(exclude))
    include = draw(st.lists(st.sampled_from(free), max_size=1, unique=True)) if free else []
    return graph, xs, ys, frozenset(include), frozenset(exclude), oracle


@SETTINGS
@given(constrained_queries())
def test_every_strategy_honours_the_constraints_and_is_valid_on_the_users_graph(q):
    graph, xs, ys, include, exclude, oracle = q
    plan = identify(graph, xs, ys, include=include, exclude=exclude)
    assert EstimandPlan.from_json(plan.to_json()) == plan
    assert plan.graph == graph
    admissible = oracle.minimal_sets(include, exclude)
    assert any(s.kind == "backdoor" for s in plan.strategies) == bool(admissible)
    iv_oracle = InstrumentOracle(graph, xs[0], ys)
    for s in plan.strategies:
        assert not _used(s) & exclude, (s.name, str(graph))
        if s.kind == "backdoor":
            z = frozenset(s.adjustment)
            assert include <= z and oracle.valid(z), (s.name, sorted(z), str(graph))
            assert is_valid_adjustment(graph, xs, ys, z)
        elif s.kind == "frontdoor":
            assert is_frontdoor_set(graph, xs, ys, s.mediators)
        elif s.kind == "iv":
            assert include <= set(s.conditioning)
            assert iv_oracle.holds(s.instruments[0], s.conditioning), s
            assert is_instrument(graph, xs, ys, s.instruments, s.conditioning)
    # the constraints only ever remove strategies; excluding nothing new changes nothing
    if plan.identifiable:
        assert identify(graph, xs, ys).identifiable
    if not include and not exclude:
        assert plan == identify(graph, xs, ys)


def test_constrained_strategies_equal_the_interventional_truth_on_random_graphs():
    rng = np.random.default_rng(2027)
    checked = constrained = 0
    for _ in range(80):
        n = int(rng.integers(4, 8))
        g = random_admg(rng, n, p_directed=0.45, p_bidirected=0.15)
        order = g.topological_order()
        x, y = order[int(rng.integers(0, n - 2))], order[-1]
        others = [v for v in g.observed if v not in (x, y)]
        exclude = [others[int(rng.integers(0, len(others)))]]
        try:
            plan = identify(g, x, y, exclude=exclude)
        except GraphError:
            continue
        if plan.identifiable:
            constrained += 1
            checked += _assert_numerically_right(plan, int(rng.integers(0, 2**31)))
            for s in plan.strategies:
                assert exclude[0] not in _used(s)
    assert constrained > 20 and checked > 30
