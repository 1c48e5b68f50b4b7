"""The Gram summary of a fitted additive linear model, as the linear refuters read it.

A :class:`LinearModelGram` is the Gram matrix ``sum v v'`` of ``v = (1, treatment,
covariates..., outcome)`` over the rows a fit kept: everything the omitted-variable-bias
sensitivity of Cinelli & Hazlett (2020) needs (:mod:`causal_core.refuters.ovb_refuter`).
With absorbed fixed effects it is the within Gram (each column less its group mean, the
intercept's row ``(n, 0, ..., 0)``) and ``absorbed`` counts the G - 1 absorbed intercepts
beyond the constant, which the residual degrees of freedom lose (Frisch-Waugh-Lovell: the
within regression has the coefficients and residuals of the regression with G dummies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from causal_core.errors import EstimationError


def gram_names(treatment: str, covariates: Sequence[str], outcome: str) -> tuple[str, ...]:
    """The order of a :class:`LinearModelGram`'s columns: intercept, treatment, covariates, outcome."""
    return ("1", treatment, *covariates, outcome)


@dataclass(frozen=True)
class LinearModelGram:
    """The Gram matrix ``sum v v'`` of ``v = (1, treatment, covariates..., outcome)`` in ``names``
    order, with ``sources`` mapping a covariate column to the graph variable it encodes,
    ``labels`` mapping columns to the names users wrote, and ``absorbed`` the number of
    absorbed fixed-effect intercepts beyond the constant (G - 1; 0 without fixed effects)."""

    gram: np.ndarray
    names: tuple[str, ...]
    treatment: str
    outcome: str
    covariates: tuple[str, ...]
    sources: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    absorbed: int = 0

    def __post_init__(self) -> None:
        expected = gram_names(self.treatment, self.covariates, self.outcome)
        if tuple(self.names) != expected or np.shape(self.gram) != (len(expected), len(expected)):
            raise EstimationError(f"a Gram matrix over {expected} needs those names in that order and a "
                                  f"{len(expected)} x {len(expected)} matrix, got {tuple(self.names)}, "
                                  f"{np.shape(self.gram)}")
        if not (isinstance(self.absorbed, (int, np.integer)) and self.absorbed >= 0):
            raise EstimationError(f"absorbed must be a count of absorbed intercepts >= 0, got {self.absorbed!r}")

    def terms_of(self, variable: str) -> tuple[str, ...]:
        """The covariate columns that encode graph variable ``variable``."""
        sources = dict(self.sources)
        return tuple(c for c in self.covariates if sources.get(c, dict(self.labels).get(c, c)) == variable)
