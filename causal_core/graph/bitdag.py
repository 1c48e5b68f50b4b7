"""A DAG whose node sets are Python integers used as bit sets.

For searches that ask many separator questions of one graph — one per pair of variables
for the testable implications, one per candidate instrument — building networkx graphs
and Python sets per question dominates; with bit sets a 200-node graph answers
thousands of questions in a fraction of a second. Separation is checked in the moral
graph of an ancestral set (Lauritzen, Dawid, Larsen & Leimer 1990, "Independence
properties of directed Markov fields", *Networks* 20(5)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx


class BitDag:
    """A DAG with nodes numbered in a topological order and node sets held as ints.

    Bit i stands for ``names[i]``. ``order`` fixes the numbering (it must be
    topological), so that two graphs over the same nodes — G and a subgraph of it — can
    share masks.
    """

    def __init__(self, dag: nx.DiGraph, observed: Iterable[str], order: Sequence[str] | None = None) -> None:
        if order is None:
            order = tuple(nx.lexicographical_topological_sort(dag, key=str))
        self.names = tuple(order)
        self.index = {v: i for i, v in enumerate(self.names)}
        n = len(self.names)
        self.parents = [0] * n
        children: list[list[int]] = [[] for _ in range(n)]
        for a, b in dag.edges:
            self.parents[self.index[b]] |= 1 << self.index[a]
            children[self.index[a]].append(self.index[b])
        # for each child c of u: c and its parents, u's moral neighbours when c is present
        self.families = [tuple((c, self.parents[c] | 1 << c) for c in cs) for cs in children]
        self.child_mask = [sum(1 << c for c in cs) for cs in children]
        self.moral = list(self.parents)
        for u, fam in enumerate(self.families):
            for _, family in fam:
                self.moral[u] |= family
        self.ancestors = [0] * n
        for i in range(n):  # parents come first in the order
            mask, ps = 1 << i, self.parents[i]
            while ps:
                low = ps & -ps
                mask |= self.ancestors[low.bit_length() - 1]
                ps ^= low
            self.ancestors[i] = mask
        self.observed = self.mask(observed)

    def moral_neighbours(self, u: int, within: int) -> int:
        """Neighbours of u in the moral graph of the ancestral set ``within``."""
        if not self.child_mask[u] & ~within:
            return self.moral[u] & ~(1 << u)
        nb = self.parents[u]
        for c, family in self.families[u]:
            if within >> c & 1:
                nb |= family
        return nb & within & ~(1 << u)

    def component(self, start: int, blocked: int, within: int, enough: int = -1) -> tuple[int, int]:
        """(the component of the ``start`` nodes (a mask) avoiding ``blocked`` in the moral
        graph of ``within``, the blocked nodes it touches).

        Stops early once every node of ``enough`` has been touched.
        """
        seen, touched, stack = start, 0, self.members(start)
        moral, child_mask, outside = self.moral, self.child_mask, ~within
        while stack:
            u = stack.pop()
            # inlined moral_neighbours (the hot loop); u itself is already in ``seen``
            nb = self.moral_neighbours(u, within) if child_mask[u] & outside else moral[u]
            touched |= nb & blocked
            if touched == enough:
                break
            new = nb & ~blocked & ~seen
            seen |= new
            while new:
                low = new & -new
                stack.append(low.bit_length() - 1)
                new ^= low
        return seen, touched

    def separator(self, v: int, w: int) -> int | None:
        """A minimal observed separator of v and w (v not an ancestor of w), or None."""
        if not self.ancestors[v] & self.ancestors[w]:
            return 0  # no common ancestor: marginally independent
        within = self.ancestors[v] | self.ancestors[w]
        if self.parents[v] & ~self.observed:
            candidates = within & self.observed & ~(1 << v) & ~(1 << w)
            near_v, s1 = self.component(1 << v, candidates, within)
            if near_v >> w & 1:
                return None
        else:
            s1 = self.parents[v]  # v has no children in An({v, w}): its moral neighbours
        if s1 & (s1 - 1) == 0:
            return s1  # one node, and the empty set does not separate
        return self.component(1 << w, s1, within, enough=s1)[1]

    def descendants(self) -> list[int]:
        out = [1 << i for i in range(len(self.names))]
        for i in reversed(range(len(self.names))):
            for c, _ in self.families[i]:
                out[i] |= out[c]
        return out

    @staticmethod
    def members(mask: int) -> list[int]:
        out = []
        while mask:
            low = mask & -mask
            out.append(low.bit_length() - 1)
            mask ^= low
        return out

    def mask(self, names: Iterable[str]) -> int:
        return sum(1 << self.index[v] for v in set(names))

    def ancestors_of(self, mask: int) -> int:
        out = 0
        for i in self.members(mask):
            out |= self.ancestors[i]
        return out

    def names_of(self, mask: int) -> tuple[str, ...]:
        return tuple(self.names[i] for i in self.members(mask))
