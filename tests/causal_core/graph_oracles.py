"""Brute-force reference implementations of graph criteria, written from the definitions.

These never call causal_core's search modules: paths are enumerated with networkx
``all_simple_paths`` on the skeleton of the canonical DAG and blocking is checked by hand
(Pearl 2009, def. 1.2.3). They are exponential and meant for graphs of about ten nodes.
Also: a hypothesis strategy for small random causal graphs with explicit latent nodes
and bidirected edges.
"""

from __future__ import annotations

from functools import cached_property
from itertools import combinations, islice

import networkx as nx
from hypothesis import reject
from hypothesis import strategies as st

from causal_core.graph.causal_graph import CausalGraph


MAX_PATHS = 20_000


def canonical(graph: CausalGraph) -> nx.DiGraph:
    """Built here, not taken from graph.py: each bidirected edge gets its own latent parent."""
    g = nx.DiGraph()
    g.add_nodes_from(graph.observed)
    g.add_nodes_from(graph.latent)
    g.add_edges_from(graph.directed)
    for a, b in graph.bidirected:
        g.add_edges_from([(f"L<{a}|{b}>", a), (f"L<{a}|{b}>", b)])
    return g


def subsets(items, max_size=None):
    items = sorted(items)
    top = len(items) if max_size is None else min(max_size, len(items))
    for k in range(top + 1):
        yield from (frozenset(c) for c in combinations(items, k))


class Oracle:
    """Path-based criteria on one graph; a set is a frozenset of node names."""

    def __init__(self, graph: CausalGraph, dag: nx.DiGraph | None = None):
        self.graph = graph
        self.dag = canonical(graph) if dag is None else dag
        self.observed = frozenset(graph.observed)
        self.skeleton = self.dag.to_undirected()
        self._desc = {v: nx.descendants(self.dag, v) | {v} for v in self.dag}

    def without_edges(self, edges) -> Oracle:
        d = self.dag.copy()
        d.remove_edges_from(list(edges))
        return Oracle(self.graph, d)

    # ---------------------------------------------------------------- paths
    def paths(self, a: str, b: str):
        return nx.all_simple_paths(self.skeleton, a, b)

    def is_directed(self, path) -> bool:
        return all(self.dag.has_edge(u, v) for u, v in zip(path, path[1:]))

    def starts_into(self, path) -> bool:
        return self.dag.has_edge(path[1], path[0])

    def blocked(self, path, z) -> bool:
        for i in range(1, len(path) - 1):
            p, v, n = path[i - 1], path[i], path[i + 1]
            if self.dag.has_edge(p, v) and self.dag.has_edge(n, v):
                if not self._desc[v] & z:
                    return True
            elif v in z:
                return True
        return False

    def separated(self, xs, ys, z) -> bool:
        return all(self.blocked(p, z) for x in xs for y in ys for p in self.paths(x, y))

    def signature(self, path):
        """(non-colliders, descendants of each collider): enough to check any set quickly."""
        noncol, cols = set(), []
        for i in range(1, len(path) - 1):
            p, v, n = path[i - 1], path[i], path[i + 1]
            if self.dag.has_edge(p, v) and self.dag.has_edge(n, v):
                cols.append(frozenset(self._desc[v]))
            else:
                noncol.add(v)
        return frozenset(noncol), tuple(cols)

    def signatures(self, xs, ys):
        return {self.signature(p) for x in xs for y in ys for p in self.paths(x, y)}


    # ---------------------------------------------------------------- causal structure
    def proper_causal_paths(self, xs, ys):
        for x in sorted(xs):
            for y in sorted(ys):
                for p in nx.all_simple_paths(self.dag, x, y):
                    if not set(p[1:]) & set(xs):
                        yield p

    def cn(self, xs, ys) -> frozenset:
        return frozenset(v for p in self.proper_causal_paths(xs, ys) for v in p[1:])

    def forbidden(self, xs, ys) -> frozenset:
        out = set(xs)
        for v in self.cn(xs, ys):
            out |= self._desc[v]
        return frozenset(out)

    def proper_noncausal_paths(self, xs, ys):
        for x in sorted(xs):
            for y in sorted(ys):
                for p in self.paths(x, y):
                    if not set(p[1:]) & set(xs) and not self.is_directed(p):
                        yield p


def open_given(signatures, z) -> bool:
    """Whether some path, given by its signature, is open given the set z."""
    return any(not nc & z and all(d & z for d in cols) for nc, cols in signatures)


