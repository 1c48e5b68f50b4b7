"""The ``graph_validation`` refuter: the study's graph tested against the interval's data.

It challenges the graph rather than an estimate, so it runs once per study
(``study_level``): every implication of the graph (:func:`causal_core.graph.implications.
implied_independences`) among observed variables is tested from one pass — Fisher's z from
the Gram matrix of the numeric variables, the G² test from counts where all the variables
of an implication are text — and the p-values are corrected together
(:mod:`causal_core.refuters.graph_validation`). An implication that mixes text and numeric
variables is listed as untested, with the reason. The graph passes when the correction
rejects no implication.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from causal_core.graph.causal_graph import CausalGraph
from causal_core.graph.implications import Independence, implied_independences
from causal_core.refuters.graph_validation import Covariance, _check_options, validate_graph
from causal_core.refuters.registry import Refuter, register_refuter


@register_refuter
class GraphValidation(Refuter):
    """Test the graph's implied independences; ``alpha`` and ``method`` (a statsmodels
    ``multipletests`` method, Holm by default) set the family-wise correction."""

    name: ClassVar[str] = "graph_validation"
    refutes: ClassVar[frozenset[str] | None] = frozenset()
    study_level: ClassVar[bool] = True

    def __init__(self, *, alpha: float = 0.05, method: str = "holm") -> None:
        self.alpha = alpha
        self.method = method

    def check(self) -> None:
        _check_options(self.alpha, self.method)

    @staticmethod
    def implications(graph: CausalGraph) -> tuple[Independence, ...]:
        return implied_independences(graph)

    def validate(self, implications: Sequence[Independence], numeric: Sequence[str], gram: np.ndarray | None,
                 counts: pd.DataFrame | None, text: Sequence[str]) -> dict:
        """The validation as results.json stores it: ``gram`` is the Gram matrix of
        ``(1, *numeric)`` over rows with none of them null, ``counts`` a count per
        combination of the ``text`` variables (column ``n``)."""
        numeric, text = set(numeric), set(text)
        testable, untested = [], []
        for imp in implications:
            wanted = {imp.x, imp.y, *imp.given}
            if wanted <= numeric or wanted <= text:
                testable.append(imp)
            else:
                mixed = sorted(wanted - numeric) if wanted & numeric else sorted(wanted)
                untested.append({"implication": imp.to_dict(), "text": str(imp),
                                 "reason": f"mixes text and numeric variables ({', '.join(mixed)} are text)"})
        covariance = Covariance.from_gram(gram, ("1", *sorted(numeric))) if gram is not None and numeric else None
        result = validate_graph(testable, covariance=covariance, counts=counts, alpha=self.alpha, method=self.method)
        return {**result.to_dict(), "untested": untested, "implications": len(implications)}


__all__ = ("GraphValidation",)
