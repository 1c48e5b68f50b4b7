"""Adjustment sets against a brute-force, path-by-path reading of the criterion."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causal_core.identification.adjustment import (
    AdjustmentResult,
    OptimalSet,
    adjustment_sets,
    canonical_adjustment_set,
    forbidden_set,
    is_valid_adjustment,
    minimal_adjustment_sets,
    optimal_adjustment_set,
)
from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.separators import connecting_path, effect_structure
from tests.causal_core.graph_oracles import AdjustmentOracle, Oracle, causal_graphs, queries, subsets

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sets(found) -> set[frozenset]:
    return {frozenset(z) for z in found}


@SETTINGS
@given(queries())
def test_against_the_brute_force_criterion(q):
    """One oracle per example, several claims (the path enumeration is the slow part)."""
    graph, xs, ys = q
    oracle = AdjustmentOracle(graph, xs, ys)
    assert set(forbidden_set(graph, xs, ys)) == oracle.forb & set(graph.observed)
    # validity, on every subset of the observed covariates
    for z in subsets(oracle.candidates):
        assert is_valid_adjustment(graph, xs, ys, z) == oracle.valid(z), sorted(z)
    # the minimal sets are exactly the inclusion-minimal valid subsets
    found = minimal_adjustment_sets(graph, xs, ys, cap=10_000)
    assert _sets(found) == oracle.minimal_sets()
    assert len(found) == len(_sets(found))
    assert [len(z) for z in found] == sorted(len(z) for z in found)
    assert bool(found) == bool(oracle.valid_sets)  # no valid set is missed
    # networkx's minimal separator in the proper back-door graph is one of them
    s = effect_structure(graph, tuple(sorted(xs)), tuple(sorted(ys)))
    allowed = set(graph.observed) - oracle.forb - set(ys)
    nx_set = nx.find_minimal_d_separator(s.pbd, set(xs), set(ys), restricted=allowed)
    assert (nx_set is not None) == bool(found)
    if nx_set is not None:
        assert frozenset(nx_set) in _sets(found)
    # canonical: valid iff some set is
    canonical = canonical_adjustment_set(graph, xs, ys)
    assert (canonical is not None) == bool(oracle.valid_sets)
    if canonical is not None:
        assert oracle.valid(frozenset(canonical))
    # optimal: valid when given; always given in a DAG when Y ⊆ De(X) and a set exists
    optimal = optimal_adjustment_set(graph, xs, ys)
    assert optimal.reason
    if optimal.variables is not None:
        assert oracle.valid(frozenset(optimal.variables))
    in_de_x = set(ys) <= oracle.o.cn(xs, ys)
    if not graph.has_latents() and in_de_x and oracle.valid_sets:
        assert optimal.variables is not None  # Henckel et al. (2022), theorem 3.4
    if not in_de_x:
        assert optimal.variables is None and "not a descendant" in optimal.reason


@SETTINGS
@given(queries(), st.data())
def test_include_and_exclude_constraints(q, data):
    graph, xs, ys = q
    oracle = AdjustmentOracle(graph, xs, ys)
    free = sorted(oracle.candidates - oracle.forb)
    include = frozenset(data.draw(st.lists(st.sampled_from(free), max_size=2, unique=True))) if free else frozenset()
    rest = [v for v in free if v not in include]
    exclude = frozenset(data.draw(st.lists(st.sampled_from(rest), max_size=2, unique=True))) if rest else frozenset()
    result = adjustment_sets(graph, xs, ys, include=include, exclude=exclude, cap=10_000)
    assert _sets(result.minimal) == oracle.minimal_sets(include, exclude)
    assert not result.truncated
    assert bool(result.reason) == (not result.minimal)
    if not result.minimal:
        assert result.reason.startswith("no valid adjustment set: the ")
    # the optimal, O ∪ include and canonical sets are valid and within the constraints too
    offered = [result.optimal.variables, result.optimal_with_include, result.canonical]
    for z in (frozenset(z) for z in offered if z is not None):
        assert include <= z and not z & exclude and oracle.valid(z), sorted(z)
    assert (result.canonical is not None) == bool(result.minimal)
    if result.optimal_with_include is not None:
        assert "does not contain the included" in result.optimal.reason
    assert AdjustmentResult.from_dict(result.to_dict()) == result


@SETTINGS
@given(queries(), st.data())
def test_the_optimal_set_with_exclusions_beats_every_admissible_set(q, data):
    """Henckel, Perković & Maathuis (2022), theorem 3.6: O has no larger asymptotic variance
    than a valid Z when Y ⊥ Z \\ O | X ∪ O and X ⊥ O \\ Z | Z. Checked path by path on the
    user's graph against every valid set that avoids the excluded variables; and O plus any
    admissible covariates stays valid."""
    graph, xs, ys = q
    oracle = AdjustmentOracle(graph, xs, ys)
    free = sorted(oracle.candidates - oracle.forb)
    exclude = frozenset(data.draw(st.lists(st.sampled_from(free), max_size=2, unique=True))) if free else frozenset()
    optimal = adjustment_sets(graph, xs, ys, exclude=exclude).optimal
    if optimal.variables is None:
        return
    o = frozenset(optimal.variables)
    admissible = [z for z in oracle.valid_sets if not z & exclude]
    assert o in admissible
    for z in admissible[:64]:
        assert oracle.o.separated(ys, z - o, set(xs) | o), (sorted(z), sorted(o))
        assert oracle.o.separated(xs, o - z, z), (sorted(z), sorted(o))
    rest = sorted(set(free) - exclude - o)
    extra = frozenset(data.draw(st.lists(st.sampled_from(rest), max_size=3, unique=True))) if rest else frozenset()
    assert oracle.valid(o | extra), sorted(o | extra)


@SETTINGS
@given(queries())
def test_no_set_reason_names_an_open_path(q):
    graph, xs, ys = q
    result = adjustment_sets(graph, xs, ys)
    assert isinstance(result, AdjustmentResult)
    assert result.exists == (result.reason == "")
    assert AdjustmentResult.from_dict(result.to_dict()) == result
    if result.exists:
        return
    s = effect_structure(graph, tuple(sorted(xs)), tuple(sorted(ys)))
    forb = Oracle(graph).forbidden(xs, ys)
    z = set().union(*(graph.ancestors(v) for v in xs + ys)) & set(graph.observed) - forb - set(ys)
    path = connecting_path(s.pbd, s.xs, s.ys, z)
    assert path is not None and len(set(path)) == len(path)
    assert path[0] in xs and path[-1] in ys and not set(path[1:]) & set(xs)
    oracle = Oracle(graph, s.pbd)
    assert not oracle.blocked(path, z)


@settings(max_examples=60, deadline=None)
@given(queries(graphs=causal_graphs(min_observed=8, max_observed=10, max_density=0.5)))
def test_cap_truncates_and_reports(q):
    graph, xs, ys = q
    everything = minimal_adjustment_sets(graph, xs, ys, cap=10_000)
    result = adjustment_sets(graph, xs, ys, cap=2)
    assert result.truncated == (len(everything) > 2)
    assert len(result.minimal) == min(2, len(everything))
    assert _sets(result.minimal) <= _sets(everything)


# ---------------------------------------------------------------- worked examples
def test_textbook_examples():
    # Pearl (2009) fig. 3.4-like: Z confounds, W is a cause of Y only.
    g = CausalGraph.parse("A -> Z; B -> Z; A -> X; Z -> X; Z -> Y; W -> Y; X -> Y")
    r = adjustment_sets(g, "X", "Y")
    assert r.minimal == (("Z",),)
    assert r.optimal == OptimalSet(("W", "Z"), r.optimal.reason)
    assert r.canonical == ("A", "B", "W", "Z")
    # M-bias: adjusting for the collider M alone is invalid; the empty set is minimal.
    m = CausalGraph.parse("U1 -> M; U2 -> M; U1 -> X; U2 -> Y; X -> Y")
    assert minimal_adjustment_sets(m, "X", "Y") == ((),)
    assert not is_valid_adjustment(m, "X", "Y", ["M"])
    assert is_valid_adjustment(m, "X", "Y", ["M", "U1"])
    assert set(minimal_adjustment_sets(m, "X", "Y", include=["M"])) == {("M", "U1"), ("M", "U2")}


def test_latents_and_bidirected_edges():
    g = CausalGraph.parse("X -> M -> Y; X <-> Y")
    r = adjustment_sets(g, "X", "Y")
    assert r.minimal == () and r.canonical is None
    assert "back-door path X <-> Y is open" in r.reason
    assert r.optimal.variables is None and "bidirected edge X <-> Y" in r.optimal.reason
    h = CausalGraph.parse("latent U\nU -> X; U -> C; C -> Y; X -> Y")
    assert minimal_adjustment_sets(h, "X", "Y") == (("C",),)
    assert not is_valid_adjustment(h, "X", "Y", ["U"])
    o = optimal_adjustment_set(CausalGraph.parse("latent U\nU -> Y; X -> Y; U -> W"), "X", "Y")
    assert o.variables is None and "latent variable U" in o.reason
    # a latent cause of Y alone drops out of the latent projection, and its observed parent
    # takes its place as a precision variable
    p = optimal_adjustment_set(CausalGraph.parse("latent U\nA -> U -> Y; C -> X -> Y; C -> Y"), "X", "Y")
    assert p.variables == ("A", "C") and "in the latent projection, without the latent U" in p.reason
    blocked = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> Y")
    assert "X <- U -> Y" in adjustment_sets(blocked, "X", "Y").reason


def test_several_treatments_and_outcomes():
    g = CausalGraph.parse("C -> X1; C -> Y2; X1 -> X2; X2 -> Y1; Y1 -> Y2; D -> X2; D -> Y1")
    assert set(minimal_adjustment_sets(g, ["X1", "X2"], ["Y1", "Y2"])) == {("C", "D")}
    assert forbidden_set(g, ["X1", "X2"], ["Y1", "Y2"]) == ("X1", "X2", "Y1", "Y2")


def test_constraint_errors_name_the_variable():
    g = CausalGraph.parse("latent U\nC -> X; C -> Y; X -> M -> Y; M -> D; U -> C; U -> Y")
    with pytest.raises(GraphError, match="'M', which is forbidden"):
        adjustment_sets(g, "X", "Y", include=["M"])
    with pytest.raises(GraphError, match="'U', a latent variable"):
        minimal_adjustment_sets(g, "X", "Y", include=["U"])
    with pytest.raises(GraphError, match="both included and excluded"):
        adjustment_sets(g, "X", "Y", include=["C"], exclude=["C"])
    with pytest.raises(GraphError, match="unknown variables"):
        is_valid_adjustment(g, "X", "Y", ["Nope"])
    with pytest.raises(GraphError, match="unknown treatment"):
        adjustment_sets(g, "Nope", "Y")
    r = adjustment_sets(g, "X", "Y", exclude=["C"])
    assert r.minimal == () and "within the include/exclude constraints" in r.reason
    with pytest.raises(GraphError, match="exclude names 'U', a latent variable"):
        adjustment_sets(g, "X", "Y", exclude=["U"])
    with pytest.raises(GraphError, match="exclude names 'X', which is a treatment"):
        minimal_adjustment_sets(g, "X", "Y", exclude=["X"])


def test_excluded_variables_leave_the_optimal_and_canonical_sets():
    # x3 confounds: no valid set avoids it, and neither O nor the canonical set is offered
    confounded = CausalGraph.parse("c -> d; x1 -> d; x3 -> d; c -> y; x1 -> y; x3 -> y; d -> y")
    r = adjustment_sets(confounded, "d", "y", exclude=["x3"])
    assert r.minimal == () and r.canonical is None and r.optimal.variables is None
    assert "the excluded variable x3 (a parent of y)" in r.optimal.reason
    assert r.reason.startswith("no valid adjustment set: the back-door path d <- x3 -> y is open given {c, x1}")
    # x3 a precision variable: O without it is optimal among the sets that avoid it
    precision = CausalGraph.parse("c -> d; x1 -> d; c -> y; x1 -> y; x3 -> y; d -> y")
    assert adjustment_sets(precision, "d", "y").optimal.variables == ("c", "x1", "x3")
    r = adjustment_sets(precision, "d", "y", exclude=["x3"])
    assert r.optimal.variables == ("c", "x1") and r.canonical == ("c", "x1")
    assert "that avoid the excluded variables" in r.optimal.reason


def test_included_variables_enter_the_optimal_and_canonical_sets():
    g = CausalGraph.parse("A -> X -> Y; C -> X; C -> Y; P -> Y; B -> A")
    r = adjustment_sets(g, "X", "Y", include=["A"])
    assert r.optimal.variables is None and r.optimal_with_include == ("A", "C", "P")
    assert r.optimal.reason.startswith("the optimal set O = {C, P} does not contain the included {A}")
    assert r.canonical == ("A", "B", "C", "P")  # An(X ∪ Y ∪ include) ∩ admissible ∪ include
    assert r.minimal == (("A", "C"),)
    kept = adjustment_sets(g, "X", "Y", include=["P"])
    assert kept.optimal.variables == ("C", "P") and kept.optimal_with_include is None


def test_many_minimal_sets_and_the_cap():
    # k parallel back-door paths X <- A_i <- B_i -> Y, each blocked by A_i or by B_i
    k = 5
    g = CausalGraph.parse("; ".join(f"A{i} -> X; B{i} -> A{i}; B{i} -> Y" for i in range(k)) + "; X -> Y")
    everything = minimal_adjustment_sets(g, "X", "Y", cap=1000)
    assert len(everything) == 2**k and all(len(z) == k for z in everything)
    r = adjustment_sets(g, "X", "Y", cap=7)
    assert r.truncated and r.cap == 7 and len(r.minimal) == 7 and set(r.minimal) <= set(everything)
    assert r.optimal.variables == tuple(f"B{i}" for i in range(k))
    with pytest.raises(GraphError, match="cap must be a positive"):
        adjustment_sets(g, "X", "Y", cap=0)
