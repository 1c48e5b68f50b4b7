"""Estimator contract and registry.

Estimators follow the scikit-learn contract: a keyword-only ``__init__`` that only stores
its options, ``fit(engine, design)`` that returns ``self``, and learned attributes ending
in ``_`` (``result_``). They see the data only through a :class:`MomentEngine`, so the
same code runs on pandas and on Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from causal_core.errors import EstimationError

TARGETS = ("ate", "att", "atc")


@dataclass(frozen=True)
class Design:
    """What an estimator needs to know about the prepared frame.

    All names are numeric columns of the engine's frame. ``treatment`` is coded 0/1 for
    binary estimators (1 = treated). ``covariates`` are the model terms of the
    adjustment set after ``encode`` (one-hot columns, polynomial terms...).
    ``variables`` and ``expression`` serve ``id_plugin``: the discrete observed
    variables and the estimand expression (a ``causal_core.expression.Expression``).
    ``labels`` maps frame columns to the names users wrote, so errors name those.
    """

    treatment: str
    outcome: str
    covariates: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    target: str = "ate"
    strategy: str = "backdoor"
    metric: str = ""
    clustered: bool = False
    variables: tuple[str, ...] = ()
    expression: Any = None
    treated_value: Any = 1
    control_value: Any = 0
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, name: str) -> str:
        """The user's name for a frame column (``__x0`` -> ``age``), for error messages."""
        return dict(self.labels).get(name, name)

    def __post_init__(self) -> None:
        if self.target not in TARGETS and self.target != "late":
            raise EstimationError(f"target {self.target!r} is unknown; expected one of {TARGETS}")
        if not self.metric:
            object.__setattr__(self, "metric", self.outcome)
        overlap = set(self.covariates) & {self.treatment, self.outcome}
        if overlap:
            raise EstimationError(f"covariates must not include the treatment or outcome: {sorted(overlap)}")


@dataclass(frozen=True)
class BootstrapOptions:
    """``replicates`` bucket-bootstrap draws of ``kind`` weights from ``seed``; 0 turns it off."""

    replicates: int = 1000
    kind: str = "poisson"
    seed: int = 0
    level: float = 0.95
    interval: str = "percentile"  # or "normal"


class Estimator:
    """Base class. Subclasses set the class attributes and implement :meth:`fit`."""

    name: ClassVar[str] = ""
    strategies: ClassVar[frozenset[str]] = frozenset()
    targets: ClassVar[frozenset[str]] = frozenset({"ate"})
    binary_treatment: ClassVar[bool] = False

    def fit(self, engine, design: Design) -> Estimator:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_design(self, design: Design) -> None:
        if design.strategy not in self.strategies:
            raise EstimationError(
                f"estimator {self.name!r} does not support the {design.strategy!r} strategy "
                f"(it supports {sorted(self.strategies)})")
        if design.target not in self.targets:
            raise EstimationError(
                f"estimator {self.name!r} does not estimate the {design.target.upper()} "
                f"(it estimates {sorted(t.upper() for t in self.targets)})")


ESTIMATORS: dict[str, type[Estimator]] = {}


def register(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: add an estimator to the registry under its ``name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.name in ESTIMATORS and ESTIMATORS[cls.name] is not cls:
        raise TypeError(f"estimator name {cls.name!r} is registered twice")
    ESTIMATORS[cls.name] = cls
    return cls


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``; an unknown name lists the valid ones."""
    import causal_core.estimators  # noqa: F401  (fills the registry)

    try:
        return ESTIMATORS[name]
    except KeyError:
        raise EstimationError(f"unknown estimator {name!r}; valid names: {', '.join(sorted(ESTIMATORS))}") from None
