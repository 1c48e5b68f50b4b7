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
from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.separators import (
    EffectStructure,
    ancestors,
    checked_query,
    connecting_path,
    d_separated,
    effect_structure,
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


def check_constraints(
    graph: CausalGraph, treatment: Names, outcome: Names, include: Iterable[str], exclude: Iterable[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """``include`` and ``exclude`` as sets, after checking them (a :class:`GraphError` naming the variable).

    Both must name observed covariates: not an unknown or latent variable, not a
    treatment or outcome, not both lists at once; an included variable must also not be
    forbidden (no valid adjustment set contains one, Perković et al. 2018, def. 3).
    """
    s = checked_query(graph, treatment, outcome)
    return _checked(graph, s, include, exclude)


def _checked(graph: CausalGraph, s: EffectStructure, include: Iterable[str] | str, exclude: Iterable[str] | str):
    inc = known_names(graph, include, "include")
    exc = known_names(graph, exclude, "exclude")
    for what, names in (("include", inc), ("exclude", exc)):
        for n in sorted(names):
            if n in graph.latent:
                raise GraphError(
                    f"{what} names {n!r}, a latent variable; only observed variables can be {what}d"
                )
            if n in s.xs or n in s.ys:
                role = "a treatment" if n in s.xs else "an outcome"
                raise GraphError(f"{what} names {n!r}, which is {role}, not a covariate")
    for n in sorted(inc):
        if n in s.forbidden:
            raise GraphError(
                f"include names {n!r}, which is forbidden: it is a descendant of a node on a causal path "
                f"from the treatment to the outcome (forb = {_braces(s.forbidden & s.observed)})"
            )
    both = inc & exc
    if both:
        raise GraphError(f"variables {sorted(both)} are both included and excluded")
    return inc, exc


def _constraints(graph: CausalGraph, s: EffectStructure, include: Iterable[str], exclude: Iterable[str]):
    inc, exc = _checked(graph, s, include, exclude)
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
    canonical DAG, so the theorem still applies when O happens to be observed. When O
    contains a latent variable, O is taken in the canonical DAG of the latent projection
    instead (Verma & Pearl 1990), where a latent variable that reaches no observed
    variable but one causal node drops out: the proof of theorem 3.10 compares O with
    each valid Z through m-separations among O, Z, X and Y only (their theorem 3.6),
    and the projection keeps every m-separation among observed variables, so an
    observed O there is optimal among the valid sets of observed variables. When O
    still contains a latent variable (a latent parent of a causal node that also reaches
    another observed variable, a bidirected edge into a causal node) ``None`` is
    returned with the reason. The result is always checked against the adjustment
    criterion before it is returned.
    """
    return _optimal(graph, checked_query(graph, treatment, outcome), frozenset())


def _optimal(graph: CausalGraph, s: EffectStructure, excluded: frozenset[str]) -> OptimalSet:
    """O(X, Y) for the query ``s`` of ``graph``; ``excluded`` are latent nodes the user excluded."""
    reached = s.cn | s.xs
    not_desc = sorted(s.ys - reached)
    if not_desc:
        return OptimalSet(
            None, f"Y is not a descendant of X: no causal path from the treatment reaches {', '.join(not_desc)}"
        )
    o = _pa_cn(s)
    hidden = sorted(o - s.observed)
    how = "O(X,Y) = pa(cn) \\ forb"
    if hidden:
        p = effect_structure(graph.projection(), tuple(sorted(s.xs)), tuple(sorted(s.ys)))
        if _pa_cn(p) - p.observed:
            return OptimalSet(None, _latent_reason(s, hidden, excluded))
        o, s = _pa_cn(p), p
        how += f" in the latent projection, without {_named(hidden, excluded)},"
    if not d_separated(s.pbd, s.xs, s.ys, o):
        return OptimalSet(
            None, f"O(X,Y) = {_braces(o)} is not a valid adjustment set, so no valid adjustment set exists"
        )
    among = "valid adjustment sets" + (" that avoid the excluded variables" if excluded else "")
    return OptimalSet(
        tuple(o),
        f"{how} = {_braces(o)}: valid, and of all {among} the one with the smallest asymptotic variance "
        "(Henckel, Perković & Maathuis 2022)",
    )


def _pa_cn(s: EffectStructure) -> frozenset[str]:
    return frozenset(p for c in s.cn for p in s.dag.predecessors(c)) - s.forbidden


def _named(nodes: Iterable[str], excluded: frozenset[str]) -> str:
    own = sorted(n for n in nodes if n not in excluded)
    out = sorted(n for n in nodes if n in excluded)
    parts = ([f"the latent {', '.join(own)}"] if own else []) + ([f"the excluded {', '.join(out)}"] if out else [])
    return " and ".join(parts)


def _latent_reason(s: EffectStructure, hidden: list[str], excluded: frozenset[str] = frozenset()) -> str:
    parts = []
    for h in hidden:
        kids = sorted(c for c in s.dag.successors(h) if c in s.cn)
        if h.startswith("U[") and s.dag.out_degree(h) == 2:
            a, b = sorted(s.dag.successors(h))
            parts.append(f"the bidirected edge {a} <-> {b} into the causal node {', '.join(kids)}")
        elif h in excluded:
            parts.append(f"the excluded variable {h} (a parent of {', '.join(kids)})")
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
    """Every adjustment set the graph offers for one query, within the include/exclude constraints.

    ``minimal`` lists the minimal valid sets (smallest first, at most ``cap``,
    ``truncated`` when there were more); ``reason`` is empty when a valid set exists and
    otherwise names an open non-causal path that no admissible set blocks. ``optimal``
    holds a set only when it avoids the excluded and contains the included variables;
    ``optimal_with_include`` is O ∪ include when O lacks some included variable (valid,
    see :func:`adjustment_sets`, but not claimed to be optimal). ``forbidden`` is
    forb(X, Y) of the graph, excluded variables included.
    """

    minimal: tuple[tuple[str, ...], ...]
    optimal: OptimalSet
    canonical: tuple[str, ...] | None
    forbidden: tuple[str, ...]
    truncated: bool
    cap: int
    reason: str = ""
    optimal_with_include: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if bool(self.minimal) == bool(self.reason):
            raise ValueError("an AdjustmentResult has sets or a reason, not both")
        if self.optimal_with_include is not None and self.optimal.variables is not None:
            raise ValueError("optimal_with_include is only given when the optimal set lacks an included variable")

    @property
    def exists(self) -> bool:
        return bool(self.minimal)

    def to_dict(self) -> dict:
        extended = self.optimal_with_include
        return {
            "minimal": [list(z) for z in self.minimal],
            "optimal": self.optimal.to_dict(),
            "optimal_with_include": None if extended is None else list(extended),
            "canonical": None if self.canonical is None else list(self.canonical),
            "forbidden": list(self.forbidden),
            "truncated": self.truncated,
            "cap": self.cap,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: dict) -> AdjustmentResult:
        canonical, extended = data["canonical"], data["optimal_with_include"]
        return cls(
            minimal=tuple(tuple(z) for z in data["minimal"]),
            optimal=OptimalSet.from_dict(data["optimal"]),
            optimal_with_include=None if extended is None else tuple(extended),
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

    Every set honours the constraints: it contains each ``include`` variable and no
    ``exclude`` variable. Excluded variables are treated as latent
    (:meth:`CausalGraph.with_latent`), so the optimal set is the one of that graph,
    optimal among the valid sets that avoid them (see :func:`optimal_adjustment_set`).
    When O lacks an included variable it is not offered as optimal; O ∪ include is
    returned instead as ``optimal_with_include``: it is valid, since a non-causal path
    from X to Y reaches its first causal node c either by an edge p -> c, where p ∈ O
    blocks it, or by an edge out of c, after which it has a collider in De(c) ⊆ forb
    that no admissible set opens (pa(cn) ∩ forb ⊆ cn ∪ X, and X's edges into cn are
    not in the proper back-door graph); it is still checked. The canonical set is
    An(X ∪ Y ∪ include) ∩ allowed ∪ include, where allowed are the observed,
    non-forbidden, non-excluded covariates; it is valid exactly when some admissible
    set is (van der Zander et al. 2019, lemma 3.7; checked), else ``None``. When no
    valid set exists, the reason shows one m-connecting non-causal path in the proper
    back-door graph given that largest set.
    """
    s = checked_query(graph, treatment, outcome)
    inc, allowed = _constraints(graph, s, include, exclude)
    exc = known_names(graph, exclude, "exclude")
    minimal, truncated = _minimal(s, inc, allowed, cap)
    reason = "" if minimal else _no_set_reason(s, inc, allowed, constrained=bool(inc or exc))
    hidden = graph.with_latent(exc)
    optimal = _optimal(hidden, effect_structure(hidden, tuple(sorted(s.xs)), tuple(sorted(s.ys))), exc)
    extended = None
    if optimal.variables is not None and not inc <= set(optimal.variables):
        o = frozenset(optimal.variables)
        optimal = OptimalSet(
            None,
            f"the optimal set O = {_braces(o)} does not contain the included {_braces(inc - o)}; "
            f"O ∪ include = {_braces(o | inc)} is valid but not claimed optimal among sets containing them",
        )
        if d_separated(s.pbd, s.xs, s.ys, o | inc):  # always, by the argument above
            extended = tuple(sorted(o | inc))
    largest = _largest(s, inc, allowed)
    return AdjustmentResult(
        minimal=minimal,
        optimal=optimal,
        optimal_with_include=extended,
        canonical=tuple(sorted(largest)) if d_separated(s.pbd, s.xs, s.ys, largest) else None,
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
