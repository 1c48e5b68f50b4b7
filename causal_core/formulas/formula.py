"""Probability formulas: a small frozen AST for identification formulas.

An identified causal effect is a formula in the observed distribution P(v): conditional
probabilities, sums over the values of some variables, products and quotients
(Shpitser & Pearl 2006, section 3; Pearl 2009, section 3.4). The four node types here
are frozen values that print as text or LaTeX, round-trip through JSON-safe dicts, and
evaluate exactly on a discrete joint distribution (see :mod:`causal_core.formulas.evaluate`).

Variables are named by strings. A :class:`Sum` binds its variables lexically: in
``Σ_{m} P(m | x) Σ_{x} P(x) P(y | x, m)`` (the front-door formula as the ID algorithm
produces it) the inner ``x`` is a summation variable distinct from the free ``x``;
:meth:`Formula.to_text` prints such shadowed names with primes (``x'``), and
:meth:`Formula.evaluate` scopes them correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from causal_core.errors import IdentificationError

if TYPE_CHECKING:
    import pandas as pd


def _names(value: Any, what: str) -> tuple[str, ...]:
    """A name or an iterable of names as a tuple of unique non-empty strings."""
    if isinstance(value, str):
        value = (value,)
    try:
        names = tuple(value)
    except TypeError:
        raise IdentificationError(f"{what}: expected a sequence of variable names, got {value!r}") from None
    for n in names:
        if not isinstance(n, str) or not n:
            raise IdentificationError(f"{what}: expected non-empty variable names, got {n!r}")
    if len(set(names)) != len(names):
        raise IdentificationError(f"{what}: a variable is repeated in {list(names)}")
    return names


class Formula:
    """Base of the probability-expression AST: :class:`Prob`, :class:`Sum`,
    :class:`Product` and :class:`Fraction`."""

    __slots__ = ()

    def free_variables(self) -> frozenset[str]:
        """Variables whose values the expression depends on (not bound by a sum)."""
        raise NotImplementedError

    def mentioned_variables(self) -> frozenset[str]:
        """Every variable named anywhere in the expression, free or bound."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """A JSON-safe dict; :meth:`from_dict` reads it back to an equal expression."""
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict) -> Formula:
        """Rebuild an expression written by :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise IdentificationError(f"expression dict: expected a dict, got {type(data).__name__}")
        kind = data.get("kind")
        reader = _READERS.get(kind)  # type: ignore[arg-type]
        if reader is None:
            raise IdentificationError(
                f"expression dict: unknown kind {kind!r}; expected one of {sorted(_READERS)}"
            )
        try:
            return reader(data)
        except KeyError as exc:
            raise IdentificationError(f"expression dict of kind {kind!r} is missing the field {exc}") from None

    def to_text(self) -> str:
        """Readable plain text, e.g. ``Σ_{z} P(y | x, z) P(z)``."""
        return _Renderer(latex=False).render(self)

    def to_latex(self) -> str:
        r"""LaTeX math, e.g. ``\sum_{z} P(y \mid x, z) P(z)``."""
        return _Renderer(latex=True).render(self)

    def evaluate(self, joint: pd.DataFrame) -> pd.DataFrame:
        """Evaluate on a discrete joint distribution; see :func:`causal_core.formulas.evaluate.evaluate`."""
        from causal_core.formulas.evaluate import evaluate

        return evaluate(self, joint)

    def simplify(self) -> Formula:
        """An equal expression with some redundancy removed.

        Only rewrites that hold for every joint distribution, including the evaluator's
        convention 0/0 = 0, are applied: flattening, pulling factors out of sums,
        Σ_w P(w, a | c) = P(a | c), P(a, b | c) / P(b | c) = P(a | b, c) and the chain
        rule P(a | b, c) P(b | c) = P(a, b | c).
        """
        from causal_core.formulas.simplify import simplify

        return simplify(self)

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True)
class Prob(Formula):
    """P(variables | given), a marginal or conditional of the observed distribution.

    Either field takes a tuple of names (a bare string is read as one name); the order
    is kept as given and is the order of printing.
    """

    variables: tuple[str, ...]
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        variables = _names(self.variables, "Prob.variables")
        given = _names(self.given, "Prob.given")
        if not variables:
            raise IdentificationError("Prob.variables: expected at least one variable")
        both = set(variables) & set(given)
        if both:
            raise IdentificationError(f"Prob: {sorted(both)} appear both before and after the bar")
        object.__setattr__(self, "variables", variables)
        object.__setattr__(self, "given", given)

    def free_variables(self) -> frozenset[str]:
        return frozenset(self.variables) | frozenset(self.given)

    def mentioned_variables(self) -> frozenset[str]:
        return self.free_variables()

    def to_dict(self) -> dict:
        return {"kind": "prob", "variables": list(self.variables), "given": list(self.given)}


@dataclass(frozen=True)
class Sum(Formula):
    """Σ over every combination of values of ``over`` of ``body``."""

    over: tuple[str, ...]
    body: Formula

    def __post_init__(self) -> None:
        object.__setattr__(self, "over", _names(self.over, "Sum.over"))
        if not isinstance(self.body, Formula):
            raise IdentificationError(f"Sum.body: expected an Formula, got {type(self.body).__name__}")

    def free_variables(self) -> frozenset[str]:
        return self.body.free_variables() - frozenset(self.over)

    def mentioned_variables(self) -> frozenset[str]:
        return self.body.mentioned_variables() | frozenset(self.over)

    def to_dict(self) -> dict:
        return {"kind": "sum", "over": list(self.over), "body": self.body.to_dict()}


