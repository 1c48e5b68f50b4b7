"""Instrumental variables, unconditional and conditional, for a single treatment.

Z is an instrument for the effect of X on Y given the conditioning set W when (van der
Zander, Textor & Liśkiewicz 2015, "Efficiently finding conditional instruments for
causal inference", IJCAI, def. 3 — generalising Brito & Pearl 2002 from one edge to the
total effect — with the forbidden set of Henckel, Buttenschoen & Maathuis 2024,
"Graphical tools for selecting conditional instrumental sets", *Bernoulli* 30(4), whose
criterion is sound and complete):

1. Z ∪ W contains no forbidden node: no descendant of a node on a causal path from X to
   Y (in particular no descendant of Y), and not X;
2. Z and X are d-connected given W in G (relevance);
3. Z and Y are d-separated given W in G with the first edges of the causal paths from X
   removed, the proper back-door graph (exclusion and unconfoundedness).

For a linear model the IV estimand Cov(Y, Z | W) / Cov(X, Z | W) then equals the total
effect; nonparametrically an instrument does not identify P(y | do(x)). Everything runs
on the canonical DAG, so latent nodes and bidirected edges are handled alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

from causal_core.errors import GraphError
from causal_core.graph.causal_graph import CausalGraph, as_names
from causal_core.graph.bitdag import BitDag
from causal_core.graph.separators import EffectStructure, checked_query, d_separated, known_names

Names = str | Sequence[str]


@dataclass(frozen=True)
class Instrument:
    """Instruments Z and the conditioning set W they need (empty when unconditional)."""

    instruments: tuple[str, ...]
    conditioning: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        z, w = tuple(sorted(set(self.instruments))), tuple(sorted(set(self.conditioning)))
        if not z:
            raise GraphError("an Instrument needs at least one instrumental variable")
        if set(z) & set(w):
            raise GraphError(f"variables {sorted(set(z) & set(w))} are both instrument and conditioning variable")
        object.__setattr__(self, "instruments", z)
        object.__setattr__(self, "conditioning", w)

    @property
    def conditional(self) -> bool:
        return bool(self.conditioning)

    def __str__(self) -> str:
        z = ", ".join(self.instruments)
        return f"{z} | {', '.join(self.conditioning)}" if self.conditioning else z

    def to_dict(self) -> dict:
        return {"instruments": list(self.instruments), "conditioning": list(self.conditioning)}

    @classmethod
    def from_dict(cls, data: dict) -> Instrument:
        return cls(tuple(data["instruments"]), tuple(data.get("conditioning", ())))


def _single(graph: CausalGraph, treatment: Names, outcome: Names) -> EffectStructure:
    xs = as_names(treatment, "treatment")
    if len(xs) != 1:
        raise GraphError(
            f"instrumental variables need exactly one treatment, got {len(xs)} ({', '.join(xs)})"
        )
    return checked_query(graph, xs, outcome)


def _allowed(s: EffectStructure) -> frozenset[str]:
    return s.observed - s.forbidden - s.ys


def _relevant(s: EffectStructure, z: Iterable[str], w: Iterable[str]) -> bool:
    return not d_separated(s.dag, z, s.xs, w)


def is_instrument(
    graph: CausalGraph,
    treatment: Names,
    outcome: Names,
    instruments: Iterable[str] | str,
    conditioning: Iterable[str] | str = (),
) -> bool:
    """Whether Z is a (conditional) instrument for X -> Y given W; see the module docstring.

    One treatment only (a :class:`GraphError` otherwise). Sets naming a latent variable,
    the treatment or an outcome, or overlapping each other, are not instruments.
    """
    s = _single(graph, treatment, outcome)
    z = known_names(graph, instruments, "instruments")
    w = known_names(graph, conditioning, "conditioning set")
    allowed = _allowed(s)
    if not z or z & w or not (z | w) <= allowed:
        return False
    return _relevant(s, z, w) and d_separated(s.pbd, z, s.ys, w)


def find_instruments(
    graph: CausalGraph, treatment: Names, outcome: Names, *, include: Iterable[str] = (), cap: int = 16
) -> tuple[Instrument, ...]:
    """Single-variable instruments: the unconditional ones first, then the conditional ones.

    For each candidate Z the conditioning set is the separator of Y and Z in the proper
    back-door graph nearest to Y among the allowed observed variables (an *ancestral*
    instrument, van der Zander et al. 2015, section 4): if Z is an instrument given some
    W ⊆ An(Y ∪ Z), it is one given that set, and if any conditional instrument exists
    one is found this way (Henckel et al. 2024), so the search is polynomial. The set is
    then cut down to a minimal separator when relevance survives. An instrument that
    needs a non-ancestral conditioning set (say, a descendant of a collider) may be
    missed. At most ``cap`` instruments, each group sorted by name.

    ``include`` variables are in every conditioning set (so no instrument is
    unconditional and none of them is an instrument): they are conditioned on in the
    moral graph of An(Y ∪ Z ∪ include), the separator nearest to Y is taken there, and
    every instrument returned is checked against the definition; the completeness
    results above are for the unconstrained search only.
    """
    if cap < 1:
        raise GraphError(f"cap must be a positive number of instruments, got {cap}")
    s = _single(graph, treatment, outcome)
    inc = known_names(graph, include, "include")
    if not inc <= _allowed(s):
        bad = sorted(inc - _allowed(s))
        raise GraphError(
            f"include names {bad}: a conditioning set may hold only observed variables that are not the treatment, "
            "an outcome or a descendant of a node on a causal path"
        )
    order = tuple(nx.lexicographical_topological_sort(s.dag, key=str))
    g, pbd = BitDag(s.dag, s.observed, order), BitDag(s.pbd, s.observed, order)
    allowed, forced = g.mask(_allowed(s)), g.mask(inc)
    x, ys = g.mask(s.xs), g.mask(s.ys)
    an_y, an_x = pbd.ancestors_of(ys | forced), g.ancestors_of(x)

    def relevant(z: int, w: int) -> bool:  # Z and X d-connected given W in G
        within = g.ancestors_of(z | x | w)
        return bool(g.component(z, w, within)[0] & x)

    candidates = sorted(g.members(allowed & ~forced), key=g.names.__getitem__)
    unconditional = set() if forced else {
        z for z in candidates if not pbd.ancestors[z] & an_y and g.ancestors[z] & an_x
    }  # no common ancestor with Y (without the causal edges) but one with X
    found = [Instrument((g.names[z],)) for z in candidates if z in unconditional]
    for z in candidates:
        if len(found) >= cap:
            break
        if z in unconditional:
            continue
        bit, within = 1 << z, pbd.ancestors[z] | an_y
        near_y, w = pbd.component(ys, (within & allowed & ~bit) | forced, within)
        w |= forced
        if near_y & bit or not relevant(bit, w):
            continue
        smaller = pbd.component(bit, w, within)[1] | forced  # the part of W next to Z's side
        if smaller != w and relevant(bit, smaller):
            w = smaller
        inst = Instrument((g.names[z],), g.names_of(w))
        if forced and not is_instrument(graph, treatment, outcome, inst.instruments, inst.conditioning):
            continue
        found.append(inst)
    return tuple(found[:cap])
