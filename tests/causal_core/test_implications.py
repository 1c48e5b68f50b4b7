"""Testable implications against networkx d-separation and a brute-force search."""

from __future__ import annotations

import random
import time
from itertools import combinations

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings

from causal_core.identification.adjustment import adjustment_sets
from causal_core.errors import GraphError
from causal_core.identification.frontdoor import frontdoor_sets
from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.implications import Independence, implied_independences
from causal_core.identification.instruments import find_instruments
from tests.causal_core.graph_oracles import canonical, causal_graphs, subsets

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _separates(dag, a, b, z) -> bool:
    return nx.is_d_separator(dag, {a}, {b}, set(z))


@SETTINGS
@given(causal_graphs(max_observed=8, max_bidirected=3))
def test_every_separable_non_adjacent_pair_once_with_a_minimal_set(graph):
    dag = canonical(graph)
    found = implied_independences(graph)
    assert list(found) == sorted(found, key=lambda i: (i.x, i.y))
    pairs = [(i.x, i.y) for i in found]
    assert len(pairs) == len(set(pairs))
    proj = graph.projection()
    adjacent = {frozenset(e) for e in proj.directed + proj.bidirected}
    expected = set()
    for a, b in combinations(sorted(graph.observed), 2):
        if frozenset((a, b)) in adjacent:
            continue
        rest = set(graph.observed) - {a, b}
        if any(_separates(dag, a, b, z) for z in subsets(rest)):
            expected.add((a, b))
    assert set(pairs) == expected
    for ind in found:
        assert set(ind.given) <= set(graph.observed)
        assert _separates(dag, ind.x, ind.y, ind.given), str(ind)
        smaller = [z for z in subsets(ind.given) if len(z) < len(ind.given)]
        assert not any(_separates(dag, ind.x, ind.y, z) for z in smaller), str(ind)


def test_examples():
    chain = CausalGraph.parse("A -> B -> C")
    assert implied_independences(chain) == (Independence("A", "C", ("B",)),)
    collider = CausalGraph.parse("A -> C <- B")
    assert implied_independences(collider) == (Independence("A", "B"),)
    # A and C are not adjacent, yet no set separates them: B must be in it, and is a collider
    inducing = CausalGraph.parse("A -> B -> C; B <-> C")
    assert implied_independences(inducing) == ()
    # explicit latent: U -> A, U -> C, A -> B; A and C are adjacent in the projection
    latent = CausalGraph.parse("latent U\nU -> A; U -> C; A -> B")
    assert implied_independences(latent) == (Independence("B", "C", ("A",)),)
    assert str(Independence("B", "A", ("D", "C"))) == "A ⊥ B | C, D"
    assert str(Independence("A", "B")) == "A ⊥ B"


def test_independence_value():
    ind = Independence("Y", "X", ("W", "V", "W"))
    assert (ind.x, ind.y, ind.given) == ("X", "Y", ("V", "W"))
    assert Independence.from_dict(ind.to_dict()) == ind
    with pytest.raises(GraphError):
        Independence("A", "A")
    with pytest.raises(GraphError):
        Independence("A", "B", ("A",))
    with pytest.raises(GraphError, match="missing the field"):
        Independence.from_dict({"x": "A"})


def _sparse_dag(seed: int, n: int = 200, m: int = 400) -> CausalGraph:
    rng = random.Random(seed)
    edges: set[tuple[str, str]] = set()
    while len(edges) < m:
        a, b = sorted(rng.sample(range(n), 2))
        edges.add((f"V{a}", f"V{b}"))
    return CausalGraph(observed=tuple(f"V{i}" for i in range(n)), directed=tuple(edges))


def test_all_searches_run_on_a_200_node_graph():
    """Not a timing test: bench/plan_scaling.py measures; this only runs the searches."""
    graph = _sparse_dag(0)
    start = time.process_time()
    implications = implied_independences(graph)
    result = adjustment_sets(graph, "V60", "V180")
    fronts = frontdoor_sets(graph, "V60", "V180")
    ivs = find_instruments(graph, "V60", "V180")
    elapsed = time.process_time() - start
    print(f"200 nodes, 400 edges: {elapsed:.3f} s CPU for all four searches")
    assert len(implications) == 200 * 199 // 2 - 400
    assert result.minimal or result.reason
    assert all(len(m) >= 1 for m in fronts)
    assert len(ivs) <= 16
    dag = graph.canonical_dag()
    for ind in implications[::97]:
        assert nx.is_d_separator(dag, {ind.x}, {ind.y}, set(ind.given))
