"""Instruments against a brute-force, path-by-path reading of the definition."""

from __future__ import annotations

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.identification.instruments import Instrument, find_instruments, is_instrument
from tests.causal_core.graph_oracles import InstrumentOracle, causal_graphs, queries

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _iv_queries():
    return queries(graphs=causal_graphs(max_observed=8), max_treatments=1)


@st.composite
def iv_queries(draw):
    """Random graphs, and IV-shaped ones: Z -> X -> Y with X and Y confounded, plus noise."""
    if draw(st.booleans()):
        return draw(_iv_queries())
    graph, xs, ys = draw(_iv_queries())
    x, y = xs[0], ys[0]
    z = draw(st.sampled_from([v for v in graph.observed if v not in (x, y)]))
    bidirected = set(graph.bidirected) | {tuple(sorted((x, y)))}
    directed = {e for e in graph.directed if e not in ((z, y), (y, z), (x, z))} | {(z, x)}
    try:
        g = CausalGraph(observed=graph.observed, latent=graph.latent, directed=tuple(directed),
                        bidirected=tuple(bidirected))
    except GraphError:  # the added Z -> X closed a cycle
        return graph, xs, ys
    return g, xs, ys


@SETTINGS
@given(iv_queries())
def test_instruments_against_brute_force(q):
    graph, xs, ys = q
    x = xs[0]
    oracle = InstrumentOracle(graph, x, ys)
    found = find_instruments(graph, x, ys, cap=1000)
    by_z = {i.instruments[0]: i for i in found}
    assert len(by_z) == len(found)
    # everything returned satisfies the definition, and is_instrument agrees
    for inst in found:
        (z,) = inst.instruments
        assert oracle.holds(z, inst.conditioning), inst
        assert is_instrument(graph, x, ys, [z], inst.conditioning)
    # unconditional ones come first and none is missed
    flags = [i.conditional for i in found]
    assert flags == sorted(flags)
    for z in sorted(oracle.allowed):
        if oracle.holds(z, ()):
            assert by_z[z] == Instrument((z,)), z
    # complete for ancestral instruments (van der Zander et al. 2015, section 4) ...
    pbd = oracle.cut.dag
    conditionings = {z: oracle.conditionings(z) for z in sorted(oracle.allowed)}
    for z, ws in conditionings.items():
        anc = set().union(*(nx.ancestors(pbd, v) | {v} for v in (z, *ys)))
        if any(w <= anc for w in ws):
            assert z in by_z, z
    # ... and whenever some conditional instrument exists, one is found
    assert bool(found) == any(conditionings.values())


@SETTINGS
@given(iv_queries(), st.data())
def test_is_instrument_matches_the_definition(q, data):
    graph, xs, ys = q
    x = xs[0]
    oracle = InstrumentOracle(graph, x, ys)
    others = sorted(set(graph.observed) - {x})
    z = data.draw(st.sampled_from(others))
    w = data.draw(st.lists(st.sampled_from(others), max_size=3, unique=True).filter(lambda w: z not in w))
    assert is_instrument(graph, x, ys, z, w) == oracle.holds(z, w)


def test_classic_instrument():
    g = CausalGraph.parse("Z -> X -> Y; X <-> Y")
    assert find_instruments(g, "X", "Y") == (Instrument(("Z",)),)
    h = CausalGraph.parse("latent U\nU -> X; U -> Y; Z -> X -> Y")
    assert find_instruments(h, "X", "Y") == (Instrument(("Z",)),)
    # Z confounded with Y is no instrument
    assert find_instruments(CausalGraph.parse("Z -> X -> Y; X <-> Y; Z <-> Y"), "X", "Y") == ()
    # nor is Z with a direct effect on Y
    assert find_instruments(CausalGraph.parse("Z -> X -> Y; X <-> Y; Z -> Y"), "X", "Y") == ()


def test_conditional_instrument():
    g = CausalGraph.parse("W -> Z; W -> Y; Z -> X -> Y; X <-> Y")
    found = find_instruments(g, "X", "Y")
    assert found == (Instrument(("Z",), ("W",)),)
    assert str(found[0]) == "Z | W"
    assert is_instrument(g, "X", "Y", "Z", ["W"])
    assert not is_instrument(g, "X", "Y", "Z")
    # dagitty's test graph: w -> z -> x -> y, w -> u -> x, u -> y, u latent
    d = CausalGraph.parse("latent u\nw -> z -> x -> y; w -> u -> x; u -> y")
    assert find_instruments(d, "x", "y") == (Instrument(("z",), ("w",)),)


def test_forbidden_conditioning_and_errors():
    g = CausalGraph.parse("Z -> X -> M -> Y; X <-> Y; M -> D; Z <-> D")
    assert not is_instrument(g, "X", "Y", "Z", ["D"])  # D descends from the mediator M
    assert not is_instrument(g, "X", "Y", "M")
    assert is_instrument(g, "X", "Y", ["Z"])
    with pytest.raises(GraphError, match="exactly one treatment"):
        find_instruments(g, ["X", "Z"], "Y")
    with pytest.raises(GraphError, match="exactly one treatment"):
        is_instrument(g, ["X", "Z"], "Y", "M")
    with pytest.raises(GraphError, match="unknown variables"):
        is_instrument(g, "X", "Y", "Nope")
    inst = Instrument(("B", "A"), ("C",))
    assert inst.instruments == ("A", "B") and Instrument.from_dict(inst.to_dict()) == inst
    with pytest.raises(GraphError):
        Instrument(("A",), ("A",))
