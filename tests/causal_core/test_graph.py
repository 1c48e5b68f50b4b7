"""CausalGraph: parsing every input format, errors that name the problem, structure."""

import networkx as nx
import pytest

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph


def test_edge_list_text_with_chains_comments_and_bidirected():
    g = CausalGraph.parse("Z -> X -> M -> Y  # chain\nX <-> Y; W -> Y\nY <- V\nA")
    assert set(g.observed) == {"Z", "X", "M", "Y", "W", "V", "A"}
    assert set(g.directed) == {("Z", "X"), ("X", "M"), ("M", "Y"), ("W", "Y"), ("V", "Y")}
    assert g.bidirected == (("X", "Y"),)
    assert g.parents("Y") == {"M", "W", "V"}
    assert g.ancestors("M") == {"M", "X", "Z"}


def test_text_round_trip_and_dict_round_trip():
    g = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> Y; A; B <-> Y")
    assert CausalGraph.parse(g.to_text()) == g
    assert CausalGraph.from_dict(g.to_dict()) == g
    assert g.latent == ("U",)


def test_dot_with_latent_node_and_bidirected_edge():
    g = CausalGraph.parse('digraph G { X -> Y; U [latent=true]; U -> X; U -> Y; "Z" -> X; A -> B [dir=both] }')
    assert g.latent == ("U",)
    assert ("Z", "X") in g.directed and g.bidirected == (("A", "B"),)
    dowhy_style = CausalGraph.parse('digraph { U [observed="no"]; U -> X; X -> Y }')
    assert dowhy_style.latent == ("U",)


def test_gml_and_networkx_inputs():
    gml = 'graph [ directed 1 node [ id 0 label "X" ] node [ id 1 label "Y" ] node [ id 2 label "U" latent 1 ] ' \
          'edge [ source 0 target 1 ] edge [ source 2 target 0 ] edge [ source 2 target 1 ] ]'
    g = CausalGraph.parse(gml)
    assert g.latent == ("U",) and ("X", "Y") in g.directed
    d = nx.DiGraph([("X", "Y"), ("U", "X"), ("U", "Y")])
    d.nodes["U"]["latent"] = True
    assert CausalGraph.parse(d) == g


@pytest.mark.parametrize("text, message", [
    ("A -> B -> C -> A", "cycle: A -> B -> C -> A"),
    ("A -> A", "self-loop on 'A'"),
    ("A <-> A", "self-loop A <-> A"),
    ("A -> ", "missing a variable"),
    ("A -> B\nB -> 3x", "line 2: '3x' is not a variable name"),
    ("", "no observed variables"),
])
def test_errors_name_the_problem(text, message):
    with pytest.raises(GraphError, match=message.replace("(", r"\(")):
        CausalGraph.parse(text)


def test_bidirected_edge_to_missing_node_is_an_error():
    with pytest.raises(GraphError, match="missing node 'Q'"):
        CausalGraph(observed=("A",), bidirected=(("A", "Q"),))


def test_query_errors():
    g = CausalGraph.parse("X -> Y; latent U; U -> Y")
    with pytest.raises(GraphError, match="treatment and outcome must differ"):
        g.check_query(("X",), ("X",))
    with pytest.raises(GraphError, match="unknown outcome 'Q'"):
        g.check_query(("X",), ("Q",))
    with pytest.raises(GraphError, match="latent"):
        g.check_query(("U",), ("Y",))


def test_latent_projection_matches_definition():
    g = CausalGraph.parse("latent U, L\nU -> X; U -> L; L -> Y; X -> L2; L2 -> Y; Z -> X")
    p = g.projection()
    assert p.latent == ()
    # U reaches X directly and Y through latent L: X <-> Y; L2 is observed so X -> L2 -> Y stays.
    assert p.bidirected == (("X", "Y"),)
    assert set(p.directed) == {("X", "L2"), ("L2", "Y"), ("Z", "X")}
    chain = CausalGraph.parse("latent M\nX -> M -> Y").projection()
    assert chain.directed == (("X", "Y"),) and chain.bidirected == ()


def test_m_separation_uses_bidirected_edges():
    g = CausalGraph.parse("X -> M -> Y; X <-> Y")
    assert not g.is_m_separated({"X"}, {"Y"}, {"M"})
    h = CausalGraph.parse("X -> M -> Y")
    assert h.is_m_separated({"X"}, {"Y"}, {"M"})


def test_districts_of_projection():
    g = CausalGraph.parse("A <-> B; B <-> C; C -> D; D <-> E; F")
    assert set(g.districts()) == {frozenset("ABC"), frozenset("DE"), frozenset("F")}


def test_unknown_nodes_raise_graph_error_and_canonical_dag_is_frozen():
    g = CausalGraph.parse("X -> Y; X <-> Y")
    for fn in (g.parents, g.children, g.ancestors, g.descendants):
        with pytest.raises(GraphError, match="unknown node"):
            fn("Q")
    with pytest.raises(nx.NetworkXError):
        g.canonical_dag().add_edge("Y", "X")


def test_latent_names_never_collide_with_user_nodes():
    g = CausalGraph(observed=("X", "Y", "U[X,Y]"), directed=(("X", "Y"), ("U[X,Y]", "Y")), bidirected=(("X", "Y"),))
    dag = g.canonical_dag()
    assert dag.number_of_nodes() == 4
    assert g.is_m_separated({"X"}, {"U[X,Y]"}, set()) and not g.is_m_separated({"X"}, {"U[X,Y]"}, {"Y"})
