"""A study's plans: one estimand plan per outcome metric of a :class:`StudySpec`."""

from __future__ import annotations

from causal_core.identification.plan import EstimandPlan, identify
from causal_core.spec import StudySpec


def plan_study(spec: StudySpec) -> dict[str, EstimandPlan]:
    """Identify P(metric | do(treatment)) for each outcome metric of the study.

    Each metric gets its own plan because its optimal adjustment set depends on its own
    parents (a pre-period covariate of revenue need not enter the conversion model).
    """
    return {
        metric: identify(spec.graph, spec.treatment, metric, include=spec.include, exclude=spec.exclude)
        for metric in spec.outcome
    }
