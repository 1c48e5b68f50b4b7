"""``identify()``: from a graph, a treatment and an outcome to an :class:`EstimandPlan`.

The plan lists every strategy that identifies the effect (adjustment, front-door,
instrumental variables, the general ID formula), the testable implications of the graph,
the estimators each strategy admits, and a default strategy with the reason it was chosen.
It is a frozen value that round-trips through JSON exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from causal_core.identification.adjustment import adjustment_sets, check_constraints, optimal_adjustment_set
from causal_core.identification.admissible import admissible
from causal_core.errors import IdentificationError
from causal_core.identification.estimand import Estimand, backdoor_expression, frontdoor_expression
from causal_core.identification.frontdoor import frontdoor_sets
from causal_core.graph.causal_graph import CausalGraph, as_names
from causal_core.identification.id_algorithm import NotIdentifiable, identify_effect
from causal_core.graph.implications import Independence, implied_independences
from causal_core.identification.instruments import find_instruments

MAX_STRATEGIES_PER_KIND = 3
PLAN_VERSION = 1

_ASSUME_BACKDOOR = (
    "the adjustment set blocks every non-causal path from treatment to outcome (generalized adjustment criterion)",
    "positivity: every treatment value has positive probability in every stratum of the adjustment set",
)
_ASSUME_FRONTDOOR = (
    "the mediators intercept every directed path from treatment to outcome",
    "no unblocked back-door path from treatment to mediators; treatment blocks back-door paths from mediators "
    "to outcome",
    "positivity: P(mediators | treatment) > 0 and P(treatment) > 0",
)
_ASSUME_IV = (
    "relevance: the instrument is associated with the treatment given the conditioning set",
    "exclusion and unconfoundedness: the instrument is d-separated from the outcome given the conditioning set "
    "once the treatment's causal edges are removed",
    "linear structural model with a constant effect (otherwise the estimate is a LATE at best)",
)
_ASSUME_ID = ("the causal graph is correct, including its latent confounders (bidirected edges)",
              "positivity of every conditional probability in the formula")


@dataclass(frozen=True)
class EstimandPlan:
    """What identify() found. ``strategies`` is empty exactly when ``identifiable`` is false."""

    treatment: tuple[str, ...]
    outcome: tuple[str, ...]
    graph: CausalGraph
    identifiable: bool
    reason: str
    strategies: tuple[Estimand, ...]
    default: str
    default_reason: str
    implications: tuple[Independence, ...]
    estimators: tuple[tuple[str, tuple[str, ...]], ...]
    notes: tuple[str, ...] = ()
    hedge: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        names = [s.name for s in self.strategies]
        if len(names) != len(set(names)):
            raise IdentificationError(f"strategy names must be unique, got {names}")
        if self.identifiable != bool(self.strategies):
            raise IdentificationError("a plan is identifiable exactly when it has strategies")
        if self.default and self.default not in names:
            raise IdentificationError(f"default strategy {self.default!r} is not among {names}")

    def strategy(self, name: str | None = None) -> Estimand:
        """The strategy called ``name`` (default: the plan's default strategy)."""
        name = name or self.default
        for s in self.strategies:
            if s.name == name:
                return s
        valid = ", ".join(s.name for s in self.strategies) or "none: " + self.reason
        raise IdentificationError(f"no strategy {name!r} in the plan; strategies: {valid}")

    def estimators_for(self, name: str) -> tuple[str, ...]:
        return dict(self.estimators).get(name, ())

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return {
            "version": PLAN_VERSION, "treatment": list(self.treatment), "outcome": list(self.outcome),
            "graph": self.graph.to_dict(), "identifiable": self.identifiable, "reason": self.reason,
            "strategies": [s.to_dict() for s in self.strategies], "default": self.default,
            "default_reason": self.default_reason, "implications": [i.to_dict() for i in self.implications],
            "estimators": {k: list(v) for k, v in self.estimators}, "notes": list(self.notes),
            "hedge": None if self.hedge is None else [list(self.hedge[0]), list(self.hedge[1])],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> EstimandPlan:
        hedge = d.get("hedge")
        return cls(
            treatment=tuple(d["treatment"]), outcome=tuple(d["outcome"]), graph=CausalGraph.from_dict(d["graph"]),
            identifiable=bool(d["identifiable"]), reason=d["reason"],
            strategies=tuple(Estimand.from_dict(s) for s in d["strategies"]), default=d["default"],
            default_reason=d["default_reason"],
            implications=tuple(Independence.from_dict(i) for i in d["implications"]),
            estimators=tuple((k, tuple(v)) for k, v in d["estimators"].items()), notes=tuple(d.get("notes", ())),
            hedge=None if hedge is None else (tuple(hedge[0]), tuple(hedge[1])),
        )

    @classmethod
    def from_json(cls, text: str) -> EstimandPlan:
        try:
            return cls.from_dict(json.loads(text))
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise IdentificationError(f"not an estimand plan: {exc}") from None

    # ---------------------------------------------------------------- printing
    def __str__(self) -> str:
        head = f"Estimand plan for P({', '.join(self.outcome)} | do({', '.join(self.treatment)}))"
        lines = [head, "=" * len(head)]
        if not self.identifiable:
            lines.append(f"NOT IDENTIFIABLE: {self.reason}")
        else:
            lines.append(f"default: {self.default} — {self.default_reason}")
            if self.reason:
                lines.append(f"note: {self.reason}")
        for s in self.strategies:
            lines += ["", str(s), f"  estimators: {', '.join(self.estimators_for(s.name))}"]
        if self.notes:
            lines += ["", "search:"] + [f"  - {n}" for n in self.notes]
        lines += ["", f"testable implications ({len(self.implications)}):"]
        lines += [f"  {i}" for i in self.implications] or ["  none (every pair of variables is adjacent)"]
        return "\n".join(lines)


def identify(graph: CausalGraph | str, treatment: str | Sequence[str], outcome: str | Sequence[str], *,
             include: Iterable[str] = (), exclude: Iterable[str] = (), cap: int = 16) -> EstimandPlan:
    """Identify P(outcome | do(treatment)) in ``graph`` and return the estimand plan.

    ``exclude`` variables are used by no strategy in any role: identification runs on
    the graph with them latent (:meth:`CausalGraph.with_latent`), so they enter no
    adjustment set, front-door set, instrument, IV conditioning set or ID formula. The
    plan's ``graph`` and ``implications`` stay those of ``graph``. ``include`` variables
    are in every back-door adjustment set and every IV conditioning set; the front-door
    and ID formulas condition on no user-chosen set and are kept as they are (a note
    says so). Strategies that only the constraints rule out are named in the notes, and
    in ``reason`` when nothing is left. ``cap`` bounds the number of minimal adjustment
    sets (and front-door sets, instruments) enumerated.
    """
    graph = CausalGraph.parse(graph)
    x = as_names(treatment, "treatment")
    y = as_names(outcome, "outcome")
    graph.check_query(x, y)
    include, exclude = check_constraints(graph, x, y, include, exclude)
    c = _Constraints(graph, include, exclude, graph.with_latent(exclude))
    notes: list[str] = []
    ruled_out: list[str] = []  # what the constraints alone rule out, for the reason when nothing is left
    if c.exclude:
        notes.append(f"exclude: {_braces(c.exclude)} treated as unobserved: no strategy adjusts for, conditions on, "
                     "mediates through or instruments with them")
    strategies, backdoor_reason = _backdoor(c, x, y, cap, notes)
    strategies += _frontdoor(c, x, y, cap, notes, ruled_out)
    id_expr, hedge, id_reason = _general_id(c.hidden, x, y)
    if id_expr is not None:
        strategies.append(Estimand(name="id", kind="id", treatment=x, outcome=y, expression=id_expr,
                                   assumptions=_ASSUME_ID,
                                   note="the general ID formula (Shpitser & Pearl 2006); discrete variables"))
    elif c.exclude and _general_id(graph, x, y)[0] is not None:
        notes.append(f"id: ruled out by exclude: with {_braces(c.exclude)} unobserved, {id_reason}")
    else:
        notes.append(f"id: {id_reason}")
    strategies += _instruments(c, x, y, cap, notes, ruled_out)
    if c.include and any(s.kind in ("frontdoor", "id") for s in strategies):
        notes.append(f"include: {_braces(c.include)} enter(s) every adjustment set and IV conditioning set only; "
                     "the front-door and ID formulas condition on no user-chosen set")
    default, default_reason = _choose_default(strategies)
    identifiable = bool(strategies)
    if not identifiable:
        tried = "Strategies tried: back-door adjustment, front-door, instruments, the ID algorithm"
        if c.exclude:
            tried += f", with the excluded {_braces(c.exclude)} treated as unobserved"
        reason = "; ".join([backdoor_reason, *ruled_out, id_reason]) + f". {tried}."
    elif id_expr is None:
        reason = f"not nonparametrically identifiable ({id_reason}); identified only under a linear model by IV"
    else:
        reason = ""
    estimators = tuple((s.name, admissible(s.kind).estimators) for s in strategies)
    return EstimandPlan(
        treatment=x, outcome=y, graph=graph, identifiable=identifiable, reason=reason,
        strategies=tuple(strategies), default=default, default_reason=default_reason,
        implications=implied_independences(graph), estimators=estimators, notes=tuple(notes),
        hedge=None if hedge is None else (tuple(sorted(hedge[0])), tuple(sorted(hedge[1]))),
    )


def _braces(names: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


@dataclass(frozen=True)
class _Constraints:
    """The user's include/exclude for one identify() call; ``hidden`` is the graph with the exclusions latent."""

    graph: CausalGraph
    include: frozenset[str]
    exclude: frozenset[str]
    hidden: CausalGraph

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)


def _backdoor(c: _Constraints, x, y, cap, notes) -> tuple[list[Estimand], str]:
    """The back-door strategies, and why there is none (empty when there are some)."""
    graph = c.graph
    result = adjustment_sets(graph, x, y, include=c.include, exclude=c.exclude, cap=cap)
    out: list[Estimand] = []
    seen: set[tuple[str, ...]] = set()

    def add(name: str, z: Sequence[str], note: str) -> None:
        z = tuple(sorted(z))
        if z in seen:
            return
        seen.add(z)
        out.append(Estimand(name=name, kind="backdoor", treatment=x, outcome=y, adjustment=z,
                            expression=backdoor_expression(x, y, z), assumptions=_ASSUME_BACKDOOR, note=note))

    if c.exclude:
        unconstrained = optimal_adjustment_set(graph, x, y).variables
        if unconstrained is not None and set(unconstrained) & c.exclude:
            notes.append(f"backdoor: the optimal set of the graph, O = {_braces(unconstrained)}, uses the excluded "
                         f"{_braces(set(unconstrained) & c.exclude)}")
    if result.optimal.variables is not None:
        among = " that avoid the excluded variables" if c.exclude else ""
        add("backdoor.optimal", result.optimal.variables,
            "the optimal adjustment set O (Henckel, Perković & Maathuis 2022): smallest asymptotic variance "
            f"among valid adjustment sets{among} for linear estimators")
    elif result.optimal_with_include is not None:
        notes.append(f"backdoor: {result.optimal.reason}")
        add("backdoor.optimal_with_include", result.optimal_with_include,
            "the optimal set O (Henckel, Perković & Maathuis 2022) with the included variables added: valid, "
            "since O blocks every non-causal path where it first enters a causal node; not claimed to have the "
            "smallest variance among the sets that contain them")
    else:
        notes.append(f"backdoor: no optimal set O: {result.optimal.reason}")
    minimal = sorted(result.minimal, key=lambda s: (len(s), s))
    for i, z in enumerate(minimal[:MAX_STRATEGIES_PER_KIND]):
        add(f"backdoor.minimal{i + 1}" if len(minimal) > 1 else "backdoor.minimal", z,
            "a minimal valid adjustment set (van der Zander, Liśkiewicz & Textor 2019)")
    if minimal:
        listed = "; ".join("{" + ", ".join(z) + "}" for z in minimal)
        notes.append(f"backdoor: {len(minimal)} minimal adjustment set(s){' (capped)' if result.truncated else ''}: "
                     f"{listed}")
    if result.canonical is not None:
        add("backdoor.canonical", result.canonical,
            "the canonical set Adjust(X, Y) (Perković et al. 2018)"
            + (", here An(X ∪ Y ∪ include) ∩ admissible ∪ include" if c.include else "")
            + ": valid whenever any set" + (" within the include/exclude constraints" if c.active else "") + " is")
    if not out:
        if c.active and adjustment_sets(graph, x, y, cap=1).exists:
            notes.append(f"backdoor: ruled out by include/exclude: {result.reason}")
        else:
            notes.append(f"backdoor: {result.reason}")
    return out, result.reason


def _frontdoor(c: _Constraints, x, y, cap, notes, ruled_out) -> list[Estimand]:
    sets = frontdoor_sets(c.hidden, x, y, cap=cap)
    if not sets:
        everyone = frontdoor_sets(c.graph, x, y, cap=MAX_STRATEGIES_PER_KIND) if c.exclude else ()
        if everyone:
            listed = "; ".join(_braces(m) for m in everyone)
            why = f"every front-door set uses an excluded variable (front-door sets of the graph: {listed})"
            notes.append(f"frontdoor: ruled out by exclude: {why}")
            ruled_out.append(f"front-door: {why}")
        else:
            notes.append("frontdoor: no set of observed mediators satisfies the front-door criterion")
        return []
    out = []
    for i, m in enumerate(sets[:MAX_STRATEGIES_PER_KIND]):
        out.append(Estimand(name="frontdoor" if i == 0 else f"frontdoor{i + 1}", kind="frontdoor", treatment=x,
                            outcome=y, mediators=tuple(m), expression=frontdoor_expression(x, y, m),
                            assumptions=_ASSUME_FRONTDOOR, note="Pearl's front-door criterion (Pearl 2009, §3.3.2)"))
    return out


def _general_id(graph, x, y):
    try:
        return identify_effect(graph, x, y), None, ""
    except NotIdentifiable as exc:
        return None, exc.hedge, str(exc)


def _instruments(c: _Constraints, x, y, cap, notes, ruled_out) -> list[Estimand]:
    if len(x) != 1:
        notes.append("iv: instrumental variables need exactly one treatment")
        return []
    found = find_instruments(c.hidden, x, y, include=c.include, cap=cap)
    if not found:
        constraint, why = _no_instrument_reason(c, x, y)
        notes.append(f"iv: ruled out by {constraint}: {why}" if constraint else f"iv: {why}")
        if constraint:
            ruled_out.append(f"instruments: {why}")
        return []
    out = []
    for i, inst in enumerate(found[:MAX_STRATEGIES_PER_KIND]):
        out.append(Estimand(name="iv" if i == 0 else f"iv{i + 1}", kind="iv", treatment=x, outcome=y,
                            instruments=tuple(inst.instruments), conditioning=tuple(inst.conditioning),
                            expression=None, parametric=True, assumptions=_ASSUME_IV,
                            note="parametric (linear) only: IV does not identify P(y | do(x)) nonparametrically"))
    return out


def _no_instrument_reason(c: _Constraints, x, y) -> tuple[str, str]:
    """(the constraint that rules the instruments out, or "", and why there is none)."""
    if c.include:
        without = find_instruments(c.hidden, x, y, cap=MAX_STRATEGIES_PER_KIND)
        if without:
            return "include", (f"no instrument was found given a conditioning set that contains "
                               f"{_braces(c.include)} (without include: {'; '.join(str(i) for i in without)})")
    if c.exclude:
        everyone = find_instruments(c.graph, x, y, cap=MAX_STRATEGIES_PER_KIND)
        if everyone:
            return "exclude", (f"every instrument found uses an excluded variable as instrument or in its "
                               f"conditioning set (instruments of the graph: {'; '.join(str(i) for i in everyone)})")
    return "", "no observed (conditional) instrument"


def _choose_default(strategies: Sequence[Estimand]) -> tuple[str, str]:
    by_name = {s.name: s for s in strategies}
    for name, why in (
        ("backdoor.optimal", "adjustment by the optimal set O has the smallest asymptotic variance among valid "
                             "adjustment sets and admits every regression and propensity estimator"),
        ("backdoor.optimal_with_include", "the optimal set O lacks an included variable; O with the included "
                                          "variables added is valid and keeps O's covariates"),
    ):
        if name in by_name:
            return name, why
    for kind, why in (
        ("backdoor", "no optimal set applies; a minimal valid adjustment set keeps the models small"),
        ("frontdoor", "no valid adjustment set exists; the front-door criterion identifies the effect through "
                      "the mediators"),
        ("id", "neither adjustment nor front-door applies; the general ID formula identifies the effect for "
               "discrete variables (id_plugin)"),
        ("iv", "the effect is not nonparametrically identifiable; the instrument identifies it under a linear "
               "model only"),
    ):
        for s in strategies:
            if s.kind == kind:
                return s.name, why
    return "", ""
