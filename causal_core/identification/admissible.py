"""Which estimators each kind of strategy admits, and which of them ``estimators: auto`` runs.

This is the one table of that decision. The plan's ``estimators`` field, every
estimator's ``check_design`` and the study's estimator selection read it. It lives in
identification because a strategy's kind is an identification notion and the table
names estimators by their registry names only: ``causal_core.estimators`` and
``causal_core.study`` import it from below, and identification imports neither of them
(the plan is built before any estimator is chosen, so an import the other way would
make identification depend on every estimator module and invite a cycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from causal_core.errors import IdentificationError


@dataclass(frozen=True)
class Admissible:
    """The estimators a kind of strategy admits, in the order plans list them, and the
    ones ``auto`` runs on it, in order (a subset of the admitted ones)."""

    estimators: tuple[str, ...]
    auto: tuple[str, ...]

    def __post_init__(self) -> None:
        extra = [name for name in self.auto if name not in self.estimators]
        if extra:
            raise IdentificationError(f"auto picks {extra}, which the strategy does not admit ({self.estimators})")


ADMISSIBLE: Mapping[str, Admissible] = MappingProxyType({
    "backdoor": Admissible(("ols", "ipw", "aipw", "stratification", "id_plugin"), auto=("ols", "aipw")),
    "frontdoor": Admissible(("frontdoor", "id_plugin"), auto=("frontdoor",)),
    "iv": Admissible(("iv",), auto=("iv",)),
    "id": Admissible(("id_plugin",), auto=("id_plugin",)),
})


def admissible(kind: str) -> Admissible:
    """The row of the table for a strategy kind; an unknown kind lists the known ones."""
    try:
        return ADMISSIBLE[kind]
    except KeyError:
        raise IdentificationError(f"unknown strategy kind {kind!r}; kinds: {', '.join(ADMISSIBLE)}") from None


def kinds_admitting(estimator: str) -> frozenset[str]:
    """The strategy kinds on which the estimator registered as ``estimator`` may run."""
    return frozenset(kind for kind, row in ADMISSIBLE.items() if estimator in row.estimators)