class AdjustmentOracle:
    """Generalized adjustment criterion by paths (Shpitser et al. 2010; Perković et al. 2018)."""

    def __init__(self, graph: CausalGraph, xs, ys):
        self.o = Oracle(graph)
        self.xs, self.ys = frozenset(xs), frozenset(ys)
        self.forb = self.o.forbidden(self.xs, self.ys)
        self.candidates = frozenset(graph.observed) - self.xs - self.ys
        paths = list(islice(self.o.proper_noncausal_paths(self.xs, self.ys), MAX_PATHS + 1))
        if len(paths) > MAX_PATHS:
            reject()  # a rare dense draw; brute force would take minutes
        self._paths = {self.o.signature(p) for p in paths}

    def valid(self, z) -> bool:
        z = frozenset(z)
        if z & self.forb or not z <= self.candidates:
            return False
        return not open_given(self._paths, z)

    @cached_property
    def valid_sets(self) -> list[frozenset]:
        return [z for z in subsets(self.candidates) if self.valid(z)]

    def minimal_sets(self, include=frozenset(), exclude=frozenset()) -> set[frozenset]:
        ok = [z for z in self.valid_sets if include <= z and not z & exclude]
        return {z for z in ok if not any(w < z for w in ok)}


# ---------------------------------------------------------------- random graphs
@st.composite
def causal_graphs(draw, min_observed=4, max_observed=9, max_latent=2, max_bidirected=2, max_density=0.45):
    """A random acyclic graph over shuffled names, maybe with latent nodes and <-> edges.

    The edges come from a hypothesis-controlled ``Random`` so that their density is even
    (hypothesis' own floats favour the ends of the range).
    """
    rng = draw(st.randoms(use_true_random=False))
    n_obs = draw(st.integers(min_observed, max_observed))
    n_lat = draw(st.integers(0, max_latent))
    names = [f"V{i}" for i in range(n_obs)] + [f"L{i}" for i in range(n_lat)]
    rng.shuffle(names)
    p = rng.uniform(0.15, max_density)
    directed = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if not (a.startswith("L") and b.startswith("L")) and rng.random() < p
    ]
    for lat in (v for v in names if v.startswith("L")):  # a latent node needs two children
        later = [v for v in names[names.index(lat) + 1 :] if v.startswith("V") and (lat, v) not in directed]
        kids = sum(1 for a, _ in directed if a == lat)
        directed += [(lat, v) for v in later[: max(0, 2 - kids)]]
    observed = sorted(v for v in names if v.startswith("V"))
    pairs = list(combinations(observed, 2))
    n_bi = min(len(pairs), draw(st.integers(0, max_bidirected)))
    bidirected = rng.sample(pairs, n_bi)
    latent = sorted(v for v in names if v.startswith("L"))
    return CausalGraph(
        observed=tuple(observed), latent=tuple(latent), directed=tuple(directed), bidirected=tuple(bidirected)
    )


