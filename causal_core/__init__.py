"""whybatch's pure core: causal graphs, identification, estimand plans, study specs, statistics.

This package never imports pyspark, mlflow, airflow or great_expectations.
"""

from causal_core.errors import (
    DataCheckError,
    EstimationError,
    GraphError,
    IdentificationError,
    ResultsError,
    SpecError,
    WhybatchError,
)
from causal_core.graph import CausalGraph

__all__ = [
    "CausalGraph", "DataCheckError", "Estimand", "EstimandPlan", "EstimationError", "GraphError",
    "IdentificationError", "ResultsError", "SpecError", "WhybatchError", "identify", "load_spec",
]


def __getattr__(name: str):
    # Lazy so that `import causal_core` stays cheap (the CLI imports it at start-up).
    if name in ("identify", "EstimandPlan"):
        from causal_core.identification import plan

        return getattr(plan, name)
    if name == "Estimand":
        from causal_core.identification.estimand import Estimand

        return Estimand
    if name == "load_spec":
        from causal_core.spec import load_spec

        return load_spec
    raise AttributeError(f"module 'causal_core' has no attribute {name!r}")
