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
from causal_core.identification.admissible import kinds_admitting
from causal_core.spec.types import TARGETS



@dataclass(frozen=True)
class ModelRoles:
    """What an estimator needs to know about the prepared frame: which columns play which
    role in the fit, and what the fit estimates (not the study's ``design``, which says
    whether it is an experiment).

    All names are numeric columns of the engine's frame. ``treatment`` is coded 0/1 for
    binary estimators (1 = treated). ``covariates`` are the model terms of the
    adjustment set after ``encode`` (one-hot columns, polynomial terms...).
    ``variables`` and ``expression`` serve estimators that fit on the raw discrete
    variables (``uses_raw_variables``): those variables and the estimand expression (a
    ``causal_core.formulas.formula.Formula``).
    ``labels`` maps frame columns to the names users wrote, so errors name those, and
    ``sources`` maps a covariate column to the graph variable it encodes.
    ``fixed_effects`` holds ``(column, levels)`` pairs: level-coded columns (0 .. levels - 1)
    of many-level categories that estimators which absorb them (``absorbs_fixed_effects``)
    take out by the within transformation instead of as covariates.

    ``strategy`` names the plan's strategy the fit serves (``backdoor.optimal``) and
    ``kind`` its kind (``backdoor``; by default the strategy's own name, as in a design
    built by hand), which decides whether the estimator admits it. ``contrast`` is the
    study's text for the compared treatment values and ``segment`` the slice of rows:
    the result carries them as given (an empty ``contrast`` lets the estimator name it).
    """

    treatment: str
    outcome: str
    covariates: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    target: str = "ate"
    strategy: str = "backdoor"
    kind: str = ""
    metric: str = ""
    clustered: bool = False
    variables: tuple[str, ...] = ()
    expression: Any = None
    treated_value: Any = 1
    control_value: Any = 0
    labels: tuple[tuple[str, str], ...] = ()
    sources: tuple[tuple[str, str], ...] = ()
    fixed_effects: tuple[tuple[str, int], ...] = ()
    contrast: str = ""
    segment: str = "all"

    def label(self, name: str) -> str:
        """The user's name for a frame column (``__x0`` -> ``age``), for error messages."""
        return dict(self.labels).get(name, name)

    def __post_init__(self) -> None:
        if self.target not in TARGETS and self.target != "late":
            raise EstimationError(f"target {self.target!r} is unknown; expected one of {TARGETS}")
        if not self.metric:
            object.__setattr__(self, "metric", self.outcome)
        if not self.kind:
            object.__setattr__(self, "kind", self.strategy)
        for column, levels in self.fixed_effects:
            if not (isinstance(levels, int) and levels >= 1) or column in (self.treatment, self.outcome):
                raise EstimationError(f"fixed effect {column!r}: expected a level-coded column other than the "
                                      f"treatment and outcome, with at least 1 level, got {levels!r}")
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
    """Base class. Subclasses set the class attributes and implement :meth:`fit`.

    ``binary_treatment``: the estimator needs a treatment coded 0/1. ``uses_raw_variables``:
    it fits on the graph's discrete variables as stored (string ones level-coded), not on
    the encoded model terms, so its design names the raw treatment and outcome columns.
    ``absorbs_fixed_effects``: it takes the study's ``fixed_effects`` out by the within
    transformation (the others need those variables encoded as covariates).
    ``opens_with_arm_gram``: its first pass is the per-bucket, per-arm Gram of
    ``(1, d, x, y)`` (:func:`causal_core.estimators.linear.arm_gram_sums`), which a Spark
    run sums while it prepares the frame when this estimator is among its users.
    ``one_pass_after_opening``: an unclustered fit reads the rows once more after that
    opening pass, as a rule (``ols``: its variance pass), so a frame that only it reads needs
    no cache.
    Which strategy kinds an estimator admits is not a class attribute: the one table in
    :mod:`causal_core.identification.admissible` says it (:meth:`admitted_kinds`).
    """

    name: ClassVar[str] = ""
    targets: ClassVar[frozenset[str]] = frozenset({"ate"})
    binary_treatment: ClassVar[bool] = False
    uses_raw_variables: ClassVar[bool] = False
    absorbs_fixed_effects: ClassVar[bool] = False
    opens_with_arm_gram: ClassVar[bool] = False
    one_pass_after_opening: ClassVar[bool] = False

    def fit(self, engine, design: ModelRoles) -> Estimator:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def admitted_kinds(cls) -> frozenset[str]:
        """The strategy kinds this estimator may run on (from the admissibility table)."""
        return kinds_admitting(cls.name)

    def check_design(self, design: ModelRoles) -> None:
        kinds = self.admitted_kinds()
        if design.kind not in kinds:
            raise EstimationError(
                f"estimator {self.name!r} does not support the {design.kind!r} strategy "
                f"(it supports {sorted(kinds)})")
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
    declared = getattr(cls, "strategies", None)
    if declared is not None and frozenset(declared) != cls.admitted_kinds():
        # The table is the one home of admissibility; a class attribute may only repeat it.
        raise TypeError(f"estimator {cls.name!r} declares strategies {sorted(declared)}, but the admissibility "
                        f"table (causal_core.identification.admissible) admits it for {sorted(cls.admitted_kinds())}")
    ESTIMATORS[cls.name] = cls
    return cls


def get_estimator(name: str) -> type[Estimator]:
    """The estimator class registered as ``name``; an unknown name lists the valid ones."""
    import causal_core.estimators  # noqa: F401  (fills the registry)

    try:
        return ESTIMATORS[name]
    except KeyError:
        raise EstimationError(f"unknown estimator {name!r}; valid names: {', '.join(sorted(ESTIMATORS))}") from None
