"""Refuter contract and registry: a refuter name in a spec's ``refuters:`` maps to one class.

Refuters follow the estimators' contract (:mod:`causal_core.estimators.base`): a
keyword-only ``__init__`` that only stores its options (the spec parser checks a spec's
options against that signature before Spark starts), and a pure method that turns the
moment summaries an adapter collected into a :class:`Refutation`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from causal_core.errors import SpecError
from causal_core.json_values import json_native

REFUTER_CLASSES: dict[str, type[Refuter]] = {}


@dataclass(frozen=True)
class Refutation:
    """One refutation of one estimate: which refuter challenged which estimator's estimate
    of which metric on which segment, the effect it implies (``new_effect``), its p-value,
    whether the estimate survived (``passed``; None when the refuter has no rule to apply)
    and the refuter's own statistics (``details``)."""

    refuter: str
    estimator: str
    metric: str
    segment: str
    new_effect: float | None = None
    p_value: float | None = None
    passed: bool | None = None
    details: Any = field(default_factory=dict)

    def to_dict(self) -> dict:
        return json_native({"refuter": self.refuter, "estimator": self.estimator, "metric": self.metric,
                            "segment": self.segment, "new_effect": self.new_effect, "p_value": self.p_value,
                            "passed": self.passed, "details": self.details})


@dataclass(frozen=True)
class FittedEstimate:
    """What a refuter may read of one estimate: the estimator's name and its fitted object
    (``bucket_statistic_`` for every estimator, ``layout_``/``grouped_`` for ols), the
    estimate, the Gram summary of the additive linear model (``linear_gram``, for ols), the
    seed the refuter's simulations draw from, and — for a refuter that needs a pass of its
    own — the moment engine and the design (:class:`~causal_core.estimators.base.ModelRoles`)
    the estimate was fitted on."""

    estimator: str
    metric: str
    segment: str
    estimate: float
    fitted: Any = None
    linear_gram: Any = None
    seed: np.random.SeedSequence = field(default_factory=lambda: np.random.SeedSequence(0))
    engine: Any = None
    design: Any = None

    def rng(self, refuter: str) -> np.random.Generator:
        """The generator of ``refuter``'s simulations: a child of the estimate's seed keyed on
        the refuter's name, so refuters draw independently and reruns draw the same."""
        key = zlib.crc32(refuter.encode())
        return np.random.default_rng(np.random.SeedSequence(self.seed.entropy,
                                                            spawn_key=(*self.seed.spawn_key, key)))


class Refuter:
    """Base class. ``refutes``: the estimators whose estimates it challenges (None: every
    estimator). ``graph_variable_options``: options whose values must be observed graph
    variables (the spec parser checks them). ``study_level``: the refuter challenges the
    study's graph, not an estimate (graph validation), and runs once per study.
    ``reads_rows``: it makes passes of its own over the estimate's frame (most refuters
    re-solve from the moments the fit holds and make none)."""

    name: ClassVar[str] = ""
    refutes: ClassVar[frozenset[str] | None] = frozenset()
    graph_variable_options: ClassVar[tuple[str, ...]] = ()
    study_level: ClassVar[bool] = False
    reads_rows: ClassVar[bool] = False

    def applies_to(self, estimator: str) -> bool:
        return not self.study_level and (self.refutes is None or estimator in self.refutes)

    def refute_fit(self, fit: FittedEstimate) -> Refutation:
        """The refutation of one fitted estimate; by default :meth:`refute` on its linear Gram."""
        return self.refute(fit.linear_gram, estimator=fit.estimator, metric=fit.metric, segment=fit.segment)

    def refute(self, model: Any, *, estimator: str, metric: str, segment: str) -> Refutation:
        """The refutation of ``estimator``'s estimate of ``metric`` on ``segment`` from the
        moment summary ``model`` (a refuter names the summary it needs)."""
        raise NotImplementedError  # pragma: no cover - abstract


def register_refuter(cls: type[Refuter]) -> type[Refuter]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or cls.name in REFUTER_CLASSES:
        raise ValueError(f"refuter name {cls.name!r} is empty or registered twice")
    REFUTER_CLASSES[cls.name] = cls
    return cls


def get_refuter(name: str) -> type[Refuter]:
    """The refuter class registered under ``name``; an unknown name lists the valid ones."""
    _load()
    try:
        return REFUTER_CLASSES[name]
    except KeyError:
        valid = ", ".join(sorted(REFUTER_CLASSES))
        raise SpecError(f"refuters.{name}: unknown refuter; valid names: {valid}",
                        ((f"refuters.{name}", f"unknown refuter; valid names: {valid}"),)) from None


def refuter_names() -> tuple[str, ...]:
    """The names of the refuters that are built, sorted."""
    _load()
    return tuple(sorted(REFUTER_CLASSES))


def _load() -> None:
    # The refuter modules register themselves on import.
    import causal_core.refuters.graph_refuter  # noqa: F401
    import causal_core.refuters.marginal_sensitivity  # noqa: F401
    import causal_core.refuters.ovb_refuter  # noqa: F401
    import causal_core.refuters.simulation  # noqa: F401
