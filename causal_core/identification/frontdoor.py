"""Front-door adjustment sets.

A set M of observed mediators satisfies the front-door criterion relative to (X, Y)
(Pearl 2009, *Causality*, def. 3.3.3; for sets as in Jeong, Tian & Bareinboim 2022,
"Finding and listing front-door adjustment sets", NeurIPS, def. 1) when

(i)   M intercepts every directed path from X to Y;
(ii)  there is no unblocked back-door path from X to M: X ⊥ M in G with the edges out of
      X removed;
(iii) every back-door path from M to Y is blocked by X: M ⊥ Y | X in G with the edges
      out of M removed.

Then P(y | do(x)) = Σ_m P(m | x) Σ_x' P(y | x', m) P(x'). The checks run on the
canonical DAG, so latent nodes and bidirected edges are handled alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.separators import EffectStructure, ancestors, checked_query, descendants, known_names, reachable

Names = str | Sequence[str]

#: Every subset of the candidates is tried (an exact listing) when there are at most
#: EXACT_LIMIT of them and 2**candidates * nodes stays under EXACT_WORK.
EXACT_LIMIT = 10
EXACT_WORK = 60_000
#: Otherwise at most this many small candidate sets are checked (plus one greedy descent).
SEARCH_BUDGET = 300


def _intercepts(s: EffectStructure, m: frozenset[str]) -> bool:
    """(i): no directed path from X to Y avoids M."""
    seen = set(s.xs)
    stack = list(seen)
    while stack:
        for c in s.dag.successors(stack.pop()):
            if c in s.ys:
                return False
            if c not in seen and c not in m:
                seen.add(c)
                stack.append(c)
    return True


def _no_backdoor_from_x(s: EffectStructure) -> frozenset[str]:
    """Observed nodes satisfying (ii): not d-connected to X given ∅ once X's out-edges go."""
    bad = reachable(s.dag, s.xs, (), cut_out=s.xs)
    return frozenset(s.observed - bad - s.xs - s.ys)


def _backdoor_to_y(s: EffectStructure, m: frozenset[str]) -> frozenset[str]:
    """The members of M that break (iii): d-connected to Y given X without M's out-edges."""
    return frozenset(m & reachable(s.dag, s.ys, s.xs, cut_out=m))


def _holds(s: EffectStructure, m: frozenset[str]) -> bool:
    """(i) and (iii) for a subset of the (ii)-admissible nodes."""
    return bool(m) and _intercepts(s, m) and not _backdoor_to_y(s, m)


def is_frontdoor_set(graph: CausalGraph, treatment: Names, outcome: Names, mediators: Iterable[str] | str) -> bool:
    """Whether the observed set M satisfies the front-door criterion relative to (X, Y).

    Pearl (2009), def. 3.3.3, with the graphical conditions (ii) and (iii) of Jeong et al.
    (2022), def. 1. There must be a causal path from X to Y for M to intercept: the
    empty set, or any set when X does not cause Y, would only say that the effect is nil,
    so neither counts. A set naming a latent node, a treatment or an outcome is not one.
    """
    s = checked_query(graph, treatment, outcome)
    m = known_names(graph, mediators, "front-door set")
    if not s.cn & s.ys or not m or not m <= s.observed or m & (s.xs | s.ys):
        return False
    if not m <= _no_backdoor_from_x(s):
        return False
    return _holds(s, m)


def maximal_frontdoor_set(graph: CausalGraph, treatment: Names, outcome: Names) -> tuple[str, ...] | None:
    """The largest front-door set, or ``None`` when no front-door set exists.

    Jeong et al. (2022), algorithm FindFDSet: start from the nodes meeting (ii), drop
    those with an open back-door path to Y given X in G with the current set's out-edges
    removed until none is left, then check (i). The drops are forced — removing edges
    only closes paths — so the fixpoint contains every set meeting (ii) and (iii), and
    any front-door set exists exactly when it intercepts X → Y.
    """
    s = checked_query(graph, treatment, outcome)
    m = _maximal(s)
    return None if m is None else tuple(sorted(m))


def _maximal(s: EffectStructure) -> frozenset[str] | None:
    if not s.cn & s.ys:
        return None
    m = _no_backdoor_from_x(s)
    while True:
        bad = _backdoor_to_y(s, m)
        if not bad:
            break
        m -= bad
    return m if m and _intercepts(s, m) else None


def frontdoor_sets(
    graph: CausalGraph, treatment: Names, outcome: Names, *, cap: int = 16
) -> tuple[tuple[str, ...], ...]:
    """Front-door sets, smallest first, at most ``cap``.

    Every front-door set lies in the maximal one (see :func:`maximal_frontdoor_set`), and
    cutting a front-door set down to the ancestors of Y keeps it one, so the candidates
    are the maximal set's ancestors of Y. With few candidates (``EXACT_LIMIT``,
    ``EXACT_WORK``) every subset is tried and the result is the complete list of
    inclusion-minimal front-door sets (up to ``cap``). With more, single mediators and
    pairs of mediators on causal paths are tried (up to ``SEARCH_BUDGET`` checks)
    together with a greedy descent from the candidate set: the sets returned are valid,
    one is found whenever any exists, but the list may be incomplete.
    """
    if cap < 1:
        raise GraphError(f"cap must be a positive number of sets, got {cap}")
    s = checked_query(graph, treatment, outcome)
    top = _maximal(s)
    if top is None:
        return ()
    rank = {v: i for i, v in enumerate(graph.topological_order())}
    candidates = sorted(top & ancestors(s.dag, s.ys), key=rank.__getitem__)
    if len(candidates) <= EXACT_LIMIT and (1 << len(candidates)) * len(s.dag) <= EXACT_WORK:
        found = _exact(s, candidates, cap)
    else:
        found = _heuristic(s, candidates, cap)
    return tuple(sorted((tuple(sorted(m)) for m in found), key=lambda t: (len(t), t)))[:cap]


def _exact(s: EffectStructure, candidates: list[str], cap: int) -> list[frozenset[str]]:
    found: list[frozenset[str]] = []
    for k in range(1, len(candidates) + 1):
        for combo in combinations(candidates, k):
            m = frozenset(combo)
            if any(f < m for f in found):
                continue
            if _holds(s, m):
                found.append(m)
                if len(found) == cap:
                    return found
    return found


def _heuristic(s: EffectStructure, candidates: list[str], cap: int) -> list[frozenset[str]]:
    below_x = descendants(s.dag, s.xs)
    mediators = [v for v in candidates if v in below_x]
    found: list[frozenset[str]] = []
    budget = SEARCH_BUDGET
    for k in (1, 2):
        for combo in combinations(mediators, k):
            m = frozenset(combo)
            if budget <= 0 or len(found) >= cap:
                break
            if any(f < m for f in found):
                continue
            budget -= 1
            if _intercepts(s, m) and not _backdoor_to_y(s, m):
                found.append(m)
    greedy = frozenset(candidates)
    for v in reversed(candidates):  # later nodes first: keep the mediators near X
        smaller = greedy - {v}
        if _holds(s, smaller):
            greedy = smaller
    if not any(f <= greedy for f in found):
        found.append(greedy)
    return [m for m in found if not any(f < m for f in found)]
