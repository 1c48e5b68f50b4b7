"""Which estimators a study runs, and on which strategy of its plan.

``estimators: auto`` expands to the ``auto`` column of the admissibility table
(:mod:`causal_core.identification.admissible`) for the plan's default strategy, less the
estimators that need a binary treatment when the study's treatment may not be binary,
and less those that cannot fit the study's ``fixed_effects``
(:func:`~causal_core.study.design.fixed_effect_obstacle`). Every estimator then runs on the
default strategy when it admits it, else on the plan's first strategy that does; one named
in the spec that cannot fit the fixed effects there is not estimated, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from causal_core.estimators import get_estimator
from causal_core.identification.admissible import admissible
from causal_core.identification.estimand import Estimand
from causal_core.identification.plan import EstimandPlan
from causal_core.spec import EstimatorSpec, StudySpec
from causal_core.study.design import fixed_effect_obstacle, treatment_fits


@dataclass(frozen=True)
class Selection:
    """An estimator of the study and the strategy it runs on; without a strategy, the
    ``reason`` why none of the plan's strategies admits it."""

    estimator: EstimatorSpec
    strategy: Estimand | None
    reason: str = ""

    def __post_init__(self) -> None:
        if (self.strategy is None) == (not self.reason):
            raise ValueError(f"{self.estimator.name}: a selection has a strategy or a reason, exactly one")

    @property
    def name(self) -> str:
        return self.estimator.name


def binary_by_design(spec: StudySpec) -> bool:
    """Whether the study's treatment is binary before any data is read: a contrast of two
    values (treatment_values) or an experiment's arms are coded 0/1."""
    return not spec.treatment_values.natural or spec.design == "experiment"


def auto_estimators(spec: StudySpec, plan: EstimandPlan) -> tuple[str, ...]:
    """What ``auto`` runs for this plan and treatment (empty when nothing is identified)."""
    if not plan.identifiable:
        return ()
    binary = binary_by_design(spec)
    return tuple(n for n in admissible(plan.strategy().kind).auto if treatment_fits(get_estimator(n), binary)
                 and fixed_effect_obstacle(spec, plan.strategy(), get_estimator(n)) is None)


def choose_estimators(spec: StudySpec, plan: EstimandPlan) -> tuple[Selection, ...]:
    """The study's estimators in the spec's order (``auto`` expanded, repeats dropped),
    each paired with the strategy it runs on."""
    default = plan.strategy() if plan.identifiable else None
    wanted: list[EstimatorSpec] = []
    for es in spec.estimators:
        wanted += [EstimatorSpec(n) for n in auto_estimators(spec, plan)] if es.name == "auto" else [es]
    out = []
    for es in dict.fromkeys(wanted):
        if default is not None and es.name in plan.estimators_for(default.name):
            strategy = default
        else:
            strategy = next((s for s in plan.strategies if es.name in plan.estimators_for(s.name)), None)
        obstacle = None if strategy is None else fixed_effect_obstacle(spec, strategy, get_estimator(es.name))
        if strategy is None:
            out.append(Selection(es, None, f"no strategy in the plan admits {es.name}; strategies: "
                                           f"{[s.name for s in plan.strategies]}"))
        else:
            out.append(Selection(es, strategy) if obstacle is None else Selection(es, None, obstacle))
    return tuple(out)
