"""Estimators: a registry from name to class; importing this package fills it."""

from causal_core.estimators.base import ESTIMATORS, BootstrapOptions, Design, Estimator, get_estimator, register

__all__ = ["ESTIMATORS", "BootstrapOptions", "Design", "Estimator", "get_estimator", "register"]