@dataclass(frozen=True)
class Product(Formula):
    """The product of ``factors``; the empty product is 1."""

    factors: tuple[Formula, ...]

    def __post_init__(self) -> None:
        try:
            factors = tuple(self.factors)
        except TypeError:
            raise IdentificationError(f"Product.factors: expected a sequence, got {self.factors!r}") from None
        for f in factors:
            if not isinstance(f, Formula):
                raise IdentificationError(f"Product.factors: expected Expressions, got {type(f).__name__}")
        object.__setattr__(self, "factors", factors)

    def free_variables(self) -> frozenset[str]:
        return frozenset().union(*(f.free_variables() for f in self.factors))

    def mentioned_variables(self) -> frozenset[str]:
        return frozenset().union(*(f.mentioned_variables() for f in self.factors))

    def to_dict(self) -> dict:
        return {"kind": "product", "factors": [f.to_dict() for f in self.factors]}


@dataclass(frozen=True)
class Fraction(Formula):
    """numerator / denominator; where the denominator is 0 the value is 0 (positivity)."""

    numerator: Formula
    denominator: Formula

    def __post_init__(self) -> None:
        for name in ("numerator", "denominator"):
            part = getattr(self, name)
            if not isinstance(part, Formula):
                raise IdentificationError(f"Fraction.{name}: expected an Formula, got {type(part).__name__}")

    def free_variables(self) -> frozenset[str]:
        return self.numerator.free_variables() | self.denominator.free_variables()

    def mentioned_variables(self) -> frozenset[str]:
        return self.numerator.mentioned_variables() | self.denominator.mentioned_variables()

    def to_dict(self) -> dict:
        return {
            "kind": "fraction",
            "numerator": self.numerator.to_dict(),
            "denominator": self.denominator.to_dict(),
        }


def _list_field(data: dict, key: str, kind: str) -> list:
    value = data[key]
    if not isinstance(value, list):
        raise IdentificationError(f"expression dict of kind {kind!r}: field {key!r} must be a list, got {value!r}")
    return value


_READERS = {
    "prob": lambda d: Prob(tuple(_list_field(d, "variables", "prob")), tuple(_list_field(d, "given", "prob"))),
    "sum": lambda d: Sum(tuple(_list_field(d, "over", "sum")), Formula.from_dict(d["body"])),
    "product": lambda d: Product(tuple(Formula.from_dict(f) for f in _list_field(d, "factors", "product"))),
    "fraction": lambda d: Fraction(Formula.from_dict(d["numerator"]), Formula.from_dict(d["denominator"])),
}


# ---------------------------------------------------------------------- rendering
_LATEX_SPECIAL = re.compile(r"([_&%$#{}])")


def _latex_name(name: str) -> str:
    m = re.fullmatch(r"([A-Za-z])_?(\d+)", name)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if re.fullmatch(r"[A-Za-z]", name):
        return name
    return r"\mathrm{" + _LATEX_SPECIAL.sub(r"\\\1", name) + "}"


class _Renderer:
    """Prints an expression; a summation variable that shadows a name already in scope
    is shown primed (x', x'', ...) so the printed formula reads unambiguously."""

    def __init__(self, latex: bool) -> None:
        self.latex = latex
        self.mentioned: frozenset[str] = frozenset()

    def render(self, expr: Formula) -> str:
        self.mentioned = expr.mentioned_variables()
        scope = {v: v for v in expr.free_variables()}
        return self._render(expr, scope)

    def _name(self, name: str, scope: dict[str, str]) -> str:
        shown = scope.get(name, name)
        if not self.latex:
            return shown
        primes = len(shown) - len(shown.rstrip("'"))
        return _latex_name(shown[: len(shown) - primes]) + "'" * primes

    def _render(self, expr: Formula, scope: dict[str, str]) -> str:
        if isinstance(expr, Prob):
            head = ", ".join(self._name(v, scope) for v in expr.variables)
            if expr.given:
                bar = r" \mid " if self.latex else " | "
                head += bar + ", ".join(self._name(v, scope) for v in expr.given)
            return f"P({head})"
        if isinstance(expr, Sum):
            inner = dict(scope)
            for v in expr.over:
                shown = v
                if v in scope:
                    avoid = self.mentioned | set(scope.values()) | set(inner.values())
                    shown = v + "'"
                    while shown in avoid:
                        shown += "'"
                inner[v] = shown
            over = ", ".join(self._name(v, inner) for v in expr.over)
            body = self._render(expr.body, inner)
            if isinstance(expr.body, Fraction) and not self.latex:
                body = f"[{body}]"
            if not expr.over:
                return body
            return (r"\sum_{" if self.latex else "Σ_{") + over + "} " + body
        if isinstance(expr, Product):
            if not expr.factors:
                return "1"
            parts = []
            for i, f in enumerate(expr.factors):
                text = self._render(f, scope)
                last = i == len(expr.factors) - 1
                if (isinstance(f, Sum) and f.over and not last) or (isinstance(f, Product) and len(f.factors) > 1):
                    text = r"\left[" + text + r"\right]" if self.latex else f"[{text}]"
                elif isinstance(f, Fraction) and not self.latex:
                    text = f"({text})"
                parts.append(text)
            return " ".join(parts)
        if isinstance(expr, Fraction):
            num = self._render(expr.numerator, scope)
            den = self._render(expr.denominator, scope)
            if self.latex:
                return r"\frac{" + num + "}{" + den + "}"
            if not isinstance(expr.numerator, Prob):
                num = f"[{num}]"
            if not isinstance(expr.denominator, Prob):
                den = f"[{den}]"
            return f"{num} / {den}"
        raise IdentificationError(f"cannot render {type(expr).__name__}")
