"""The causal graph: observed and latent variables, directed and bidirected edges.

A :class:`CausalGraph` is a frozen value. It may hold explicit latent nodes (``U -> X``
with ``U`` latent) and bidirected edges (``X <-> Y``, a latent common cause). The
identification algorithms work on its *latent projection* (Verma & Pearl 1990;
Tian & Pearl 2002, section 2), an acyclic directed mixed graph (ADMG) over the observed
variables only; m-separation in an ADMG is d-separation in its *canonical DAG*, where
every bidirected edge is replaced by a fresh latent parent of both ends (Richardson 2003).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import networkx as nx

from causal_core.errors import GraphError

NodeSet = frozenset[str]


def as_names(value: str | Iterable[str], what: str = "variables") -> tuple[str, ...]:
    """Normalise a name or a sequence of names to a tuple of unique names, keeping order."""
    if isinstance(value, str):
        names = (value,)
    else:
        try:
            names = tuple(value)
        except TypeError:
            raise GraphError(f"{what}: expected a name or a list of names, got {value!r}") from None
    if not names:
        raise GraphError(f"{what}: expected at least one name, got none")
    for n in names:
        if not isinstance(n, str) or not n:
            raise GraphError(f"{what}: expected non-empty names, got {n!r}")
    return tuple(dict.fromkeys(names))


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


@dataclass(frozen=True)
class CausalGraph:
    """An acyclic causal graph with optional latent variables.

    ``observed`` keeps the order in which variables were declared; ``directed`` and
    ``bidirected`` are stored sorted and without duplicates, so equal graphs compare equal
    however they were written.
    """

    observed: tuple[str, ...]
    directed: tuple[tuple[str, str], ...] = ()
    bidirected: tuple[tuple[str, str], ...] = ()
    latent: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        observed = tuple(dict.fromkeys(self.observed))
        latent = tuple(dict.fromkeys(self.latent))
        both = set(observed) & set(latent)
        if both:
            raise GraphError(f"nodes declared both observed and latent: {sorted(both)}")
        known = set(observed) | set(latent)
        directed = set()
        for a, b in self.directed:
            for n in (a, b):
                if n not in known:
                    raise GraphError(f"directed edge {a} -> {b} names unknown node {n!r}")
            if a == b:
                raise GraphError(f"self-loop on {a!r}: a variable cannot cause itself")
            directed.add((a, b))
        bidirected = set()
        for a, b in self.bidirected:
            for n in (a, b):
                if n not in known:
                    raise GraphError(f"bidirected edge {a} <-> {b} names missing node {n!r}")
            if a == b:
                raise GraphError(f"self-loop {a} <-> {a}: a bidirected edge needs two nodes")
            bidirected.add(_pair(a, b))
        object.__setattr__(self, "observed", observed)
        object.__setattr__(self, "latent", latent)
        object.__setattr__(self, "directed", tuple(sorted(directed)))
        object.__setattr__(self, "bidirected", tuple(sorted(bidirected)))
        dag = nx.DiGraph()
        dag.add_nodes_from(observed + latent)
        dag.add_edges_from(self.directed)
        if not nx.is_directed_acyclic_graph(dag):
            cycle = [u for u, _ in nx.find_cycle(dag)]
            raise GraphError("the graph has a cycle: " + " -> ".join(cycle + [cycle[0]]))

    # ------------------------------------------------------------------ building
    @classmethod
    def parse(cls, source: object) -> CausalGraph:
        """Build a graph from edge-list text, DOT, GML, or a networkx DiGraph.

        See :mod:`causal_core.graph.parse` for the accepted syntaxes.
        """
        from causal_core.graph.parse import parse_graph

        return parse_graph(source)

    # ------------------------------------------------------------------ structure
    @cached_property
    def nodes(self) -> tuple[str, ...]:
        return self.observed + self.latent

    @cached_property
    def _dag(self) -> nx.DiGraph:
        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.directed)
        return g

    @cached_property
    def _order(self) -> dict[str, int]:
        rank = {n: i for i, n in enumerate(self.nodes)}
        order = list(nx.lexicographical_topological_sort(self._dag, key=rank.__getitem__))
        return {n: i for i, n in enumerate(order)}

    @cached_property
    def _siblings(self) -> dict[str, frozenset[str]]:
        sib: dict[str, set[str]] = {n: set() for n in self.nodes}
        for a, b in self.bidirected:
            sib[a].add(b)
            sib[b].add(a)
        return {n: frozenset(s) for n, s in sib.items()}

    def topological_order(self, nodes: Iterable[str] | None = None) -> tuple[str, ...]:
        """Nodes in this graph's fixed topological order (declaration order breaks ties).

        A subgraph has its own order, which need not be this one restricted to its nodes;
        algorithms that need one order throughout should pass ``nodes`` here instead.
        """
        chosen = self.nodes if nodes is None else tuple(nodes)
        unknown = [n for n in chosen if n not in self._order]
        if unknown:
            raise GraphError(f"unknown node(s) {unknown}")
        return tuple(sorted(chosen, key=self._order.__getitem__))

    def _known(self, nodes: str | Iterable[str]) -> set[str]:
        vs = {nodes} if isinstance(nodes, str) else set(nodes)
        unknown = [v for v in vs if v not in self._dag]
        if unknown:
            raise GraphError(f"unknown node(s) {sorted(unknown)}; the graph has {', '.join(self.nodes)}")
        return vs

    def parents(self, nodes: str | Iterable[str]) -> NodeSet:
        vs = self._known(nodes)
        return frozenset(p for v in vs for p in self._dag.predecessors(v))

    def children(self, nodes: str | Iterable[str]) -> NodeSet:
        vs = self._known(nodes)
        return frozenset(c for v in vs for c in self._dag.successors(v))

    def siblings(self, node: str) -> NodeSet:
        """Nodes joined to ``node`` by a bidirected edge."""
        return self._siblings[node]

    def ancestors(self, nodes: str | Iterable[str]) -> NodeSet:
        """Ancestors of ``nodes``, the nodes themselves included (the ID-algorithm convention)."""
        vs = self._known(nodes)
        out = set(vs)
        for v in vs:
            out |= nx.ancestors(self._dag, v)
        return frozenset(out)

    def descendants(self, nodes: str | Iterable[str]) -> NodeSet:
        """Descendants of ``nodes``, the nodes themselves included."""
        vs = self._known(nodes)
        out = set(vs)
        for v in vs:
            out |= nx.descendants(self._dag, v)
        return frozenset(out)

    def has_latents(self) -> bool:
        return bool(self.latent or self.bidirected)

    # ------------------------------------------------------------------ transforms
    def subgraph(self, nodes: Iterable[str]) -> CausalGraph:
        """The induced subgraph on ``nodes`` (edges with both ends inside)."""
        keep = set(nodes)
        unknown = keep - set(self.nodes)
        if unknown:
            raise GraphError(f"subgraph names unknown nodes {sorted(unknown)}")
        return CausalGraph(
            observed=tuple(n for n in self.observed if n in keep),
            latent=tuple(n for n in self.latent if n in keep),
            directed=tuple(e for e in self.directed if e[0] in keep and e[1] in keep),
            bidirected=tuple(e for e in self.bidirected if e[0] in keep and e[1] in keep),
        )

    def without_incoming(self, nodes: Iterable[str]) -> CausalGraph:
        """G with every edge into ``nodes`` removed (directed into, and bidirected at)."""
        cut = set(nodes)
        return CausalGraph(
            observed=self.observed,
            latent=self.latent,
            directed=tuple(e for e in self.directed if e[1] not in cut),
            bidirected=tuple(e for e in self.bidirected if e[0] not in cut and e[1] not in cut),
        )

    def without_outgoing(self, nodes: Iterable[str]) -> CausalGraph:
        """G with every directed edge out of ``nodes`` removed."""
        cut = set(nodes)
        return CausalGraph(
            observed=self.observed,
            latent=self.latent,
            directed=tuple(e for e in self.directed if e[0] not in cut),
            bidirected=self.bidirected,
        )

    def without_edges(self, edges: Iterable[tuple[str, str]]) -> CausalGraph:
        """G with the given directed edges removed."""
        cut = set(edges)
        return CausalGraph(
            observed=self.observed,
            latent=self.latent,
            directed=tuple(e for e in self.directed if e not in cut),
            bidirected=self.bidirected,
        )

    def with_latent(self, nodes: Iterable[str]) -> CausalGraph:
        """The same graph with the observed ``nodes`` marked latent (edges unchanged).

        Identification in this graph is identification when those variables are not
        measured, or may not be used: every search restricts its sets to observed nodes,
        and the ID algorithm works on the latent projection.
        """
        hide = set(nodes)
        if not hide:
            return self
        not_observed = sorted(hide - set(self.observed))
        if not_observed:
            raise GraphError(f"with_latent names {not_observed}, which are not observed nodes of the graph")
        return CausalGraph(
            observed=tuple(n for n in self.observed if n not in hide),
            latent=self.latent + tuple(n for n in self.observed if n in hide),
            directed=self.directed,
            bidirected=self.bidirected,
        )

    def canonical_dag(self) -> nx.DiGraph:
        """A networkx DAG in which each bidirected edge a <-> b becomes a latent node.

        The added nodes are named ``U[a,b]`` and carry ``latent=True``, as do the graph's
        own latent nodes; m-separation in this graph is d-separation in the DAG.
        """
        key = "canonical_dag"
        if key not in self._cache:
            g = nx.DiGraph()
            g.add_nodes_from(self.observed, latent=False)
            g.add_nodes_from(self.latent, latent=True)
            g.add_edges_from(self.directed)
            for a, b in self.bidirected:
                u = f"U[{a},{b}]"
                while u in g:  # never collide with a user's own node name
                    u += "'"
                g.add_node(u, latent=True)
                g.add_edges_from([(u, a), (u, b)])
            self._cache[key] = nx.freeze(g)  # shared by every query: nobody may edit it
        return self._cache[key]

    def projection(self) -> CausalGraph:
        """The latent projection onto the observed variables (an ADMG with no latent nodes).

        a -> b when a directed path a -> ... -> b has only latent inner nodes; a <-> b when
        a latent node reaches both a and b by directed paths with only latent inner nodes
        (Verma & Pearl 1990; Tian & Pearl 2002, def. 1).
        """
        if not self.latent:
            return self
        key = "projection"
        if key in self._cache:
            return self._cache[key]
        dag = self.canonical_dag()
        latent = {n for n, d in dag.nodes(data=True) if d["latent"]}

        def observed_reach(start: str) -> set[str]:
            seen, out, stack = set(), set(), list(dag.successors(start))
            while stack:
                v = stack.pop()
                if v in seen:
                    continue
                seen.add(v)
                if v in latent:
                    stack.extend(dag.successors(v))
                else:
                    out.add(v)
            return out

        directed = {(a, b) for a in self.observed for b in observed_reach(a)}
        bidirected = set()
        for u in latent:
            reach = sorted(observed_reach(u))
            bidirected |= {(a, b) for i, a in enumerate(reach) for b in reach[i + 1 :]}
        proj = CausalGraph(observed=self.observed, directed=tuple(directed), bidirected=tuple(bidirected))
        self._cache[key] = proj
        return proj

    # ------------------------------------------------------------------ components
    def districts(self, nodes: Iterable[str] | None = None) -> tuple[NodeSet, ...]:
        """The c-components (districts) of the graph restricted to ``nodes``.

        Connected components of the bidirected part (Tian & Pearl 2002); sorted so that the
        result is deterministic. Explicit latent nodes are projected out first, so
        ``U -> X; U -> Y`` gives the district {X, Y}.
        """
        if self.latent:
            return self.projection().districts(
                [n for n in (self.observed if nodes is None else nodes) if n in self.observed])
        keep = set(self.nodes if nodes is None else nodes)
        g = nx.Graph()
        g.add_nodes_from(keep)
        g.add_edges_from(e for e in self.bidirected if e[0] in keep and e[1] in keep)
        comps = [frozenset(c) for c in nx.connected_components(g)]
        return tuple(sorted(comps, key=lambda c: min(self._order[n] for n in c)))

    def is_m_separated(self, xs: Iterable[str], ys: Iterable[str], zs: Iterable[str] = ()) -> bool:
        """True when ``xs`` and ``ys`` are m-separated given ``zs``."""
        x, y, z = set(xs), set(ys), set(zs)
        unknown = (x | y | z) - set(self.nodes)
        if unknown:
            raise GraphError(f"m-separation query names unknown node(s) {sorted(unknown)}")
        if x & y:
            return False
        if z & (x | y):
            raise GraphError(f"the conditioning set overlaps the separated sets: {sorted(z & (x | y))}")
        return nx.is_d_separator(self.canonical_dag(), x, y, z)

    # ------------------------------------------------------------------ checks and output
    def check_query(self, treatment: str | Sequence[str], outcome: str | Sequence[str]) -> None:
        """Raise :class:`GraphError` unless treatment and outcome are disjoint observed nodes."""
        treatment, outcome = as_names(treatment, "treatment"), as_names(outcome, "outcome")
        for role, names in (("treatment", treatment), ("outcome", outcome)):
            for n in names:
                if n in self.latent:
                    raise GraphError(f"{role} {n!r} is a latent node; it must be observed")
                if n not in self.observed:
                    raise GraphError(
                        f"unknown {role} {n!r}: not a node of the graph (nodes: {', '.join(self.observed)})"
                    )
        both = set(treatment) & set(outcome)
        if both:
            raise GraphError(f"treatment and outcome must differ; both name {sorted(both)}")

    def to_text(self) -> str:
        """Edge-list text that :meth:`parse` reads back to an equal graph."""
        lines = ["; ".join(self.observed)]  # declares the variables in their order
        if self.latent:
            lines.append("latent " + ", ".join(self.latent))
        lines += [f"{a} -> {b}" for a, b in self.directed]
        lines += [f"{a} <-> {b}" for a, b in self.bidirected]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "observed": list(self.observed),
            "latent": list(self.latent),
            "directed": [list(e) for e in self.directed],
            "bidirected": [list(e) for e in self.bidirected],
        }

    @classmethod
    def from_dict(cls, data: dict) -> CausalGraph:
        try:
            return cls(
                observed=tuple(data["observed"]),
                latent=tuple(data.get("latent", ())),
                directed=tuple(tuple(e) for e in data.get("directed", ())),
                bidirected=tuple(tuple(e) for e in data.get("bidirected", ())),
            )
        except KeyError as exc:
            raise GraphError(f"graph dict is missing the field {exc}") from None

    def __str__(self) -> str:
        return self.to_text().replace("\n", "; ")
