"""The complete identification algorithm ID of Shpitser & Pearl (2006).

I. Shpitser and J. Pearl, "Identification of joint interventional distributions in
recursive semi-Markovian causal models", AAAI 2006, Figure 3 (lines 1-7). Given an
acyclic directed mixed graph (the latent projection of the causal graph), treatments X
and outcomes Y, ID returns a formula for P(y | do(x)) in the observed distribution P(v),
or fails at line 5 with a *hedge*: two c-forests F' ⊂ F that prove the effect is not
identifiable (their Theorem 4: ID is complete).

The recursion carries the distribution it is working on as an Formula. At the top it
is the observed P(V); line 2 marginalises it, and line 7 replaces it by the product of
its conditionals over a district S', Π_{V_i ∈ S'} P(v_i | v_π^(i-1)). Conditionals of a
distribution Q that is not the observed one are Q(v_i | v^(i-1)) =
Σ_{v_{>i}} Q / Σ_{v_{≥i}} Q; :class:`_Distribution` writes them as simply as is exact.
All conditionals use one fixed topological order π of the whole graph.

As in the paper, P(v) is assumed positive: the formulas are exact for every positive
distribution compatible with the graph (where positivity fails, the evaluator's 0/0 = 0
convention gives a number, but identification makes no promise about it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from causal_core.errors import IdentificationError
from causal_core.formulas.formula import Formula, Prob, Product
from causal_core.formulas.simplify import fraction, product, simplify, sum_over
from causal_core.graph.causal_graph import CausalGraph, as_names

__all__ = ["NotIdentifiable", "identify_effect", "is_identifiable"]


class NotIdentifiable(IdentificationError):
    """P(y | do(x)) is not identifiable from the observed distribution.

    ``hedge`` is the pair (F, F') of node sets found at line 5 of ID: both induce a
    single c-component of the latent projection, F' ⊂ F, F contains a treatment and F'
    none, and every node of each reaches the common root set R ⊆ An(Y) within it
    (Shpitser & Pearl 2006, Definition 5 and Theorem 4).
    """

    def __init__(self, message: str, hedge: tuple[frozenset[str], frozenset[str]]) -> None:
        super().__init__(message)
        self.hedge = hedge


class _Hedge(Exception):
    def __init__(self, f: frozenset[str], f_prime: frozenset[str]) -> None:
        super().__init__()
        self.f = f
        self.f_prime = f_prime


def identify_effect(graph: CausalGraph, treatment: str | Sequence[str], outcome: str | Sequence[str]) -> Formula:
    """A formula for P(outcome | do(treatment)) in the observed distribution.

    Runs ID (Shpitser & Pearl 2006, Fig. 3) on ``graph.projection()``; ``treatment``
    and ``outcome`` are a name or a sequence of names. The free variables of the result
    include every outcome and otherwise only treatments: a treatment that is not an
    ancestor of the outcome drops out at line 2, so callers that want one row per
    treatment value must broadcast over it. The formula is tidied with exact rewrites
    only (:mod:`causal_core.formulas.simplify`). Raises :class:`NotIdentifiable`, carrying the hedge, when no formula exists, and
    :class:`~causal_core.errors.GraphError` when the query names unknown or latent
    nodes or a variable that is both treatment and outcome.
    """
    xs = as_names(treatment, "treatment")
    ys = as_names(outcome, "outcome")
    graph.check_query(xs, ys)
    admg = graph.projection()
    solver = _IdSolver(admg)
    start = _Distribution(order=admg.topological_order(admg.observed), summed=frozenset(), factors=None)
    try:
        expr = solver.identify(frozenset(ys), frozenset(xs), start, frozenset(admg.observed))
    except _Hedge as hedge:
        raise NotIdentifiable(_hedge_message(admg, xs, ys, hedge), (hedge.f, hedge.f_prime)) from None
    # Line 3 adds to X variables W that cannot affect Y once X is fixed; the result may
    # then name w although its value is the same for every w (P_x(y) = P_{x,w}(y)).
    # Averaging over w with the observed weights P(w) removes them exactly.
    extra = solver.ordered(expr.free_variables() - set(xs) - set(ys))
    if extra:
        expr = sum_over(extra, product([Prob(extra), expr]))
    return simplify(expr)


def is_identifiable(graph: CausalGraph, treatment: str | Sequence[str], outcome: str | Sequence[str]) -> bool:
    """True when P(outcome | do(treatment)) is identifiable in ``graph`` (complete: ID)."""
    try:
        identify_effect(graph, treatment, outcome)
    except NotIdentifiable:
        return False
    return True


def _hedge_message(admg: CausalGraph, xs: tuple[str, ...], ys: tuple[str, ...], hedge: _Hedge) -> str:
    def show(nodes: Iterable[str]) -> str:
        return "{" + ", ".join(admg.topological_order(nodes)) + "}"

    query = f"P({', '.join(ys)} | do({', '.join(xs)}))"
    inside = [x for x in xs if x in hedge.f] or sorted(hedge.f - hedge.f_prime)
    return (
        f"{query} is not identifiable: hedge F={show(hedge.f)}, F'={show(hedge.f_prime)} "
        f"(each is one c-component of the latent projection, F' ⊂ F, F holds treatment "
        f"{', '.join(inside)} and F' holds none; Shpitser & Pearl 2006, Theorem 4)"
    )


@dataclass(frozen=True)
class _Distribution:
    """The distribution Q the current ID call works on.

    ``factors is None``: Q is the observed P(order). Otherwise
    Q = Σ_{summed} Π_{v ∈ order} factors[v], where each factor is Q's own conditional of
    its variable given every earlier variable of ``order`` (plus fixed outside values),
    as built at line 7. The variables of Q are ``order`` minus ``summed``.
    """

    order: tuple[str, ...]
    summed: frozenset[str]
    factors: tuple[Formula, ...] | None

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(v for v in self.order if v not in self.summed)

    def marginal(self, keep: Iterable[str]) -> _Distribution:
        """Σ_{V \\ keep} Q."""
        keep = frozenset(keep)
        if self.factors is None:
            return _Distribution(tuple(v for v in self.order if v in keep), frozenset(), None)
        summed = self.summed | (frozenset(self.variables) - keep)
        order, factors = list(self.order), list(self.factors)
        # Σ over the last variable of a product of conditionals removes its factor (its
        # conditional sums to 1: exact for the positive P(v) that ID assumes)
        while order and order[-1] in summed:
            summed = summed - {order.pop()}
            factors.pop()
        return _Distribution(tuple(order), summed, tuple(factors))

    def expression(self) -> Formula:
        if self.factors is None:
            return Prob(self.order) if self.order else Product(())
        body = product(list(self.factors)) if self.factors else Product(())
        over = tuple(v for v in self.order if v in self.summed)
        return sum_over(over, body)

    def conditional(self, v: str) -> Formula:
        """Q(v | the variables of Q before v in the topological order)."""
        before = self.variables[: self.variables.index(v)]
        if self.factors is None:
            return Prob((v,), tuple(u for u in self.order if u in before))
        upto = self.marginal(before + (v,))
        if not upto.summed:
            return upto.factors[-1]  # type: ignore[index]
        below = self.marginal(before)
        if not below.order:
            return upto.expression()
        return fraction(upto.expression(), below.expression())

    def district_factorization(self, district: Sequence[str]) -> _Distribution:
        """Line 7: Π_{V_i ∈ S'} Q(v_i | v_π^(i-1)) as a distribution over S'."""
        return _Distribution(tuple(district), frozenset(), tuple(self.conditional(v) for v in district))


class _IdSolver:
    def __init__(self, admg: CausalGraph) -> None:
        self.admg = admg
        self.rank = {v: i for i, v in enumerate(admg.topological_order(admg.observed))}

    def ordered(self, nodes: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(nodes, key=self.rank.__getitem__))

    def ancestors(self, ys: frozenset[str], within: frozenset[str], cut: frozenset[str] = frozenset()) -> frozenset[str]:
        """An(ys) in the subgraph induced by ``within`` with the edges into ``cut`` removed."""
        seen, stack = set(ys), list(ys)
        while stack:
            v = stack.pop()
            if v in cut:
                continue
            for p in self.admg.parents(v):
                if p in within and p not in seen:
                    seen.add(p)
                    stack.append(p)
        return frozenset(seen)

    def identify(self, y: frozenset[str], x: frozenset[str], q: _Distribution, v: frozenset[str]) -> Formula:
        """ID(y, x, Q, G[v]) — Shpitser & Pearl 2006, Figure 3."""
        # line 1: no intervention left, marginalise
        if not x:
            return q.marginal(y).expression()
        # line 2: only the ancestors of Y matter
        an = self.ancestors(y, v)
        if an != v:
            return self.identify(y, x & an, q.marginal(an), an)
        # line 3: intervening on W, which cannot reach Y once X is fixed, changes nothing
        w = (v - x) - self.ancestors(y, v, cut=x)
        if w:
            return self.identify(y, x | w, q, v)
        # line 4: factorise over the districts of G \ X
        districts = self.admg.districts(v - x)
        if len(districts) > 1:
            factors = [self.identify(s, v - s, q, v) for s in districts]
            return sum_over(self.ordered(v - (y | x)), product(factors))
        s = districts[0]
        whole = self.admg.districts(v)
        # line 5: G is a single district containing S: a hedge
        if len(whole) == 1:
            raise _Hedge(v, s)
        # line 6: S is a district of G; its c-factor is a product of conditionals
        if s in whole:
            factors = [q.conditional(vi) for vi in self.ordered(s)]
            return sum_over(self.ordered(s - y), product(factors))
        # line 7: S lies inside a larger district S' of G; recurse on G[S']
        s_prime = next(d for d in whole if s < d)
        return self.identify(y, x & s_prime, q.district_factorization(self.ordered(s_prime)), s_prime)
