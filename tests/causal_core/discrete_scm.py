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

from causal_core.graph import CausalGraph


@dataclass(frozen=True)
class DiscreteSCM:
    observed: tuple[str, ...]
    nodes: tuple[str, ...]  # topological order, latents included
    parents: dict[str, tuple[str, ...]]
    cards: dict[str, int]
    tables: dict[str, np.ndarray]  # axes: parents (in order), then the node itself

    def _contract(self, drop: Sequence[str], keep: Sequence[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.nodes)}
        operands: list = []
        for n in self.nodes:
            if n in drop:
                continue
            operands += [self.tables[n], [index[p] for p in self.parents[n]] + [index[n]]]
        for n in keep:  # make sure every kept index occurs in some operand
            operands += [np.ones(self.cards[n]), [index[n]]]
        operands.append([index[n] for n in keep])
        return np.einsum(*operands, optimize="greedy")

    def observed_joint(self) -> pd.DataFrame:
        """P(v) over the observed variables, one row per combination of levels."""
        return _frame(self._contract((), self.observed), self.observed)

    def interventional(self, treatment: Sequence[str], outcome: Sequence[str]) -> pd.DataFrame:
        """P(outcome | do(treatment)) for every treatment value: columns X, Y and ``p``."""
        keep = tuple(treatment) + tuple(outcome)
        return _frame(self._contract(tuple(treatment), keep), keep)


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
