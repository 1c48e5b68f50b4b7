"""Front-door sets against a brute-force, path-by-path reading of the criterion."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causal_core.identification import frontdoor
from causal_core.identification.frontdoor import EXACT_LIMIT, frontdoor_sets, is_frontdoor_set, maximal_frontdoor_set
from causal_core.graph.causal_graph import CausalGraph
from tests.causal_core.graph_oracles import FrontdoorOracle, causal_graphs, frontdoor_queries, queries, subsets

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(queries(), frontdoor_queries()))
def test_is_frontdoor_set_matches_the_definition_on_every_subset(q):
    graph, xs, ys = q
    oracle = FrontdoorOracle(graph, xs, ys)
    for m in subsets(oracle.candidates):
        if m:
            assert is_frontdoor_set(graph, xs, ys, m) == oracle.holds(m), sorted(m)


@SETTINGS
@given(st.one_of(frontdoor_queries(), queries(graphs=causal_graphs(max_bidirected=3))))
def test_listing_is_the_complete_list_of_minimal_sets(q):
    graph, xs, ys = q
    oracle = FrontdoorOracle(graph, xs, ys)
    found = frontdoor_sets(graph, xs, ys, cap=10_000)
    assert len(graph.observed) <= EXACT_LIMIT + 2  # so the exact search runs
    assert {frozenset(m) for m in found} == oracle.minimal_sets()
    assert [len(m) for m in found] == sorted(len(m) for m in found)
    top = maximal_frontdoor_set(graph, xs, ys)
    assert (top is None) == (not oracle.sets)
    if top is not None:
        assert oracle.holds(top)
        assert all(m <= set(top) for m in oracle.sets)


def test_classic_front_door():
    g = CausalGraph.parse("X -> M -> Y; X <-> Y")
    assert frontdoor_sets(g, "X", "Y") == (("M",),)
    assert is_frontdoor_set(g, "X", "Y", "M")
    assert not is_frontdoor_set(g, "X", "Y", [])
    # a direct edge cannot be intercepted
    assert frontdoor_sets(CausalGraph.parse("X -> M -> Y; X -> Y; X <-> Y"), "X", "Y") == ()
    # a confounded mediator breaks (ii)
    assert frontdoor_sets(CausalGraph.parse("X -> M -> Y; X <-> Y; X <-> M"), "X", "Y") == ()
    # a mediator confounded with Y breaks (iii)
    assert frontdoor_sets(CausalGraph.parse("X -> M -> Y; X <-> Y; M <-> Y"), "X", "Y") == ()
    # with an explicit latent confounder
    h = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> M -> Y")
    assert frontdoor_sets(h, "X", "Y") == (("M",),)


def test_two_mediators():
    g = CausalGraph.parse("X -> M1 -> Y; X -> M2 -> Y; X <-> Y")
    assert frontdoor_sets(g, "X", "Y") == (("M1", "M2"),)
    chain = CausalGraph.parse("X -> M1 -> M2 -> Y; X <-> Y")
    assert frontdoor_sets(chain, "X", "Y") == (("M1",), ("M2",))
    # several treatments and outcomes
    many = CausalGraph.parse("X1 -> M1 -> Y1; X2 -> M2 -> Y2; M1 -> Y2; X1 <-> Y1; X2 <-> Y2")
    assert frontdoor_sets(many, ["X1", "X2"], ["Y1", "Y2"]) == (("M1", "M2"),)


def test_an_off_path_node_can_be_needed():
    # M's back-door path M <- A -> W -> Y is cut only once W (or A) is in the set too
    g = CausalGraph.parse("X -> M -> Y; X <-> Y; A -> M; A -> W; W -> Y")
    assert set(frontdoor_sets(g, "X", "Y")) == {("A", "M"), ("M", "W")}
    assert not is_frontdoor_set(g, "X", "Y", ["M"])


@SETTINGS
@given(st.one_of(frontdoor_queries(max_extra=6), queries(graphs=causal_graphs(max_bidirected=3))))
def test_bounded_search_returns_valid_sets_and_finds_one_when_any_exists(q):
    graph, xs, ys = q
    oracle = FrontdoorOracle(graph, xs, ys)
    with patch.object(frontdoor, "EXACT_LIMIT", 0):  # force the search used on big graphs
        found = frontdoor_sets(graph, xs, ys, cap=5)
    assert all(oracle.holds(m) for m in found)
    assert bool(found) == bool(oracle.sets)
    assert all(not set(a) < set(b) for a in found for b in found)


def test_bounded_search_on_a_larger_graph():
    # twelve parallel mediators: the only front-door set has all of them
    meds = [f"M{i:02d}" for i in range(12)]
    g = CausalGraph.parse("; ".join([f"X -> {m} -> Y" for m in meds] + ["X <-> Y"]))
    assert frontdoor_sets(g, "X", "Y") == (tuple(meds),)
    # a chain with eleven harmless causes of Y among the candidates
    w = [f"W{i:02d}" for i in range(11)]
    h = CausalGraph.parse("; ".join(["X -> A -> B -> Y", "X <-> Y"] + [f"{v} -> Y" for v in w]))
    assert frontdoor_sets(h, "X", "Y")[:2] == (("A",), ("B",))
