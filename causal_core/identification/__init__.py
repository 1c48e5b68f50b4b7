"""Identification: from a graph, a treatment and an outcome to an estimand plan —
back-door adjustment sets (minimal, optimal, canonical), front-door sets, instruments and
the general ID algorithm, each an :class:`Estimand`; :func:`identify` gathers them."""

from causal_core.identification.estimand import Estimand
from causal_core.identification.plan import EstimandPlan, identify

__all__ = ["Estimand", "EstimandPlan", "identify"]
