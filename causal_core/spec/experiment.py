"""The experiment part of a study spec: ``metrics``, ``expected_split``, ``multiple_testing``,
``sequential`` and ``readout`` of a ``design: experiment`` study.

A metric is declared on columns of the exposure table: ``mean``, ``proportion`` and
``quantile`` metrics on one ``column``, ``ratio`` metrics on a ``numerator`` and a
``denominator`` (summed per unit, delta method: Deng, Knoblich & Lu 2018, §3). Its CUPED
covariates are not declared: they are read off the graph. The assignment is randomized,
so it has no parents; a pre-period covariate is a parent of the outcome only, and the
optimal adjustment set O of Henckel, Perković & Maathuis (2022) — the identification
core's ``backdoor.optimal`` strategy — then holds exactly those precision variables.
CUPED with O's variable is the regression adjustment the graph implies (Deng, Xu, Kohavi
& Walker 2013, §3: a covariate unaffected by the treatment leaves the lift unbiased and
removes the variance it explains).

Every problem is reported with its field (``metrics.<name>.<field>``) before Spark starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from causal_core.errors import IdentificationError, SpecError, WhybatchError
from causal_core.experiments.bayesian import GaussianPrior
from causal_core.experiments.metrics import KINDS, Metric
from causal_core.experiments.multiple import METHODS

EXPERIMENT_FIELDS = ("metrics", "expected_split", "multiple_testing", "sequential", "readout")
METRIC_FIELDS = ("name", "kind", "column", "numerator", "denominator", "quantile", "inverse")
READOUTS = ("frequentist", "bayesian", "both")
PRIOR_FIELDS = ("mean", "sd", "proper")
OPTIMAL_STRATEGIES = ("backdoor.optimal", "backdoor.optimal_with_include")


@dataclass(frozen=True)
class MetricSpec:
    """A metric as declared: its kind and columns, the quantile level, and ``inverse``
    (lower is better)."""

    name: str
    kind: str
    numerator: str
    denominator: str | None = None
    quantile: float | None = None
    inverse: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.numerator,) + ((self.denominator,) if self.denominator else ())


@dataclass(frozen=True)
class ExperimentSpec:
    """How an experiment is read out: the metrics, the arms (as text) with the control and
    the expected split, the multiple-testing correction over metrics × arms of a segment,
    the sequential option (planned units of the always-valid interval, Waudby-Smith et al.
    2023, eq. 161) and the readout engines with the Bayesian prior."""

    metrics: tuple[MetricSpec, ...]
    arms: tuple[str, ...]
    control: str
    expected_split: tuple[tuple[str, float], ...]
    multiple_testing: str = "holm"
    sequential_planned_n: float | None = None
    readout: str = "frequentist"
    prior: GaussianPrior = GaussianPrior()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every metric column, each once, in declaration order."""
        return tuple(dict.fromkeys(c for m in self.metrics for c in m.columns))

    def split(self) -> dict[str, float]:
        return dict(self.expected_split)


