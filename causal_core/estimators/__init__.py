"""Estimators: a registry from name to class; importing this package fills it."""

from causal_core.estimators.base import ESTIMATORS, BootstrapOptions, ModelRoles, Estimator, get_estimator, register

__all__ = ["ESTIMATORS", "BootstrapOptions", "ModelRoles", "Estimator", "get_estimator", "register"]

# Importing an estimator module registers it.
from causal_core.estimators import frontdoor_linear, iv, ols  # noqa: E402,F401
# The propensity-based estimators and the discrete plug-in.
from causal_core.estimators import aipw, id_plugin, ipw, stratification  # noqa: E402,F401
