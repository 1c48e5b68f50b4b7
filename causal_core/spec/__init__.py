"""Study specs: the YAML a user writes, parsed once into frozen, validated values."""

from causal_core.spec.parse import load_spec, parse_spec
from causal_core.spec.types import (
    DATA_FIELDS, DESIGNS, FORMATS, NULL_POLICIES, REFUTERS, SCHEDULE_PRESETS, TARGETS, TOP_FIELDS, BootstrapSpec,
    DataSpec, EstimatorSpec, StudySpec, TreatmentValues, load_yaml,
)

__all__ = [
    "DATA_FIELDS", "DESIGNS", "FORMATS", "NULL_POLICIES", "REFUTERS", "SCHEDULE_PRESETS", "TARGETS", "TOP_FIELDS",
    "BootstrapSpec", "DataSpec", "EstimatorSpec", "StudySpec", "TreatmentValues", "load_spec", "load_yaml",
    "parse_spec",
]
