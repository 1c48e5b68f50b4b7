"""The frozen values a study spec parses into, and the vocabularies its fields take.

:mod:`causal_core.spec` builds them from YAML and checks every field; the rest of
whybatch only reads them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from causal_core.graph.causal_graph import CausalGraph
from causal_core.spec.experiment import ExperimentSpec

# The effects a study may target (treated and control populations, or all rows): the
# spec's ``target`` field and every estimator's ``targets`` take their names from here.
TARGETS = ("ate", "att", "atc")

TOP_FIELDS = (
    "name", "description", "data", "graph", "treatment", "outcome", "treatment_values", "design",
    "derived", "encode", "fixed_effects", "target", "estimators", "bootstrap", "refuters", "segments", "checks",
    "tracking", "schedule", "adjustment", "seed", "metrics", "expected_split", "multiple_testing", "sequential",
    "readout",
)
DATA_FIELDS = ("table", "path", "format", "partition_column", "unit_id", "where", "nulls", "buckets", "exact_sums")
DESIGNS = ("observational", "experiment")
FORMATS = ("parquet", "csv", "json", "orc", "delta")
NULL_POLICIES = ("drop", "fail")
REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "dummy_outcome", "unobserved_common_cause",
            "sensitivity", "marginal_sensitivity", "graph_validation")
SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly")
class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only true/false (any case form) are
    booleans, so ``treated: yes`` or ``arms: [on, off]`` stay the text the user wrote
    (YAML 1.1 reads yes/no/on/off/y/n as booleans)."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse YAML as the user wrote it (YAML 1.2 booleans; see :class:`_Yaml12Loader`)."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DataSpec:
    """Where the rows come from: a catalog ``table`` or a ``path`` with a ``format``."""

    table: str | None = None
    path: str | None = None
    format: str = "parquet"
    partition_column: str | None = None
    unit_id: str | None = None
    where: str | None = None
    nulls: str = "drop"
    buckets: int = 1000
    exact_sums: bool = False  # bit-identical sums for any partitioning, at several times the cost


@dataclass(frozen=True)
class TreatmentValues:
    """Which treatment values are compared: ``treated`` vs ``control``, or many ``arms``."""

    treated: Any = None
    control: Any = None
    arms: tuple[Any, ...] = ()

    @property
    def natural(self) -> bool:
        """True when no values were given: the treatment enters as its own number (0/1 or dose)."""
        return self.treated is None and self.control is None and not self.arms

    def contrasts(self) -> tuple[tuple[Any, Any], ...]:
        """(treated, control) pairs: one, or one per non-control arm; (1, 0) when natural."""
        if self.natural:
            return ((1, 0),)
        if self.arms:
            return tuple((a, self.control) for a in self.arms if a != self.control)
        return ((self.treated, self.control),)


@dataclass(frozen=True)
class BootstrapSpec:
    replicates: int = 1000
    seed: int = 0
    kind: str = "poisson"


@dataclass(frozen=True)
class EstimatorSpec:
    """An estimator name and its options (kept as sorted key/value pairs so the spec hashes)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def options_dict(self) -> dict[str, Any]:
        return dict(self.options)


@dataclass(frozen=True)
class StudySpec:
    """A parsed, validated study. Build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    graph: CausalGraph
    treatment: tuple[str, ...]
    outcome: tuple[str, ...]
    data: DataSpec
    description: str = ""
    design: str = "observational"
    treatment_values: TreatmentValues = TreatmentValues()
    derived: tuple[tuple[str, str], ...] = ()
    encode: tuple[tuple[str, Any], ...] = ()
    fixed_effects: tuple[str, ...] = ()  # many-level categories that ols and iv absorb
    target: str = "ate"
    estimators: tuple[EstimatorSpec, ...] = (EstimatorSpec("auto"),)
    bootstrap: BootstrapSpec = BootstrapSpec()
    refuters: tuple[EstimatorSpec, ...] = ()
    segments: tuple[str, ...] = ()
    checks: tuple[tuple[str, Any], ...] = ()
    tracking: str | None = None
    schedule: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    experiment: ExperimentSpec | None = None  # how a study with metrics is read out
    source: str = field(default="", compare=False)
    raw: str = field(default="", compare=False, repr=False)

    def spec_hash(self) -> str:
        """A stable hash of the spec's content (not of its file path or comments)."""
        return hashlib.sha256(json.dumps(load_yaml(self.raw) if self.raw else self.name,
                                         sort_keys=True, default=str).encode()).hexdigest()[:16]

    def encoding(self, variable: str) -> Any:
        return dict(self.encode).get(variable, "as_is")

    def ignored_fields(self) -> tuple[str, ...]:
        """Warnings for fields that are accepted and checked but not acted on yet: the
        refuters that are not registered, by name."""
        from causal_core.refuters.registry import refuter_names

        unbuilt = [r.name for r in self.refuters if r.name not in refuter_names()]
        return (f"refuters: {', '.join(unbuilt)}: not built yet; ignored",) if unbuilt else ()
