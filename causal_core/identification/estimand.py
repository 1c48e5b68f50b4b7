"""Estimands: one identification strategy with its variable sets, assumptions and formula."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from causal_core.errors import IdentificationError
from causal_core.formulas.formula import Formula, Prob, Product, Sum

KINDS = ("backdoor", "frontdoor", "iv", "id")


@dataclass(frozen=True)
class Estimand:
    """One way to identify P(outcome | do(treatment)) from the observed distribution.

    ``kind`` is backdoor | frontdoor | iv | id. ``expression`` is the nonparametric
    formula (``None`` for IV, which is only identified under a linear model and says so
    with ``parametric=True``).
    """

    name: str
    kind: str
    treatment: tuple[str, ...]
    outcome: tuple[str, ...]
    expression: Formula | None
    assumptions: tuple[str, ...] = ()
    adjustment: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    conditioning: tuple[str, ...] = ()
    parametric: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise IdentificationError(f"estimand kind {self.kind!r} is unknown; expected one of {KINDS}")
        if self.expression is None and not self.parametric:
            raise IdentificationError(f"estimand {self.name!r}: a nonparametric estimand needs an expression")

    # ---------------------------------------------------------------- printing
    def formula(self) -> str:
        """The estimand as text: the probability expression, or the linear IV ratio."""
        if self.expression is not None:
            return self.expression.to_text()
        y, x, z = ", ".join(self.outcome), ", ".join(self.treatment), ", ".join(self.instruments)
        w = f" | {', '.join(self.conditioning)}" if self.conditioning else ""
        return f"Cov({y}, {z}{w}) / Cov({x}, {z}{w})  [linear structural model]"

    def to_latex(self) -> str:
        if self.expression is not None:
            return self.expression.to_latex()
        y, x, z = ", ".join(self.outcome), ", ".join(self.treatment), ", ".join(self.instruments)
        w = f" \\mid {', '.join(self.conditioning)}" if self.conditioning else ""
        return f"\\frac{{\\mathrm{{Cov}}({y}, {z}{w})}}{{\\mathrm{{Cov}}({x}, {z}{w})}}"

    def target_text(self) -> str:
        return f"P({', '.join(self.outcome)} | do({', '.join(self.treatment)}))"

    def __str__(self) -> str:
        sets = []
        for label, vals in (("adjustment", self.adjustment), ("mediators", self.mediators),
                            ("instruments", self.instruments), ("conditioning", self.conditioning)):
            if vals:
                sets.append(f"{label} {{{', '.join(vals)}}}")
        head = f"[{self.name}] {self.kind}" + (f" with {'; '.join(sets)}" if sets else "")
        lines = [head, f"  {self.target_text()} = {self.formula()}"]
        lines += [f"  assumes: {a}" for a in self.assumptions]
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    # ---------------------------------------------------------------- evaluation
    def evaluate(self, joint: pd.DataFrame) -> pd.DataFrame:
        """P(outcome | do(treatment)) for every treatment value, from a discrete joint.

        ``joint`` has one column per observed variable and a probability column ``p``.
        The result has the treatment and outcome columns and ``p``.
        """
        if self.expression is None:
            raise IdentificationError(
                f"estimand {self.name!r} is an instrumental-variable estimand, identified only under a "
                "linear structural model; it has no nonparametric formula to evaluate on a joint distribution")
        out = self.expression.evaluate(joint)
        cols = list(self.treatment) + list(self.outcome)
        # A treatment that is not an ancestor of the outcome drops out of the formula:
        # the answer is the same for each of its values, so broadcast over them.
        for t in self.treatment:
            if t not in out.columns:
                if t not in joint.columns:
                    raise IdentificationError(f"estimand {self.name!r}: the joint has no column {t!r}")
                levels = pd.DataFrame({t: sorted(joint[t].unique())})
                out = out.merge(levels, how="cross")
        missing = [c for c in cols if c not in out.columns]
        if missing:
            raise IdentificationError(f"estimand {self.name!r}: evaluation lost the columns {missing}")
        return out[cols + ["p"]].sort_values(cols).reset_index(drop=True)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "treatment": list(self.treatment),
            "outcome": list(self.outcome),
            "expression": None if self.expression is None else self.expression.to_dict(),
            "formula": self.formula(), "latex": self.to_latex(),
            "assumptions": list(self.assumptions), "adjustment": list(self.adjustment),
            "mediators": list(self.mediators), "instruments": list(self.instruments),
            "conditioning": list(self.conditioning), "parametric": self.parametric, "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Estimand:
        expr = d.get("expression")
        return cls(
            name=d["name"], kind=d["kind"], treatment=tuple(d["treatment"]), outcome=tuple(d["outcome"]),
            expression=None if expr is None else Formula.from_dict(expr),
            assumptions=tuple(d.get("assumptions", ())), adjustment=tuple(d.get("adjustment", ())),
            mediators=tuple(d.get("mediators", ())), instruments=tuple(d.get("instruments", ())),
            conditioning=tuple(d.get("conditioning", ())), parametric=bool(d.get("parametric", False)),
            note=d.get("note", ""),
        )


def backdoor_expression(treatment: Sequence[str], outcome: Sequence[str], z: Sequence[str]) -> Formula:
    """Σ_z P(y | x, z) P(z) — the adjustment formula (Pearl 2009, thm 3.3.2; Shpitser et al. 2010)."""
    y, x, z = tuple(outcome), tuple(treatment), tuple(sorted(z))
    if not z:
        return Prob(y, x)
    return Sum(z, Product((Prob(y, x + z), Prob(z))))


def frontdoor_expression(treatment: Sequence[str], outcome: Sequence[str], m: Sequence[str]) -> Formula:
    """Σ_m P(m | x) Σ_x' P(y | m, x') P(x') — the front-door formula (Pearl 2009, thm 3.3.4).

    The inner Σ over the treatment's names binds them (the x' of the formula); the outer
    P(m | x) refers to the free treatment, as sums scope their variables.
    """
    y, x, m = tuple(outcome), tuple(treatment), tuple(sorted(m))
    inner = Sum(x, Product((Prob(y, m + x), Prob(x))))
    return Sum(m, Product((Prob(m, x), inner)))
