"""Random discrete structural causal models for a CausalGraph, solved exactly.

Every bidirected edge a <-> b becomes an explicit latent parent of a and b, and the
graph's own latent nodes stay latent. Each variable gets 2 or 3 levels and a conditional
probability table drawn from a Dirichlet distribution (strictly positive, so the model
is positive as the ID algorithm assumes). Distributions are computed by exact tensor
contraction (numpy.einsum), never by sampling:

* the observed joint P(v), as a DataFrame with one column per observed variable and ``p``;
* P(y | do(x)) for every value x by the truncated factorisation (Pearl 2009, eq. 3.10):
  drop the tables of X and keep their values as free indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from causal_core.graph.causal_graph import CausalGraph

MAX_TABLE = 2**23  # entries of the largest intermediate table (64 MiB of float64)


class TooLarge(Exception):
    """The latent structure is too dense to solve the model exactly in memory."""


@dataclass(frozen=True)
class DiscreteSCM:
    observed: tuple[str, ...]
    nodes: tuple[str, ...]  # topological order, latents included
    parents: dict[str, tuple[str, ...]]
    cards: dict[str, int]
    tables: dict[str, np.ndarray]  # axes: parents (in order), then the node itself

    def _contract(self, drop: Sequence[str], keep: Sequence[str]) -> np.ndarray:
        """Σ over every node not in ``keep`` of the product of the tables not in ``drop``.

        Variable elimination, each step summing out the variable whose elimination makes
        the smallest table (a plain many-operand einsum can blow up on dense latent
        structure). The order is planned first; a plan needing a table of more than
        ``MAX_TABLE`` entries raises :class:`TooLarge` before any memory is spent.
        """
        factors: list[tuple[np.ndarray, tuple[str, ...]]] = [
            (self.tables[n], self.parents[n] + (n,)) for n in self.nodes if n not in drop
        ]
        factors += [(np.ones(self.cards[n]), (n,)) for n in keep]
        for var, out in self._plan([axes for _, axes in factors], keep):
            used = [f for f in factors if var in f[1]]
            factors = [f for f in factors if var not in f[1]]
            factors.append((_einsum(used, out), out))
        return _einsum(factors, tuple(keep))

    def _plan(self, scopes: list[tuple[str, ...]], keep: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        scopes = list(scopes)
        eliminate = {a for axes in scopes for a in axes} - set(keep)

        def merged(var: str) -> tuple[str, ...]:
            axes: dict[str, None] = {}
            for f_axes in scopes:
                if var in f_axes:
                    axes.update(dict.fromkeys(f_axes))
            return tuple(a for a in axes if a != var)

        def size(axes: tuple[str, ...]) -> int:
            return int(np.prod([self.cards[a] for a in axes]))

        steps = []
        while eliminate:
            var = min(sorted(eliminate), key=lambda v: size(merged(v)))
            out = merged(var)
            if size(out) * self.cards[var] > MAX_TABLE:
                raise TooLarge(f"exact solution needs a table over {len(out) + 1} variables")
            scopes = [f for f in scopes if var not in f] + [out]
            eliminate.discard(var)
            steps.append((var, out))
        return steps

    def observed_joint(self) -> pd.DataFrame:
        """P(v) over the observed variables, one row per combination of levels."""
        return _frame(self._contract((), self.observed), self.observed)

    def interventional(self, treatment: Sequence[str], outcome: Sequence[str]) -> pd.DataFrame:
        """P(outcome | do(treatment)) for every treatment value: columns X, Y and ``p``."""
        keep = tuple(treatment) + tuple(outcome)
        return _frame(self._contract(tuple(treatment), keep), keep)


def _einsum(factors: list[tuple[np.ndarray, tuple[str, ...]]], out: tuple[str, ...]) -> np.ndarray:
    letters = {a: i for i, a in enumerate(dict.fromkeys([a for _, axes in factors for a in axes] + list(out)))}
    operands: list = []
    for array, axes in factors:
        operands += [array, [letters[a] for a in axes]]
    operands.append([letters[a] for a in out])
    return np.einsum(*operands, optimize="greedy")


def _frame(tensor: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    index = pd.MultiIndex.from_product([range(k) for k in tensor.shape], names=list(names))
    out = index.to_frame(index=False)
    out["p"] = tensor.reshape(-1)
    return out


def random_scm(graph: CausalGraph, rng: np.random.Generator, alpha: float = 1.0) -> DiscreteSCM:
    """A random positive discrete SCM whose causal diagram is ``graph``."""
    parents: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.directed:
        parents[b].append(a)
    latent_pairs = []
    for i, (a, b) in enumerate(graph.bidirected):
        u = f"_U{i}[{a},{b}]"
        parents[u] = []
        parents[a].append(u)
        parents[b].append(u)
        latent_pairs.append(u)
    # latent confounders first, then the graph's nodes in topological order
    nodes = tuple(latent_pairs) + graph.topological_order()
    cards = {n: int(rng.integers(2, 4)) for n in nodes}
    tables = {}
    for n in nodes:
        shape = tuple(cards[p] for p in parents[n])
        rows = int(np.prod(shape)) if shape else 1
        table = rng.dirichlet(np.full(cards[n], alpha), size=rows)
        tables[n] = table.reshape(shape + (cards[n],))
    return DiscreteSCM(
        observed=graph.observed,
        nodes=nodes,
        parents={n: tuple(parents[n]) for n in nodes},
        cards=cards,
        tables=tables,
    )


def random_admg(rng: np.random.Generator, n: int, p_directed: float, p_bidirected: float) -> CausalGraph:
    """A random ADMG on n nodes named A, B, ... (declaration order is a random order)."""
    names = [chr(ord("A") + i) for i in range(n)]
    order = [str(v) for v in rng.permutation(names)]
    directed, bidirected = [], []
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < p_directed:
                directed.append((order[i], order[j]))
            if rng.random() < p_bidirected:
                bidirected.append((order[i], order[j]))
    return CausalGraph(observed=tuple(names), directed=tuple(directed), bidirected=tuple(bidirected))
