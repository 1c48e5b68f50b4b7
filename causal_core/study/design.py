"""From a plan's strategy to an estimator's :class:`ModelRoles`, engine-free.

A strategy asks the prepared frame for variables in roles (:class:`ModelRequest`);
preparation answers with the frame's column names (:class:`FrameColumns`); the design an
estimator fits is built from the two. An estimator that fits on the raw discrete
variables (``uses_raw_variables``) gets the raw columns instead of the encoded model
terms: that is data on the estimator class, read here, not a test of its name.

Fixed effects (the spec's ``fixed_effects``) that a strategy adjusts for (a back-door
adjustment set, an IV conditioning set) reach the frame as level codes. An estimator that
absorbs them (``absorbs_fixed_effects``: ols and iv) gets them as ``ModelRoles.fixed_effects``,
without covariate terms for them; it absorbs one variable, so a strategy that needs two is not
estimated by it. The other estimators on model terms can model a fixed-effect variable only
through its ``encode`` entry (``categorical`` or a list of terms): without one they are not
estimated, and say why (:func:`fixed_effect_obstacle`). Estimators on the raw discrete
variables (``id_plugin``) stratify on every level and are not affected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from causal_core.estimators.base import ModelRoles, Estimator
from causal_core.identification.estimand import Estimand
from causal_core.spec import StudySpec


@dataclass(frozen=True)
class ModelRequest:
    """Which graph variables a fit needs, and in which role. Estimators whose requests are
    equal share one prepared frame."""

    covariates: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()


# The roles each kind of strategy gives its variables in an encoded model frame.
_ROLES: Mapping[str, Callable[[Estimand], ModelRequest]] = {
    "backdoor": lambda s: ModelRequest(covariates=s.adjustment),
    "frontdoor": lambda s: ModelRequest(mediators=s.mediators),
    "iv": lambda s: ModelRequest(covariates=s.conditioning, instruments=s.instruments),
    "id": lambda s: ModelRequest(),
}


def model_request(strategy: Estimand, estimator: type[Estimator]) -> ModelRequest:
    """The frame an estimator needs for a strategy: the discrete variables of the estimand
    (with treatment and outcome) for one that fits on raw variables, else the strategy's
    variables in their roles."""
    if estimator.uses_raw_variables:
        variables = set(strategy.expression.mentioned_variables()) if strategy.expression is not None else set()
        return ModelRequest(discrete=tuple(sorted(variables | set(strategy.treatment) | set(strategy.outcome))))
    return _ROLES[strategy.kind](strategy)


@dataclass(frozen=True)
class FrameColumns:
    """A prepared frame as estimators see it: its numeric columns by role (``treatment``
    and ``outcome`` coded, ``covariates``, ``mediators``, ``instruments`` the encoded
    terms, ``discrete`` the raw discrete variables), ``labels`` from column to the
    user's name, the compared treatment values, and what preparation learned of the
    coded treatment: whether it is binary 0/1 and a few of its values."""

    treatment: str
    outcome: str
    covariates: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    treated_value: Any = 1
    control_value: Any = 0
    binary_treatment: bool = True
    treatment_seen: tuple = ()
    sources: tuple[tuple[str, str], ...] = ()  # covariate column -> the graph variable it encodes
    fixed_effects: tuple[tuple[str, int], ...] = ()  # level-coded column, number of levels

    def label(self, column: str) -> str:
        return dict(self.labels).get(column, column)


def treatment_fits(estimator: type[Estimator], binary: bool) -> bool:
    """Whether an estimator can fit a treatment that is (or may not be) binary 0/1: one whose
    class declares ``binary_treatment`` needs it to be."""
    return binary or not estimator.binary_treatment


def treatment_obstacle(estimator: type[Estimator], frame: FrameColumns) -> str | None:
    """Why ``estimator`` cannot fit the frame's treatment (None when it can): the one place
    that says a binary-treatment estimator met a treatment that is not binary."""
    if treatment_fits(estimator, frame.binary_treatment):
        return None
    seen = [f"{v:g}" if isinstance(v, float) else repr(v) for v in frame.treatment_seen[:5]]
    more = ", ..." if len(frame.treatment_seen) > 5 else ""
    return (f"treatment {frame.label(frame.treatment)!r} is not binary (values {{{', '.join(seen)}{more}}}); "
            "set treatment_values to choose a treated and a control value")


def contrast_text(spec: StudySpec, frame: FrameColumns) -> str:
    """The compared treatment values in the user's terms: ``t: +1 unit`` for a numeric
    treatment, ``t: 1 vs 0`` for a binary one, ``t: treated vs control`` otherwise."""
    t = spec.treatment[0]
    if spec.treatment_values.natural:
        return f"{t}: 1 vs 0" if frame.binary_treatment else f"{t}: +1 unit"
    return f"{t}: {frame.treated_value} vs {frame.control_value}"


def fixed_effect_obstacle(spec: StudySpec, strategy: Estimand, estimator: type[Estimator]) -> str | None:
    """Why ``estimator`` cannot fit ``strategy`` given the study's ``fixed_effects`` (None when it
    can); see the module docstring."""
    if estimator.uses_raw_variables or not spec.fixed_effects:
        return None
    request = _ROLES[strategy.kind](strategy)
    present = [v for v in spec.fixed_effects if v in request.covariates]
    if estimator.absorbs_fixed_effects:
        if len(present) < 2:
            return None
        return (f"{estimator.name} absorbs one fixed-effect variable, and the {strategy.name} strategy adjusts for "
                f"{present} (fixed_effects): keep one there and encode the others (encode: categorical)")
    unencoded = [v for v in present if v not in dict(spec.encode)]
    if not unencoded:
        return None
    return (f"{estimator.name} does not absorb fixed effects, and the {strategy.name} strategy adjusts for "
            f"{unencoded} (fixed_effects): ols and iv absorb them; to fit {estimator.name} too, give "
            f"encode.{unencoded[0]} (categorical, or a list of terms)")


def build_design(strategy: Estimand, estimator: type[Estimator], frame: FrameColumns, spec: StudySpec, *,
                 metric: str, segment: str = "all") -> ModelRoles:
    """The design ``estimator`` fits for ``strategy`` on ``frame`` (one segment of it)."""
    raw = estimator.uses_raw_variables
    natural = spec.treatment_values.natural
    absorbed = frame.fixed_effects if estimator.absorbs_fixed_effects else ()
    fe_variables = {frame.label(c) for c, _ in absorbed}
    sources = dict(frame.sources)
    covariates = tuple(c for c in frame.covariates if sources.get(c) not in fe_variables)
    return ModelRoles(
        treatment=strategy.treatment[0] if raw else frame.treatment,
        outcome=strategy.outcome[0] if raw else frame.outcome,
        covariates=covariates, instruments=frame.instruments, mediators=frame.mediators,
        target=spec.target, strategy=strategy.name, kind=strategy.kind, metric=metric,
        clustered=bool(spec.data.unit_id), variables=frame.discrete, expression=strategy.expression,
        labels=frame.labels, sources=frame.sources, fixed_effects=absorbed,
        treated_value=1 if natural else frame.treated_value, control_value=0 if natural else frame.control_value,
        contrast=contrast_text(spec, frame), segment=segment,
    )
