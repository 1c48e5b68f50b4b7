"""Parsers that turn text or a networkx graph into a :class:`CausalGraph`.

Edge-list text (the native format)::

    # comments run to the end of the line
    Z -> X -> M -> Y      # chains
    X <-> Y               # a latent common cause of X and Y
    Y <- W                # arrows may point left
    latent U              # an explicit latent node (then U -> X; U -> Y)
    A                     # an isolated variable

Statements are separated by new lines or ``;``. DOT (``digraph { ... }``) and GML
(``graph [ ... ]``) are read through pydot and networkx; a node is latent when it has
``latent=true`` or ``observed="no"`` (DoWhy's convention), and a DOT edge with
``dir=both`` is bidirected.
"""

from __future__ import annotations

import re

import networkx as nx

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_ARROW = re.compile(r"(<->|->|<-)")


def parse_graph(source: object) -> CausalGraph:
    """Dispatch on the kind of ``source``: CausalGraph, networkx DiGraph, or text."""
    if isinstance(source, CausalGraph):
        return source
    if isinstance(source, nx.Graph):
        return from_networkx(source)
    if not isinstance(source, str):
        raise GraphError(f"cannot read a graph from {type(source).__name__}; give text or a networkx DiGraph")
    head = source.lstrip()
    low = head.lower()
    if re.match(r"^(strict\s+)?digraph\b", low):
        return from_dot(source)
    if re.match(r"^(strict\s+)?graph\s*\{", low):
        raise GraphError("DOT input must be a 'digraph'; an undirected 'graph' has no causal direction")
    if re.match(r"^graph\s*\[", low):
        return from_gml(source)
    return from_text(source)


def _check_name(name: str, lineno: int, line: str) -> str:
    if not _NAME.match(name):
        raise GraphError(f"line {lineno}: {name!r} is not a variable name (in {line.strip()!r})")
    return name


def from_text(text: str) -> CausalGraph:
    """Parse the edge-list syntax described in the module docstring."""
    observed: dict[str, None] = {}
    latent: dict[str, None] = {}
    directed: list[tuple[str, str]] = []
    bidirected: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0]
        for stmt in line.split(";"):
            stmt = stmt.strip()
            if not stmt:
                continue
            if stmt.startswith("latent ") or stmt == "latent":
                names = [s.strip() for s in stmt[len("latent") :].split(",")]
                if not any(names):
                    raise GraphError(f"line {lineno}: 'latent' needs at least one name")
                for n in names:
                    latent[_check_name(n, lineno, raw)] = None
                continue
            parts = _ARROW.split(stmt)
            names = [p.strip() for p in parts[0::2]]
            arrows = parts[1::2]
            for n in names:
                if not n:
                    raise GraphError(f"line {lineno}: an arrow is missing a variable (in {raw.strip()!r})")
                _check_name(n, lineno, raw)
                observed[n] = None
            for (a, b), arrow in zip(zip(names, names[1:]), arrows):
                if arrow == "->":
                    directed.append((a, b))
                elif arrow == "<-":
                    directed.append((b, a))
                else:
                    bidirected.append((a, b))
    for n in latent:
        observed.pop(n, None)
    if not observed:
        raise GraphError("the graph has no observed variables")
    return CausalGraph(
        observed=tuple(observed), latent=tuple(latent), directed=tuple(directed), bidirected=tuple(bidirected)
    )


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().strip('"').lower() in {"1", "true", "yes"}
    return bool(value)


def _is_latent(attrs: dict) -> bool:
    if "latent" in attrs:
        return _truthy(attrs["latent"])
    if "observed" in attrs:
        return not _truthy(attrs["observed"])
    return False


def from_networkx(g: nx.Graph) -> CausalGraph:
    """Read a networkx DiGraph; latent nodes carry ``latent=True`` (or ``observed="no"``).

    An edge with ``bidirected=True`` (or DOT's ``dir=both``) is a bidirected edge.
    """
    if not g.is_directed():
        raise GraphError("a causal graph must be directed; got an undirected networkx graph")
    observed, latent = [], []
    for n, attrs in g.nodes(data=True):
        name = str(n).strip('"')
        (latent if _is_latent(attrs) else observed).append(name)
    directed, bidirected = [], []
    for a, b, attrs in g.edges(data=True):
        a, b = str(a).strip('"'), str(b).strip('"')
        if _truthy(attrs.get("bidirected", False)) or str(attrs.get("dir", "")).strip('"') == "both":
            bidirected.append((a, b))
        else:
            directed.append((a, b))
    return CausalGraph(
        observed=tuple(observed), latent=tuple(latent), directed=tuple(directed), bidirected=tuple(bidirected)
    )


def from_dot(text: str) -> CausalGraph:
    """Parse DOT with pydot (``digraph { X -> Y; U [latent=true]; X -> Y [dir=both] }``)."""
    import pydot

    try:
        graphs = pydot.graph_from_dot_data(text)
    except Exception as exc:  # pydot raises bare pyparsing errors
        raise GraphError(f"cannot parse DOT: {exc}") from None
    if not graphs:
        raise GraphError("cannot parse DOT: no graph found")
    g = nx.nx_pydot.from_pydot(graphs[0])
    # pydot keeps its own pseudo-nodes for default attributes
    g.remove_nodes_from([n for n in list(g.nodes) if n in ("node", "edge", "graph", "\\n")])
    if isinstance(g, nx.MultiDiGraph):
        g = nx.DiGraph(g)
    return from_networkx(g)


def from_gml(text: str) -> CausalGraph:
    """Parse GML with networkx (``graph [ directed 1 node [ id 0 label "X" ] ... ]``)."""
    try:
        g = nx.parse_gml(text, label="label")
    except Exception as exc:
        raise GraphError(f"cannot parse GML: {exc}") from None
    if isinstance(g, nx.MultiDiGraph):
        g = nx.DiGraph(g)
    return from_networkx(g)