@st.composite
def queries(draw, graphs=None, max_treatments=2, max_outcomes=2):
    """(graph, treatment tuple, outcome tuple) with disjoint observed names.

    Mostly the outcomes come late in a topological order and the treatments before
    them, which is where adjustment questions are interesting; sometimes anywhere.
    """
    graph = draw(graphs if graphs is not None else causal_graphs())
    obs = list(graph.topological_order(graph.observed))
    k = draw(st.integers(1, min(max_outcomes, len(obs) - 1)))
    if draw(st.integers(0, 3)):
        ys = draw(st.lists(st.sampled_from(obs[len(obs) // 2 :]), min_size=k, max_size=k, unique=True))
        first_y = min(obs.index(y) for y in ys)
        pool = [v for v in obs[first_y // 3 : first_y] if v not in ys] or [v for v in obs if v not in ys]
    else:
        ys = draw(st.lists(st.sampled_from(obs), min_size=k, max_size=k, unique=True))
        pool = [v for v in obs if v not in ys]
    xs = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=min(max_treatments, len(pool)), unique=True))
    return graph, tuple(xs), tuple(ys)


class FrontdoorOracle:
    """Pearl's front-door criterion (2009, def. 3.3.3) for sets, path by path."""

    def __init__(self, graph: CausalGraph, xs, ys):
        self.o = Oracle(graph)
        self.xs, self.ys = frozenset(xs), frozenset(ys)
        self.candidates = frozenset(graph.observed) - self.xs - self.ys
        self._directed = [set(p) for x in self.xs for y in self.ys for p in nx.all_simple_paths(self.o.dag, x, y)]
        cut_x = self.o.without_edges([(a, b) for a, b in self.o.dag.edges if a in self.xs])
        self._no_backdoor = {m for m in self.candidates if cut_x.separated(self.xs, [m], frozenset())}

    def holds(self, m) -> bool:
        m = frozenset(m)
        if not m or not m <= self.candidates or not self._directed:
            return False
        if not all(p & m for p in self._directed):  # (i)
            return False
        if not m <= self._no_backdoor:  # (ii)
            return False
        cut_m = self.o.without_edges([(a, b) for a, b in self.o.dag.edges if a in m])
        return cut_m.separated(m, self.ys, self.xs)  # (iii)

    @cached_property
    def sets(self) -> list[frozenset]:
        return [m for m in subsets(self.candidates) if self.holds(m)]

    def minimal_sets(self) -> set[frozenset]:
        return {m for m in self.sets if not any(w < m for w in self.sets)}


@st.composite
def frontdoor_queries(draw, max_extra=5):
    """A front-door skeleton (X -> mediators -> Y, X and Y confounded) plus random noise.

    Random graphs rarely have a front-door set; these often do, and the noise edges
    sometimes break it in the ways the criterion is about.
    """
    rng = draw(st.randoms(use_true_random=False))
    k = draw(st.integers(1, 3))
    extra = draw(st.integers(0, max_extra))
    meds = [f"M{i}" for i in range(k)]
    others = [f"W{i}" for i in range(extra)]
    order = ["X"] + meds + ["Y"]
    for w in others:  # extra nodes anywhere in the order
        order.insert(rng.randrange(len(order) + 1), w)
    pos = {v: i for i, v in enumerate(order)}
    directed = {("X", meds[0])} | {(m, "Y") for m in meds[-1:]}
    for a, b in zip(meds, meds[1:]):
        directed.add((a, b) if rng.random() < 0.5 else ("X", b))
        if rng.random() < 0.5:
            directed.add((a, "Y"))
    p = rng.uniform(0.05, 0.3)
    directed |= {(a, b) for a in order for b in order if pos[a] < pos[b] and rng.random() < p}
    if rng.random() < 0.85:
        directed.discard(("X", "Y"))
    latent, bidirected = (), [("X", "Y")]
    if rng.random() < 0.4:
        latent, bidirected = ("U",), []
        directed |= {("U", "X"), ("U", "Y")}
    if rng.random() < 0.5:
        pairs = list(combinations(sorted(set(order)), 2))
        bidirected.append(rng.choice(pairs))
    graph = CausalGraph(observed=tuple(sorted(order)), latent=latent, directed=tuple(directed),
                        bidirected=tuple(bidirected))
    return graph, ("X",), ("Y",)


class InstrumentOracle:
    """Conditional instruments by paths: (Z ∪ W) ∩ forb = ∅, Z and X d-connected given W
    in G, Z and Y d-separated given W once the first edges of the causal paths from X are
    removed (van der Zander, Textor & Liśkiewicz 2015; Henckel et al. 2024)."""

    def __init__(self, graph: CausalGraph, x: str, ys):
        self.o = Oracle(graph)
        self.x, self.ys = x, frozenset(ys)
        self.forb = self.o.forbidden({x}, self.ys)
        self.cn = self.o.cn({x}, self.ys)
        self.cut = self.o.without_edges([(x, c) for c in self.cn if self.o.dag.has_edge(x, c)])
        self.allowed = frozenset(graph.observed) - self.forb - self.ys
        self._sigs: dict[str, tuple] = {}

    def _signatures(self, z: str):
        if z not in self._sigs:
            to_x = list(islice(self.o.paths(z, self.x), MAX_PATHS + 1))
            to_y = [p for y in sorted(self.ys) for p in islice(self.cut.paths(z, y), MAX_PATHS + 1)]
            if len(to_x) > MAX_PATHS or len(to_y) > MAX_PATHS:
                reject()  # a rare dense draw; brute force would take minutes
            self._sigs[z] = ({self.o.signature(p) for p in to_x}, {self.cut.signature(p) for p in to_y})
        return self._sigs[z]

    def holds(self, z: str, w) -> bool:
        w = frozenset(w)
        if z not in self.allowed or not w <= self.allowed - {z}:
            return False
        to_x, to_y = self._signatures(z)
        return open_given(to_x, w) and not open_given(to_y, w)

    def conditionings(self, z: str) -> list[frozenset]:
        return [w for w in subsets(self.allowed - {z}) if self.holds(z, w)]

