"""Separator machinery shared by the adjustment, front-door and instrument searches.

Everything here works on a DAG given as a networkx ``DiGraph`` — in whybatch the
*canonical DAG* of a :class:`~causal_core.graph.causal_graph.CausalGraph`, where explicit latent nodes
and the latent parents of bidirected edges carry ``latent=True``. m-separation in an ADMG
is d-separation in that DAG, and every set searched for here is restricted to observed
nodes.

References
----------
* B. van der Zander, M. Liśkiewicz, J. Textor (2019). Separators and adjustment sets in
  causal graphs: complete criteria and an algorithmic framework. *Artificial
  Intelligence* 270, 1-40. (The proper back-door graph, section 3; listing minimal
  separators with polynomial delay, section 4, after K. Takata (2010), *Discrete
  Applied Mathematics* 158, 1660-1667.)
* J. Tian, A. Paz, J. Pearl (1998). Finding minimal d-separators. Technical report
  R-254, UCLA. (A minimal separator containing I lies in An(X ∪ Y ∪ I); separation there
  is vertex separation in the moral graph of Lauritzen et al. 1990.)
* E. Perković, J. Textor, M. Kalisch, M. Maathuis (2018). Complete graphical
  characterization and construction of adjustment sets in Markov equivalence classes of
  ancestral graphs. *JMLR* 18(220). (Proper causal paths, the forbidden set.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import networkx as nx

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph, as_names

Adjacency = dict[str, set[str]]


def observed_nodes(dag: nx.DiGraph) -> frozenset[str]:
    return frozenset(n for n, latent in dag.nodes(data="latent", default=False) if not latent)


def ancestors(dag: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    """Ancestors of ``nodes`` in ``dag``, the nodes themselves included."""
    seen = set(nodes)
    stack = list(seen)
    while stack:
        for p in dag.predecessors(stack.pop()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    return seen


def descendants(dag: nx.DiGraph, nodes: Iterable[str]) -> set[str]:
    """Descendants of ``nodes`` in ``dag``, the nodes themselves included."""
    seen = set(nodes)
    stack = list(seen)
    while stack:
        for c in dag.successors(stack.pop()):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def proper_causal_nodes(dag: nx.DiGraph, xs: frozenset[str], ys: frozenset[str]) -> frozenset[str]:
    """cn(X, Y): the nodes other than X on proper causal paths from X to Y.

    A causal path is proper when only its first node is in X; the nodes on such paths are
    De(X) in the graph without edges into X, less X, intersected with An(Y) in the graph
    without edges out of X (van der Zander et al. 2019, section 3; Perković et al. 2018).
    """
    down: set[str] = set()
    stack = [c for x in xs for c in dag.successors(x) if c not in xs]
    while stack:
        v = stack.pop()
        if v not in down:
            down.add(v)
            stack.extend(c for c in dag.successors(v) if c not in xs and c not in down)
    up: set[str] = set()
    stack = list(ys)
    while stack:
        v = stack.pop()
        if v not in up:
            up.add(v)
            stack.extend(p for p in dag.predecessors(v) if p not in xs and p not in up)
    return frozenset(down & up)


@dataclass(frozen=True)
class EffectStructure:
    """The graph facts every search for one (X, Y) query needs, computed once.

    ``pbd`` is the proper back-door graph: the canonical DAG without the first edge of
    every proper causal path from X to Y. Treat it as read-only.
    """

    dag: nx.DiGraph
    observed: frozenset[str]
    xs: frozenset[str]
    ys: frozenset[str]
    cn: frozenset[str]
    forbidden: frozenset[str]
    pbd: nx.DiGraph


def checked_query(graph: CausalGraph, treatment: str | Sequence[str], outcome: str | Sequence[str]) -> EffectStructure:
    """The :class:`EffectStructure` of a query, after checking its names (GraphError)."""
    xs = as_names(treatment, "treatment")
    ys = as_names(outcome, "outcome")
    graph.check_query(xs, ys)
    return effect_structure(graph, tuple(sorted(xs)), tuple(sorted(ys)))


def known_names(graph: CausalGraph, value: Iterable[str] | str, what: str) -> frozenset[str]:
    """A name or names as a set; a name that is not a node of ``graph`` is a GraphError."""
    names = frozenset([value] if isinstance(value, str) else value)
    unknown = sorted(n for n in names if n not in graph.observed and n not in graph.latent)
    if unknown:
        raise GraphError(f"{what} names unknown variables {unknown} (nodes: {', '.join(graph.observed)})")
    return names


@lru_cache(maxsize=64)
def effect_structure(graph: CausalGraph, xs: tuple[str, ...], ys: tuple[str, ...]) -> EffectStructure:
    """cn, forb = De(cn) ∪ X and the proper back-door graph for a checked query."""
    dag = graph.canonical_dag()
    x, y = frozenset(xs), frozenset(ys)
    cn = proper_causal_nodes(dag, x, y)
    forb = frozenset(descendants(dag, cn) | x)
    pbd = dag.copy()
    pbd.remove_edges_from([(a, c) for a in x for c in dag.successors(a) if c in cn])
    return EffectStructure(dag, observed_nodes(dag), x, y, cn, forb, pbd)


def d_separated(dag: nx.DiGraph, xs: Iterable[str], ys: Iterable[str], zs: Iterable[str] = ()) -> bool:
    return nx.is_d_separator(dag, set(xs), set(ys), set(zs))


def reachable(
    dag: nx.DiGraph, sources: Iterable[str], given: Iterable[str] = (), cut_out: Iterable[str] = ()
) -> set[str]:
    """Nodes d-connected to some source given ``given`` (Bayes-ball; Shachter 1998).

    Edges out of the ``cut_out`` nodes are ignored, so that d-separation in G with the
    edges out of a set removed needs no copy of the graph. The sources are included.
    """
    given, cut = set(given), set(cut_out)

    def parents(v: str) -> list[str]:
        return [p for p in dag.predecessors(v) if p not in cut]

    def children(v: str) -> Iterable[str]:
        return () if v in cut else dag.successors(v)

    an_given, stack = set(given), list(given)
    while stack:
        for p in parents(stack.pop()):
            if p not in an_given:
                an_given.add(p)
                stack.append(p)
    seen = {(v, "up") for v in sources}
    stack = list(seen)
    while stack:
        v, came = stack.pop()
        steps: list[tuple[str, str]] = []
        if v not in given:
            steps += [(c, "down") for c in children(v)]
            if came == "up":
                steps += [(p, "up") for p in parents(v)]
        if came == "down" and v in an_given:
            steps += [(p, "up") for p in parents(v)]
        for st in steps:
            if st not in seen:
                seen.add(st)
                stack.append(st)
    return {v for v, _ in seen}


# ---------------------------------------------------------------- moral graphs
def moral_graph(dag: nx.DiGraph, nodes: Iterable[str]) -> Adjacency:
    """The moral graph of the subgraph induced by an ancestral set ``nodes``."""
    adj: Adjacency = {v: set() for v in nodes}
    for v in adj:
        ps = [p for p in dag.predecessors(v) if p in adj]
        for i, p in enumerate(ps):
            adj[v].add(p)
            adj[p].add(v)
            for q in ps[i + 1 :]:
                adj[p].add(q)
                adj[q].add(p)
    return adj


def component(adj: Adjacency, start: Iterable[str], blocked: set[str] | frozenset[str]) -> set[str]:
    """Nodes reachable from ``start`` without entering ``blocked``."""
    seen = set(start)
    stack = list(seen)
    while stack:
        for w in adj[stack.pop()]:
            if w not in seen and w not in blocked:
                seen.add(w)
                stack.append(w)
    return seen


def boundary(adj: Adjacency, part: set[str]) -> set[str]:
    return {w for v in part for w in adj[v] if w not in part}


# ---------------------------------------------------------------- listing minimal separators
_SRC, _TGT = "\x00source", "\x00target"


def list_minimal_separators(
    dag: nx.DiGraph,
    xs: Iterable[str],
    ys: Iterable[str],
    restricted: Iterable[str],
    included: Iterable[str] = (),
    cap: int = 64,
) -> tuple[list[frozenset[str]], bool]:
    """All separators I ⊆ Z ⊆ R ∪ I of X and Y that are minimal over Z \\ I.

    Returns at most ``cap`` sets and whether more exist. Van der Zander et al. (2019,
    ListMinSep) after Takata (2010): the minimal separators lie in An(X ∪ Y ∪ I), where
    they are the minimal vertex separators of the moral graph; they are enumerated by
    branching on whether a node of the separator nearest to X joins X's side. Every
    branch taken holds a solution, so the delay between outputs is polynomial
    (O(n (n + m))).
    """
    x, y, inc = set(xs), set(ys), set(included)
    anc = ancestors(dag, x | y | inc)
    moral = moral_graph(dag, anc)
    allowed = (anc & set(restricted)) - x - y - inc
    adj = _contract(moral, x, y, inc)
    first = _close(adj, {_SRC}, allowed)
    found: list[frozenset[str]] = []
    if first is None:
        return found, False
    stack = [(first[0], first[1], frozenset())]
    while stack:
        sep, side, out = stack.pop()
        open_nodes = sorted(sep - out)
        if not open_nodes:
            if len(found) == cap:
                return found, True
            found.append(frozenset(sep | inc))
            continue
        v = open_nodes[0]
        stack.append((sep, side, out | {v}))  # v stays off X's side
        grown = _close(adj, side | {v}, allowed)
        if grown is not None and not (grown[1] & out):
            stack.append((grown[0], grown[1], out))  # v joins X's side
    return found, False


def _contract(moral: Adjacency, x: set[str], y: set[str], removed: set[str]) -> Adjacency:
    """Merge X into one source and Y into one target node; drop the ``removed`` nodes."""
    gone = x | y | removed
    adj: Adjacency = {_SRC: set(), _TGT: set()}
    for v, nbrs in moral.items():
        if v in gone:
            continue
        adj[v] = nbrs - gone
        if nbrs & x:
            adj[v].add(_SRC)
            adj[_SRC].add(v)
        if nbrs & y:
            adj[v].add(_TGT)
            adj[_TGT].add(v)
    if any(moral[a] & y for a in x):
        adj[_SRC].add(_TGT)
        adj[_TGT].add(_SRC)
    return adj


def _close(adj: Adjacency, side: set[str], allowed: set[str]) -> tuple[frozenset[str], frozenset[str]] | None:
    """The minimal separator closest to ``side`` (which must stay on the source's side).

    Nodes that may not be separators are pulled into the side; the separator is then the
    part of the side's boundary adjacent to the target's component. Returns the separator
    and the source's full component, or ``None`` when the side reaches the target.
    """
    grown = set(side)
    stack = list(grown)
    while stack:
        for w in adj[stack.pop()]:
            if w not in grown and w not in allowed:
                grown.add(w)
                stack.append(w)
    if _TGT in grown:
        return None
    target_side = component(adj, [_TGT], boundary(adj, grown))
    sep = boundary(adj, target_side)
    return frozenset(sep), frozenset(component(adj, grown, sep))


# ---------------------------------------------------------------- witness paths
def connecting_path(dag: nx.DiGraph, xs: Iterable[str], ys: Iterable[str], zs: Iterable[str]) -> list[str] | None:
    """A shortest path from X to Y that is d-connecting given Z, as a list of nodes.

    Breadth-first search over (node, direction) states (the Bayes-ball rules, colliders
    open when in An(Z)); a repeated node is cut out of the walk, which keeps it
    d-connecting. Only the first node is in X and only the last in Y.
    """
    x, y, z = set(xs), set(ys), set(zs)
    an_z = ancestors(dag, z)
    start = [(v, "up") for v in sorted(x)]
    prev: dict[tuple[str, str], tuple[str, str] | None] = {s: None for s in start}
    queue = deque(start)
    end = None
    while queue:
        state = queue.popleft()
        v, came = state
        if v in y and prev[state] is not None:
            end = state
            break
        steps = []
        if came == "up" and v not in z:
            steps = [(p, "up") for p in dag.predecessors(v)] + [(c, "down") for c in dag.successors(v)]
        elif came == "down":
            if v not in z:
                steps += [(c, "down") for c in dag.successors(v)]
            if v in an_z:
                steps += [(p, "up") for p in dag.predecessors(v)]
        for nxt in sorted(steps):
            if nxt not in prev:
                prev[nxt] = state
                queue.append(nxt)
    if end is None:
        return None
    walk = []
    while end is not None:
        walk.append(end[0])
        end = prev[end]
    walk.reverse()
    first_y = next(i for i, v in enumerate(walk) if v in y and i > 0)
    walk = walk[: first_y + 1]
    last_x = max(i for i, v in enumerate(walk) if v in x)
    return _shortcut(walk[last_x:])


def _shortcut(walk: list[str]) -> list[str]:
    while True:
        seen: dict[str, int] = {}
        for i, v in enumerate(walk):
            if v in seen:
                walk = walk[: seen[v]] + walk[i:]
                break
            seen[v] = i
        else:
            return walk


def format_path(dag: nx.DiGraph, path: list[str]) -> str:
    """``X <- A -> Y``; the latent parent of a bidirected edge prints as ``a <-> b``."""
    out = path[0]
    i = 1
    while i < len(path):
        v = path[i]
        if dag.nodes[v].get("latent") and v.startswith("U[") and i + 1 < len(path) and dag.has_edge(v, path[i - 1]):
            out += f" <-> {path[i + 1]}"
            i += 2
            continue
        out += f" -> {v}" if dag.has_edge(path[i - 1], v) else f" <- {v}"
        i += 1
    return out
