"""Covariate adjustment sets: validity, all minimal sets, the optimal and canonical sets.

A set Z of observed variables is a valid adjustment set for the effect of X on Y when
P(y | do(x)) = Σ_z P(y | x, z) P(z). The *generalized adjustment criterion* (Shpitser,
VanderWeele & Robins 2010, UAI; Perković, Textor, Kalisch & Maathuis 2018, JMLR 18(220),
def. 3) characterises such sets completely, also with latent variables:

1. Z ∩ forb(X, Y) = ∅, where forb = De(cn) ∪ X and cn are the nodes other than X on
   proper causal paths from X to Y, and
2. Z m-separates X and Y in the *proper back-door graph*, the graph without the first
   edge of every proper causal path from X to Y (van der Zander, Liśkiewicz & Textor
   2019, AIJ 270, theorem 3.4).

The checks run on the canonical DAG of the graph (a bidirected edge becomes a latent
parent of both ends), so explicit latent nodes and bidirected edges are handled alike;
only observed variables may enter a set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from causal_core.errors import GraphError
from causal_core.graph import CausalGraph
from causal_core.separators import (
    EffectStructure,
    ancestors,
    checked_query,
    connecting_path,
    d_separated,
    format_path,
    known_names,
    list_minimal_separators,
)

Names = str | Sequence[str]


def _braces(names: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


def forbidden_set(graph: CausalGraph, treatment: Names, outcome: Names) -> tuple[str, ...]:
    """The observed variables of forb(X, Y) = De(cn(X, Y)) ∪ X, sorted.

    cn(X, Y) are the nodes other than X on proper causal paths from X to Y (Perković et
    al. 2018, def. 3.1); no valid adjustment set contains a forbidden node.
    """
    s = checked_query(graph, treatment, outcome)
    return tuple(sorted(s.forbidden & s.observed))


def is_valid_adjustment(graph: CausalGraph, treatment: Names, outcome: Names, adjustment: Iterable[str] | str) -> bool:
    """Whether Z satisfies the generalized adjustment criterion relative to (X, Y).

    Perković et al. (2018), def. 3 / Shpitser et al. (2010): Z ∩ forb(X, Y) = ∅ and Z
    m-separates X and Y in the proper back-door graph. A set naming a latent variable, a
    treatment or an outcome is not valid; an unknown name is a :class:`GraphError`.
    """
    s = checked_query(graph, treatment, outcome)
    z = known_names(graph, adjustment, "adjustment set")
    if not z <= s.observed or z & (s.xs | s.ys) or z & s.forbidden:
        return False
    return d_separated(s.pbd, s.xs, s.ys, z)


def _constraints(graph: CausalGraph, s: EffectStructure, include: Iterable[str], exclude: Iterable[str]):
    inc = known_names(graph, include, "include")
    exc = known_names(graph, exclude, "exclude")
    for n in sorted(inc):
        if n in graph.latent:
            raise GraphError(f"include names {n!r}, a latent variable; only observed variables can be adjusted for")
        if n in s.xs or n in s.ys:
            raise GraphError(f"include names {n!r}, which is a treatment or outcome, not a covariate")
        if n in s.forbidden:
            raise GraphError(
                f"include names {n!r}, which is forbidden: it is a descendant of a node on a causal path "
                f"from the treatment to the outcome (forb = {_braces(s.forbidden & s.observed)})"
            )
    both = inc & exc
    if both:
        raise GraphError(f"variables {sorted(both)} are both included and excluded")
    allowed = (s.observed - s.forbidden - s.ys) - exc
    return inc, allowed


def _minimal(s: EffectStructure, inc: frozenset[str], allowed: frozenset[str], cap: int):
    if cap < 1:
        raise GraphError(f"cap must be a positive number of sets, got {cap}")
    sets, truncated = list_minimal_separators(s.pbd, s.xs, s.ys, allowed, inc, cap)
    return tuple(sorted((tuple(sorted(z)) for z in sets), key=lambda t: (len(t), t))), truncated


def minimal_adjustment_sets(
    graph: CausalGraph,
    treatment: Names,
    outcome: Names,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    cap: int = 64,
) -> tuple[tuple[str, ...], ...]:
    """Every minimal valid adjustment set (at most ``cap``), smallest first.

    Valid sets are the separators of X and Y in the proper back-door graph made of
    observed, non-forbidden variables (van der Zander et al. 2019, theorem 3.4); the
    minimal ones are listed with polynomial delay (their algorithm ListMinSep, after
    Takata 2010). ``include`` variables are in every set and minimality is over the
    others; ``exclude`` variables are in none. See :func:`adjustment_sets` for whether
    the list was cut at ``cap``.
    """
    s = checked_query(graph, treatment, outcome)
    inc, allowed = _constraints(graph, s, include, exclude)
    return _minimal(s, inc, allowed, cap)[0]


@dataclass(frozen=True)
class OptimalSet:
    """The optimal adjustment set O(X, Y), or ``None`` with the reason it does not apply."""

    variables: tuple[str, ...] | None
    reason: str

    def __post_init__(self) -> None:
        if self.variables is not None:
            object.__setattr__(self, "variables", tuple(sorted(self.variables)))
        if not self.reason:
            raise ValueError("OptimalSet needs a reason")

    def to_dict(self) -> dict:
        return {"variables": None if self.variables is None else list(self.variables), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict) -> OptimalSet:
        v = data["variables"]
        return cls(None if v is None else tuple(v), data["reason"])


def optimal_adjustment_set(graph: CausalGraph, treatment: Names, outcome: Names) -> OptimalSet:
    """O(X, Y) = pa(cn(X, Y)) \\ forb(X, Y) (Henckel, Perković & Maathuis 2022, JRSS-B 84(2)).

    In a DAG with Y ⊆ De(X), O is valid whenever any valid set exists and gives the
    smallest asymptotic variance among valid sets (their theorems 3.4 and 3.10; Rotnitzky
    & Smucler 2020 for non-parametric estimators). Latent variables are nodes of the
    canonical DAG, so the theorem still applies when O happens to be observed; when O
    contains a latent variable (including the latent parent of a bidirected edge into a
    causal node) the optimal set is not given by this construction and ``None`` is
    returned with the reason. The result is always checked against the adjustment
    criterion before it is returned.
    """
    s = checked_query(graph, treatment, outcome)
    reached = s.cn | s.xs
    not_desc = sorted(s.ys - reached)
    if not_desc:
        return OptimalSet(
            None, f"Y is not a descendant of X: no causal path from the treatment reaches {', '.join(not_desc)}"
        )
    o = {p for c in s.cn for p in s.dag.predecessors(c)} - s.forbidden
    hidden = sorted(o - s.observed)
    if hidden:
        return OptimalSet(None, _latent_reason(s, hidden))
    if not d_separated(s.pbd, s.xs, s.ys, o):
        return OptimalSet(
            None, f"O(X,Y) = {_braces(o)} is not a valid adjustment set, so no valid adjustment set exists"
        )
    return OptimalSet(
        tuple(o),
        f"O(X,Y) = pa(cn) \\ forb = {_braces(o)}: valid, and of all valid adjustment sets the one with the "
        "smallest asymptotic variance (Henckel, Perković & Maathuis 2022)",
    )


def _latent_reason(s: EffectStructure, hidden: list[str]) -> str:
    parts = []
    for h in hidden:
        kids = sorted(c for c in s.dag.successors(h) if c in s.cn)
        if h.startswith("U[") and s.dag.out_degree(h) == 2:
            a, b = sorted(s.dag.successors(h))
            parts.append(f"the bidirected edge {a} <-> {b} into the causal node {', '.join(kids)}")
        else:
            parts.append(f"the latent variable {h} (a parent of {', '.join(kids)})")
    return (
        "O(X,Y) = pa(cn) \\ forb contains "
        + "; ".join(parts)
        + ": it cannot be adjusted for, so the optimal set of Henckel et al. (2022) does not apply"
    )


def canonical_adjustment_set(graph: CausalGraph, treatment: Names, outcome: Names) -> tuple[str, ...] | None:
    """Adjust(X, Y) = An(X ∪ Y) ∩ observed \\ (forb ∪ X ∪ Y), if it is valid, else ``None``.

    It is valid if and only if some valid adjustment set exists (Perković et al. 2018,
    theorem 4.4; van der Zander et al. 2019, lemma 3.7 with the restriction to observed
    variables).
    """
    s = checked_query(graph, treatment, outcome)
    z = _largest(s, frozenset(), s.observed - s.forbidden - s.ys)
    return tuple(sorted(z)) if d_separated(s.pbd, s.xs, s.ys, z) else None


def _largest(s: EffectStructure, inc: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    return frozenset((ancestors(s.dag, s.xs | s.ys | inc) & allowed) | inc)


@dataclass(frozen=True)
class AdjustmentResult:
    """Every adjustment set the graph offers for one query.

    ``minimal`` lists the minimal valid sets (smallest first, at most ``cap``,
    ``truncated`` when there were more); ``reason`` is empty when a valid set exists and
    otherwise names an open non-causal path that no admissible set blocks.
    """

    minimal: tuple[tuple[str, ...], ...]
    optimal: OptimalSet
    canonical: tuple[str, ...] | None
    forbidden: tuple[str, ...]
    truncated: bool
    cap: int
    reason: str = ""

    def __post_init__(self) -> None:
        if bool(self.minimal) == bool(self.reason):
            raise ValueError("an AdjustmentResult has sets or a reason, not both")

    @property
    def exists(self) -> bool:
        return bool(self.minimal)

    def to_dict(self) -> dict:
        return {
            "minimal": [list(z) for z in self.minimal],
            "optimal": self.optimal.to_dict(),
            "canonical": None if self.canonical is None else list(self.canonical),
            "forbidden": list(self.forbidden),
            "truncated": self.truncated,
            "cap": self.cap,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> AdjustmentResult:
        canonical = data["canonical"]
        return cls(
            minimal=tuple(tuple(z) for z in data["minimal"]),
            optimal=OptimalSet.from_dict(data["optimal"]),
            canonical=None if canonical is None else tuple(canonical),
            forbidden=tuple(data["forbidden"]),
            truncated=data["truncated"],
            cap=data["cap"],
            reason=data["reason"],
        )


def adjustment_sets(
    graph: CausalGraph,
    treatment: Names,
    outcome: Names,
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    cap: int = 64,
) -> AdjustmentResult:
    """Minimal, optimal and canonical adjustment sets, or why none exists.

    The minimal sets honour ``include`` / ``exclude`` (see
    :func:`minimal_adjustment_sets`); the optimal and canonical sets are unconstrained.
    When no valid set exists, the reason shows one m-connecting non-causal path in the
    proper back-door graph given the largest admissible set, An(X ∪ Y ∪ include) ∩
    allowed, which is valid whenever any admissible set is (van der Zander et al. 2019).
    """
    s = checked_query(graph, treatment, outcome)
    inc, allowed = _constraints(graph, s, include, exclude)
    minimal, truncated = _minimal(s, inc, allowed, cap)
    reason = "" if minimal else _no_set_reason(s, inc, allowed, constrained=bool(include or exclude))
    return AdjustmentResult(
        minimal=minimal,
        optimal=optimal_adjustment_set(graph, treatment, outcome),
        canonical=canonical_adjustment_set(graph, treatment, outcome),
        forbidden=tuple(sorted(s.forbidden & s.observed)),
        truncated=truncated,
        cap=cap,
        reason=reason,
    )


def _no_set_reason(s: EffectStructure, inc: frozenset[str], allowed: frozenset[str], constrained: bool) -> str:
    z = _largest(s, inc, allowed)
    path = connecting_path(s.pbd, s.xs, s.ys, z)
    if path is None:  # cannot happen: the largest set separates when any set does
        raise AssertionError("no adjustment set found, yet the largest candidate set is valid")
    kind = "back-door" if s.dag.has_edge(path[1], path[0]) else "non-causal"
    who = "observed, non-forbidden variables" + (" within the include/exclude constraints" if constrained else "")
    given = _braces(z) if z else "∅"
    return (
        f"no valid adjustment set: the {kind} path {format_path(s.dag, path)} is open given {given}, "
        f"the largest admissible set, so no set of {who} blocks every non-causal path "
        "(Perković et al. 2018, theorem 4.4)"
    )