def metric_outcomes(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The document with ``outcome`` filled from the metrics' columns when a study with
    ``metrics`` leaves it out (the plans are made for those columns)."""
    metrics = doc.get("metrics")
    if "outcome" in doc or not isinstance(metrics, list):
        return doc
    columns = [m.get(k) for m in metrics if isinstance(m, dict) for k in ("column", "numerator", "denominator")]
    columns = list(dict.fromkeys(c for c in columns if isinstance(c, str) and c))
    if isinstance(doc.get("graph"), str):  # a column missing from the graph is named at its metric
        from causal_core.graph.causal_graph import CausalGraph

        try:
            columns = [c for c in columns if c in CausalGraph.parse(doc["graph"]).observed]
        except WhybatchError:
            pass  # the graph's own field reports it
    return {**doc, "outcome": columns} if columns else doc


def with_experiment(doc: Mapping[str, Any], out: dict[str, Any], problems) -> dict[str, Any]:
    """``out`` (the parsed fields) with ``experiment``: an :class:`ExperimentSpec`, or None
    for a study without ``metrics``; problems are added to ``problems``."""
    out["experiment"] = None
    given = [f for f in EXPERIMENT_FIELDS if f in doc]
    if not given:
        return out
    if "metrics" not in doc:
        problems.add(given[0], "only a study with 'metrics' reads out an experiment; add metrics")
        return out
    if out["design"] != "experiment":
        problems.add("metrics", "metrics are read out for 'design: experiment' only")
        return out
    metrics = _parse_metrics(doc["metrics"], problems)
    arms, control = _arms(out, problems)
    data = out["data"]
    if not data.unit_id:
        problems.add("data.unit_id", "an experiment readout aggregates exposure rows to units: name the unit id")
    if len(out["treatment"]) != 1:
        problems.add("treatment", "an experiment has one assignment column")
    graph = out["graph"]
    if graph is not None and len(out["treatment"]) == 1:
        _check_graph(graph, out["treatment"][0], metrics, out, problems)
    experiment = ExperimentSpec(
        metrics=metrics, arms=arms, control=control, expected_split=_split(doc.get("expected_split"), arms, problems),
        multiple_testing=_choice(doc.get("multiple_testing", "holm"), "multiple_testing", tuple(METHODS), problems,
                                 "holm"),
        sequential_planned_n=_sequential(doc.get("sequential", False), problems),
        readout=_readout(doc.get("readout", "frequentist"), problems), prior=_prior(doc.get("readout"), problems))
    out["experiment"] = experiment
    return out


# ---------------------------------------------------------------------------- metrics
def _parse_metrics(value: Any, problems) -> tuple[MetricSpec, ...]:
    if not isinstance(value, list) or not value:
        problems.add("metrics", "expected a non-empty list of {name, kind, column | numerator + denominator}")
        return ()
    out, names = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            problems.add(f"metrics[{i}]", f"expected a mapping with name, kind and columns, got {item!r}")
            continue
        name = item.get("name")
        where = f"metrics.{name}" if isinstance(name, str) and name else f"metrics[{i}]"
        if not isinstance(name, str) or not name:
            problems.add(f"{where}.name", f"expected the metric's name, got {name!r}")
        elif name in names:
            problems.add(f"{where}.name", "two metrics have this name")
        names.add(name)
        metric = _parse_metric(item, where, problems)
        if metric is not None and isinstance(name, str) and name:
            out.append(metric)
    return tuple(out)


def _parse_metric(item: Mapping[str, Any], where: str, problems) -> MetricSpec | None:
    n_before = len(problems.items)
    for key in item:
        if key not in METRIC_FIELDS:
            problems.add(f"{where}.{key}", f"unknown field; a metric takes: {', '.join(METRIC_FIELDS)}")
    kind = item.get("kind", "mean")
    if kind not in KINDS:
        problems.add(f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    column, num, den = item.get("column"), item.get("numerator"), item.get("denominator")
    for key, v in (("column", column), ("numerator", num), ("denominator", den)):
        if v is not None and (not isinstance(v, str) or not v):
            problems.add(f"{where}.{key}", f"expected a column name, got {v!r}")
    if kind == "ratio":
        if column is not None:
            problems.add(f"{where}.column", "a ratio metric takes numerator and denominator, not column")
        for key, v in (("numerator", num), ("denominator", den)):
            if v is None:
                problems.add(f"{where}.{key}", f"a ratio metric needs a {key} column")
    elif kind in KINDS:
        if den is not None or num is not None:
            problems.add(f"{where}.{'denominator' if den is not None else 'numerator'}",
                         f"only a ratio metric has a numerator and denominator; a {kind} metric takes column")
        if column is None:
            problems.add(f"{where}.column", f"a {kind} metric needs a column")
    level = item.get("quantile", 0.5 if kind == "quantile" else None)
    if "quantile" in item and kind != "quantile":
        problems.add(f"{where}.quantile", "only a quantile metric has a quantile level")
    elif kind == "quantile" and (isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1):
        problems.add(f"{where}.quantile", f"expected a level in (0, 1) such as 0.5 or 0.9, got {level!r}")
    inverse = item.get("inverse", False)
    if not isinstance(inverse, bool):
        problems.add(f"{where}.inverse", f"expected true or false, got {inverse!r}")
    if len(problems.items) > n_before:
        return None
    return MetricSpec(name=str(item.get("name")), kind=kind, numerator=num if kind == "ratio" else column,
                      denominator=den if kind == "ratio" else None,
                      quantile=float(level) if kind == "quantile" else None, inverse=inverse)


def _arms(out: dict[str, Any], problems) -> tuple[tuple[str, ...], str]:
    tv = out["treatment_values"]
    if tv.natural:
        problems.add("treatment_values", "an experiment readout needs its arms: {arms: [...], control: ...}")
        return (), ""
    arms = tuple(str(a) for a in tv.arms) if tv.arms else (str(tv.control), str(tv.treated))
    if len(set(arms)) != len(arms):
        problems.add("treatment_values.arms", f"arms must differ as text, got {list(arms)}")
    return arms, str(tv.control)


def _split(value: Any, arms: tuple[str, ...], problems) -> tuple[tuple[str, float], ...]:
    if value is None:
        return tuple((a, 1.0 / len(arms)) for a in arms)
    if isinstance(value, list) and len(value) == len(arms):
        value = dict(zip(arms, value))
    if not isinstance(value, dict):
        problems.add("expected_split", f"expected a share per arm ({', '.join(arms)}), as a mapping or a list")
        return tuple((a, 1.0 / max(len(arms), 1)) for a in arms)
    shares = {str(k): v for k, v in value.items()}
    unknown, missing = sorted(set(shares) - set(arms)), [a for a in arms if a not in shares]
    bad = [a for a, v in shares.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
    if unknown or missing or bad or not sum(v for a, v in shares.items() if a not in bad) > 0:
        problems.add("expected_split", f"expected a non-negative share for each arm {list(arms)}, not all 0; got "
                     f"{value!r}" + (f" (unknown arms {unknown})" if unknown else ""))
        return tuple((a, 1.0 / max(len(arms), 1)) for a in arms)
    return tuple((a, float(shares[a])) for a in arms)


def _choice(value: Any, field: str, valid: tuple[str, ...], problems, default: str) -> str:
    if value not in valid:
        problems.add(field, f"expected one of {', '.join(valid)}, got {value!r}")
        return default
    return value


def _sequential(value: Any, problems) -> float | None:
    if value is False or value is None:
        return None
    n = value.get("planned_n") if isinstance(value, dict) and set(value) == {"planned_n"} else None
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
        problems.add("sequential", f"expected false or {{planned_n: N}} with N > 0 units, got {value!r}")
        return None
    return float(n)


def _readout(value: Any, problems) -> str:
    kind = value.get("kind", "frequentist") if isinstance(value, dict) else value
    if isinstance(value, dict) and set(value) - {"kind", "prior"}:
        problems.add("readout", f"unknown keys {sorted(set(value) - {'kind', 'prior'})}; expected kind, prior")
    return _choice(kind, "readout", READOUTS, problems, "frequentist")


def _prior(value: Any, problems) -> GaussianPrior:
    """GrowthBook's default prior on the relative lift, N(0, 0.1²), flat unless ``proper``
    (:mod:`causal_core.experiments.bayesian`)."""
    prior = value.get("prior") if isinstance(value, dict) else None
    if prior is None:
        return GaussianPrior()
    numbers = isinstance(prior, dict) and all(
        isinstance(prior.get(k, 0), (int, float)) and not isinstance(prior.get(k, 0), bool) for k in ("mean", "sd"))
    if not numbers or set(prior) - set(PRIOR_FIELDS) or not prior.get("sd", 0.1) > 0 \
            or not isinstance(prior.get("proper", True), bool):
        problems.add("readout.prior", f"expected {{mean: 0, sd: 0.1, proper: true}} (sd > 0), got {prior!r}")
        return GaussianPrior()
    return GaussianPrior(mean=float(prior.get("mean", 0.0)), variance=float(prior.get("sd", 0.1)) ** 2,
                         proper=prior.get("proper", True))


# ---------------------------------------------------------------------------- the graph
def _check_graph(graph, treatment: str, metrics: tuple[MetricSpec, ...], out: dict[str, Any], problems) -> None:
    """The assignment is randomized (no parents, no latent common cause), each metric column
    is a graph variable, and each column's optimal set has at most one covariate."""
    from causal_core.identification.plan import identify

    if treatment not in graph.observed:
        return
    causes = sorted(graph.parents(treatment) | graph.siblings(treatment))
    if causes:
        problems.add("graph", f"in an experiment the assignment {treatment!r} is randomized and has no parents or "
                              f"latent common causes; the graph gives it {', '.join(causes)}")
        return
    plans = {}
    for m in metrics:
        missing = [c for c in m.columns if c not in graph.observed]
        for c in missing:
            role = "column" if m.kind != "ratio" else "numerator" if c == m.numerator else "denominator"
            problems.add(f"metrics.{m.name}.{role}", f"{c!r} is not a variable of the graph")
        if missing or m.kind == "quantile":
            continue
        for c in m.columns:
            if c not in plans:
                plans[c] = identify(graph, treatment, c, include=out["include"], exclude=out["exclude"])
        try:
            readout_metric(m, plans)
        except SpecError as exc:
            for f, msg in exc.problems:
                problems.add(f, msg)


def graph_covariates(plan) -> tuple[str, ...]:
    """The precision variables of a metric column: the optimal adjustment set O of its plan
    (Henckel, Perković & Maathuis 2022; with the spec's ``adjustment.include`` added when O
    lacks one). With a randomized assignment O is the set of the column's parents that are
    not caused by the assignment."""
    for name in OPTIMAL_STRATEGIES:
        try:
            return tuple(plan.strategy(name).adjustment)
        except IdentificationError:
            continue
    return ()


def readout_metric(m: MetricSpec, plans: Mapping[str, Any]) -> Metric:
    """The :class:`Metric` of a declared metric, CUPED covariates from the plans of its
    columns (:func:`graph_covariates`): one covariate, or one for the numerator and one for
    the denominator of a ratio (then CUPED adjusts with their ratio, Deng et al. 2018,
    §3.3). More than one precision variable per column is a :class:`SpecError`: the
    adjustment here is single-covariate CUPED."""
    if m.kind == "quantile":
        return Metric(name=m.name, numerator=m.numerator, kind="quantile", inverse=m.inverse, level=m.quantile)
    sets = {c: graph_covariates(plans[c]) for c in m.columns}
    crowded = {c: s for c, s in sets.items() if len(s) > 1}
    if crowded:
        text = "; ".join(f"for {c}: {{{', '.join(s)}}}" for c, s in crowded.items())
        raise SpecError(f"metrics.{m.name}: the optimal adjustment set {text} has more than one variable",
                        ((f"metrics.{m.name}", f"the graph's optimal adjustment set {text} has more than one "
                          "variable; CUPED adjusts with one pre-period covariate per column (keep only the "
                          "pre-period covariate as a parent of the column, or exclude the others with "
                          "adjustment.exclude)"),))
    num = sets[m.numerator][0] if sets[m.numerator] else None
    den = sets[m.denominator][0] if m.denominator and sets[m.denominator] else None
    covariate, covariate_den = (num, den) if num and den and num != den else (num or den, None)
    return Metric(name=m.name, numerator=m.numerator, denominator=m.denominator, kind=m.kind, covariate=covariate,
                  covariate_denominator=covariate_den, inverse=m.inverse)


__all__ = ("EXPERIMENT_FIELDS", "ExperimentSpec", "MetricSpec", "READOUTS", "graph_covariates", "metric_outcomes",
           "readout_metric", "with_experiment")
