"""Exact rewrites of probability expressions.

Every rule here is an identity for *every* joint distribution, under the evaluator's
convention that a quotient with a zero denominator is 0 — so a simplified expression
evaluates to the same numbers as the original, positivity or not:

* products are flattened, a one-factor product is its factor, ``Σ_{}`` is its body;
* Σ_W Π f = (Π of the factors free of W) · Σ_W (Π of the others), and a sum splits into
  independent sums over groups of variables that share no factor;
* Σ_W P(A | C) = P(A \\ W | C) when ∅ ≠ W ⊊ A (marginalisation);
* P(A | C) / P(B | C) = P(A \\ B | B, C) when ∅ ≠ B ⊊ A (definition of conditioning):
  both sides are 0 where P(B, C) = 0;
* P(A | B, C) · P(B | C) = P(A, B | C) (chain rule): both sides are 0 where P(B, C) = 0.

Rules that need positivity, such as Σ_w P(w | c) = 1, are deliberately absent: a wrong
simplification is worse than an untidy formula.
"""

from __future__ import annotations

from causal_core.formulas.formula import Formula, Fraction, Prob, Product, Sum


def simplify(expr: Formula) -> Formula:
    """Apply the rules of this module bottom-up until nothing changes."""
    while True:
        new = _simplify(expr)
        if new == expr:
            return new
        expr = new


def product(factors: list[Formula]) -> Formula:
    """A flattened product; a single factor is returned as is."""
    flat: list[Formula] = []
    for f in factors:
        if isinstance(f, Product):
            flat.extend(f.factors)
        else:
            flat.append(f)
    flat = _chain_rule(flat)
    return flat[0] if len(flat) == 1 else Product(tuple(flat))


def sum_over(over: tuple[str, ...], body: Formula) -> Formula:
    """Σ_over body, with the factors that do not involve ``over`` pulled out."""
    if not over:
        return body
    if isinstance(body, Sum) and not set(body.over) & set(over):
        # Σ_a Σ_b f = Σ_{a,b} f when the names differ (no shadowing is lost)
        return sum_over(over + body.over, body.body)
    if isinstance(body, Prob):
        gone = set(over)
        if gone <= set(body.variables) and gone != set(body.variables):
            return Prob(tuple(v for v in body.variables if v not in gone), body.given)
        return Sum(over, body)
    if not isinstance(body, Product):
        return Sum(over, body)
    outside = [f for f in body.factors if not f.free_variables() & set(over)]
    inside = [f for f in body.factors if f.free_variables() & set(over)]
    unused = tuple(v for v in over if not any(v in f.free_variables() for f in inside))
    if unused:
        # a sum over a variable that no factor mentions multiplies by its number of
        # levels; keep it visible rather than guess
        return Sum(over, body)
    groups = _independent_groups(over, inside)
    summed = []
    for names, members in groups:
        inner = members[0] if len(members) == 1 else Product(tuple(members))
        summed.append(_sum_single(names, inner))
    return product(outside + summed)


def _sum_single(over: tuple[str, ...], body: Formula) -> Formula:
    if isinstance(body, Prob):
        gone = set(over)
        if gone <= set(body.variables) and gone != set(body.variables):
            return Prob(tuple(v for v in body.variables if v not in gone), body.given)
    return Sum(over, body)


def _independent_groups(
    over: tuple[str, ...], factors: list[Formula]
) -> list[tuple[tuple[str, ...], list[Formula]]]:
    """Split (over, factors) into groups that share no summation variable."""
    groups: list[tuple[set[str], list[Formula]]] = []
    for f in factors:
        mine = f.free_variables() & set(over)
        joined = [g for g in groups if g[0] & mine]
        names, members = set(mine), [f]
        for g in joined:
            names |= g[0]
            members = g[1] + members
            groups.remove(g)
        groups.append((names, members))
    # restore the original factor order inside each group and order groups by first factor
    out = []
    for names, members in groups:
        ordered = [f for f in factors if any(f is m for m in members)]
        out.append((tuple(v for v in over if v in names), ordered))
    out.sort(key=lambda g: next(i for i, f in enumerate(factors) if f is g[1][0]))
    return out


def fraction(numerator: Formula, denominator: Formula) -> Formula:
    """numerator / denominator, as one conditional probability where that is exact."""
    if isinstance(numerator, Prob) and isinstance(denominator, Prob):
        a, b = set(numerator.variables), set(denominator.variables)
        if set(numerator.given) == set(denominator.given) and b < a:
            return Prob(
                tuple(v for v in numerator.variables if v not in b),
                numerator.given + tuple(v for v in denominator.variables),
            )
    if isinstance(denominator, Product) and not denominator.factors:
        return numerator
    return Fraction(numerator, denominator)


def _chain_rule(factors: list[Formula]) -> list[Formula]:
    """Merge P(A | B, C) · P(B | C) into P(A, B | C) wherever such a pair occurs.

    Pairs are found through an index from each factor's scope (variables ∪ given) to its
    positions, so a product of k factors costs O(k) per merge rather than O(k²).
    """
    factors = list(factors)
    while True:
        scope: dict[frozenset[str], list[int]] = {}
        for j, g in enumerate(factors):
            if isinstance(g, Prob) and not set(g.variables) & set(g.given):
                scope.setdefault(frozenset(g.variables) | frozenset(g.given), []).append(j)
        hit = None
        for i, f in enumerate(factors):
            if not isinstance(f, Prob):
                continue
            j = next((j for j in scope.get(frozenset(f.given), ()) if j != i), None)
            if j is not None:
                hit = (i, j)
                break
        if hit is None:
            return factors
        i, j = hit
        f, g = factors[i], factors[j]
        merged = Prob(g.variables + f.variables, g.given)
        keep = min(i, j)
        factors = [m for k, m in enumerate(factors) if k not in (i, j)]
        factors.insert(keep, merged)


def _simplify(expr: Formula) -> Formula:
    if isinstance(expr, Prob):
        return expr
    if isinstance(expr, Sum):
        return sum_over(expr.over, _simplify(expr.body))
    if isinstance(expr, Product):
        return product([_simplify(f) for f in expr.factors])
    if isinstance(expr, Fraction):
        return fraction(_simplify(expr.numerator), _simplify(expr.denominator))
    return expr
