"""What a run produced, as one frozen value: results.json is its ``to_json()``.

``StudyResult.from_json(r.to_json()) == r`` and ``from_json(text).to_json() == text``
for any results.json whybatch wrote; the report, tracking and the results table are
written from it. An estimate that could not be made is an :class:`EstimateRow` with a
``reason`` and no numbers — the same type as one that was made. Numbers that are not
finite are None in the value as in the JSON (which has no NaN), and diagnostics are
JSON-native copies, so the value holds exactly what its text says.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from causal_core.errors import ResultsError, WhybatchError
from causal_core.estimators.results import EstimateResult
from causal_core.identification.plan import EstimandPlan
from causal_core.spec import StudySpec
from causal_core.study.comparison import COMPARISON_FIELDS, Comparison, compare_estimates, study_warnings
from causal_core.json_values import finite_or_none, json_native

RESULTS_VERSION = 2


@dataclass(frozen=True)
class Interval:
    """The half-open partition interval ``[start, end)`` a run read (None: unbounded)."""

    start: str | None = None
    end: str | None = None

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end}


def run_key(spec: StudySpec, interval: Interval) -> str:
    """Hash of study, interval and spec content: the same run again replaces, never duplicates."""
    payload = json.dumps([spec.name, interval.start, interval.end, spec.spec_hash()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


ESTIMATED_FIELDS = ("estimator", "strategy", "metric", "contrast", "segment", "target", "estimate", "se", "ci_low",
                    "ci_high", "ci_method", "level", "p_value", "n", "diagnostics")
NOT_ESTIMATED_FIELDS = ("estimator", "strategy", "metric", "segment", "estimate", "reason")
_NUMBERS = ("se", "ci_low", "ci_high", "level", "p_value")


@dataclass(frozen=True)
class EstimateRow:
    """One row of ``estimates``: an effect estimate, or why it could not be made.

    A row without an estimate carries only who (estimator, strategy, metric, segment)
    and the ``reason``; ``estimator`` is None where no estimator ran (an effect that is
    not identifiable)."""

    estimator: str | None
    strategy: str
    metric: str
    contrast: str = ""
    segment: str = "all"
    target: str = ""
    estimate: float | None = None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    level: float | None = None
    p_value: float | None = None
    n: int | None = None
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""

    def __post_init__(self) -> None:
        who = f"{self.estimator} on {self.metric}"
        if self.estimate is None:
            if not self.reason:
                raise ResultsError(f"{who}: a row without an estimate needs a reason")
            extra = [f for f in ("contrast", "target", "ci_method") if getattr(self, f)]
            extra += [f for f in (*_NUMBERS, "n") if getattr(self, f) is not None]
            extra += ["diagnostics"] if self.diagnostics else []
            if extra:
                raise ResultsError(f"{who}: a row without an estimate carries no {', '.join(extra)}")
            return
        if self.reason:
            raise ResultsError(f"{who}: a row with an estimate has no reason")
        if finite_or_none(self.estimate) is None:
            raise ResultsError(f"{who}: the estimate {self.estimate} is not a finite number")
        object.__setattr__(self, "estimate", float(self.estimate))
        for name in _NUMBERS:
            object.__setattr__(self, name, finite_or_none(getattr(self, name)))
        if self.n is not None:
            object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "diagnostics", json_native(dict(self.diagnostics)))

    @property
    def estimated(self) -> bool:
        return self.estimate is not None

    @classmethod
    def not_estimated(cls, estimator: str | None, strategy: str, metric: str, reason: str,
                      segment: str = "all") -> EstimateRow:
        return cls(estimator=estimator, strategy=strategy, metric=metric, segment=segment, reason=reason)

    @classmethod
    def from_result(cls, result: EstimateResult, frame_facts: Mapping[str, Any] | None = None) -> EstimateRow:
        """The row of an estimator's result; ``frame_facts`` (what preparation did to the
        rows) join its diagnostics under the keys the estimator left free."""
        if finite_or_none(result.estimate) is None:
            return cls.not_estimated(result.estimator, result.strategy, result.metric,
                                     f"the estimate is not a finite number ({result.estimate})", result.segment)
        diagnostics = {**dict(result.diagnostics), **{k: v for k, v in dict(frame_facts or {}).items()
                                                      if k not in result.diagnostics}}
        return cls(**{f: getattr(result, f) for f in ESTIMATED_FIELDS if f != "diagnostics"},
                   diagnostics=diagnostics)

    def to_dict(self) -> dict:
        if not self.estimated:
            return {"estimator": self.estimator, "strategy": self.strategy, "metric": self.metric,
                    "segment": self.segment, "estimate": None, "reason": self.reason}
        return {f: getattr(self, f) if f != "diagnostics" else dict(self.diagnostics) for f in ESTIMATED_FIELDS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EstimateRow:
        """The row :meth:`to_dict` wrote (with an estimate, or with ``estimate: null`` and a reason)."""
        estimated = _mapping(d, "an estimate row").get("estimate") is not None
        fields = ESTIMATED_FIELDS if estimated else NOT_ESTIMATED_FIELDS
        _require(d, fields, "an estimate row" if estimated else "a row without an estimate")
        return cls(**{f: d[f] for f in fields if f != "estimate" or estimated})


@dataclass(frozen=True)
class StudyResult:
    """A run of a study on an interval: plans, estimates, comparisons, warnings and the
    fields the service fills (refutations, graph validation, checks, tracking)."""

    study: str
    run_key: str
    interval: Interval
    rows: int
    plan: Mapping[str, EstimandPlan]
    estimates: tuple[EstimateRow, ...]
    spec_hash: str
    comparisons: tuple[Comparison, ...] = ()
    warnings: tuple[str, ...] = ()
    dropped_rows: Mapping[str, int] = field(default_factory=dict)
    refutations: tuple[Mapping[str, Any], ...] = ()
    graph_validation: Mapping[str, Any] | None = None
    checks: Mapping[str, Any] | None = None
    mlflow: Mapping[str, Any] | None = None
    seconds: float = 0.0
    version: int = RESULTS_VERSION
    experiment: Mapping[str, Any] | None = None  # an experiment readout in full (absent from older results)

    def __post_init__(self) -> None:
        for name, kind in (("estimates", EstimateRow), ("comparisons", Comparison)):
            items = tuple(getattr(self, name))
            wrong = [type(x).__name__ for x in items if not isinstance(x, kind)]
            if wrong:
                raise ResultsError(f"{name}: expected {kind.__name__} values, got {sorted(set(wrong))}")
            object.__setattr__(self, name, items)
        object.__setattr__(self, "plan", dict(self.plan))
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))
        object.__setattr__(self, "dropped_rows", {str(k): int(v) for k, v in self.dropped_rows.items()})
        object.__setattr__(self, "refutations", tuple(json_native(dict(r)) for r in self.refutations))
        for name in ("graph_validation", "checks", "mlflow", "experiment"):
            object.__setattr__(self, name, json_native(getattr(self, name)))
        object.__setattr__(self, "rows", int(self.rows))
        object.__setattr__(self, "seconds", float(self.seconds))

    @property
    def estimated(self) -> tuple[EstimateRow, ...]:
        """The rows with an estimate."""
        return tuple(e for e in self.estimates if e.estimated)

    @property
    def failed(self) -> tuple[EstimateRow, ...]:
        """The rows that say why an estimate could not be made."""
        return tuple(e for e in self.estimates if not e.estimated)

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        return {
            "version": self.version, "study": self.study, "run_key": self.run_key,
            "interval": self.interval.to_dict(), "rows": self.rows, "dropped_rows": dict(self.dropped_rows),
            "plan": {m: p.to_dict() for m, p in self.plan.items()},
            "estimates": [e.to_dict() for e in self.estimates],
            "comparisons": [c.to_dict() for c in self.comparisons], "warnings": list(self.warnings),
            "refutations": [dict(r) for r in self.refutations], "graph_validation": self.graph_validation,
            "checks": self.checks, "mlflow": self.mlflow, "spec_hash": self.spec_hash, "seconds": self.seconds,
        } | ({"experiment": self.experiment} if self.experiment is not None else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyResult:
        """The value a results document describes; a missing, unknown or malformed field is a
        :class:`ResultsError` naming it."""
        experiment = _mapping(d, "results.json").get("experiment")
        if experiment is not None:
            _mapping(experiment, "experiment")
        _require({k: v for k, v in d.items() if k != "experiment"}, _TOP_FIELDS, "results.json")
        if d["version"] != RESULTS_VERSION:
            raise ResultsError(f"results.json: version {d['version']!r} is not supported; expected {RESULTS_VERSION}")
        interval = _part(_interval, d["interval"], "interval")
        plan = {m: _part(EstimandPlan.from_dict, p, f"plan[{m!r}]") for m, p in _mapping(d["plan"], "plan").items()}
        estimates = tuple(_part(EstimateRow.from_dict, e, f"estimates[{i}]")
                          for i, e in enumerate(_list(d["estimates"], "estimates")))
        comparisons = tuple(_part(_comparison, c, f"comparisons[{i}]")
                            for i, c in enumerate(_list(d["comparisons"], "comparisons")))
        try:
            return cls(study=d["study"], run_key=d["run_key"], interval=interval, rows=d["rows"],
                       dropped_rows=_mapping(d["dropped_rows"], "dropped_rows"), plan=plan, estimates=estimates,
                       comparisons=comparisons, warnings=tuple(_list(d["warnings"], "warnings")),
                       refutations=tuple(_list(d["refutations"], "refutations")),
                       graph_validation=d["graph_validation"], checks=d["checks"], mlflow=d["mlflow"],
                       spec_hash=d["spec_hash"], seconds=d["seconds"], version=d["version"], experiment=experiment)
        except ResultsError:
            raise
        except (TypeError, ValueError) as exc:
            raise ResultsError(f"results.json: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> StudyResult:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ResultsError(f"results.json is not valid JSON: {exc}") from None
        return cls.from_dict(doc)

    # ---------------------------------------------------------------- reading
    def summary(self) -> pd.DataFrame:
        """One row per estimate row: who, what, the estimate and its interval, or the reason."""
        columns = ("metric", "estimator", "strategy", "contrast", "segment", "target", "estimate", "se", "ci_low",
                   "ci_high", "ci_method", "p_value", "n", "reason")
        return pd.DataFrame([{c: getattr(e, c) for c in columns} for e in self.estimates], columns=list(columns))

    def __str__(self) -> str:
        """The console summary: one line per estimate row (with its contrast when the study
        compares more than one pair of treatment values, as an experiment's arms do)."""
        lines = []
        several = len({e.contrast for e in self.estimates if e.estimated}) > 1
        for e in self.estimates:
            if not e.estimated:
                lines.append(f"{e.metric}: {e.estimator} not estimated: {e.reason}")
            else:
                contrast = f" {e.contrast}" if several and e.contrast else ""
                lines.append(f"{e.metric:<12} {e.estimator:<15} {e.segment:<18} {e.target}{contrast}: "
                             f"{e.estimate:.4f}  [{_number(e.ci_low)}, {_number(e.ci_high)}]  n={e.n}")
        return "\n".join(lines)


_TOP_FIELDS = ("version", "study", "run_key", "interval", "rows", "dropped_rows", "plan", "estimates", "comparisons",
               "warnings", "refutations", "graph_validation", "checks", "mlflow", "spec_hash", "seconds")


def gather_result(spec: StudySpec, interval: Interval, plans: Mapping[str, EstimandPlan],
                  rows: Sequence[EstimateRow], fitted: Sequence[EstimateResult], *, rows_read: int,
                  dropped: Mapping[str, int], seconds: float, refutations: Sequence[Any] = (),
                  graph_validation: Mapping[str, Any] | None = None) -> StudyResult:
    """The study's result from its estimate rows and the fitted results behind them: the
    estimators of one target compared through their paired replicates, and every
    warning a user must see (fields the spec accepts but nothing acts on, first);
    ``refutations`` are values with ``to_dict`` (:class:`causal_core.refuters.registry.Refutation`);
    a refutation that fails, and a graph the data reject, mark the results with a warning."""
    comparisons = compare_estimates(fitted)
    refuted = tuple(f"refuter {r.refuter} failed for the {r.estimator} estimate of {r.metric}"
                    for r in refutations if r.passed is False)
    if graph_validation and graph_validation.get("passed") is False:
        rejected = [f"{i['x']} ⊥ {i['y']}" + (f" | {', '.join(i['given'])}" if i["given"] else "")
                    for i in graph_validation.get("rejected", ())]
        refuted += (f"graph validation: the data reject {len(rejected)} implication(s) of the graph: "
                    f"{'; '.join(rejected)}",)
    return StudyResult(
        study=spec.name, run_key=run_key(spec, interval), interval=interval, rows=rows_read, dropped_rows=dropped,
        plan=plans, estimates=tuple(rows), comparisons=tuple(comparisons),
        warnings=(*spec.ignored_fields(), *study_warnings(fitted, comparisons, dropped), *refuted),
        spec_hash=spec.spec_hash(), seconds=round(seconds, 3),
        refutations=tuple(r.to_dict() for r in refutations), graph_validation=graph_validation,
    )


def _number(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"


def _interval(d: Mapping[str, Any]) -> Interval:
    _require(d, ("start", "end"), "the interval")
    return Interval(d["start"], d["end"])


def _comparison(d: Mapping[str, Any]) -> Comparison:
    _require(d, (*COMPARISON_FIELDS, "disagree"), "a comparison")
    return Comparison.from_dict(d)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ResultsError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise ResultsError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _require(d: Mapping[str, Any], fields: Sequence[str], what: str) -> None:
    """Every field present, none unknown (an unknown one would not survive the round trip)."""
    missing = [f for f in fields if f not in d]
    if missing:
        raise ResultsError(f"missing field(s) {', '.join(map(repr, missing))} of {what}")
    unknown = [f for f in d if f not in fields]
    if unknown:
        raise ResultsError(f"unknown field(s) {', '.join(map(repr, unknown))} in {what}; "
                           f"expected {', '.join(fields)}")


def _part(read, value: Any, where: str):
    """``read(value)``, with any problem reported under ``where`` (``estimates[2]: ...``)."""
    try:
        return read(_mapping(value, where))
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}" if not str(exc).startswith(f"{where}:") else str(exc)) from None
    except (KeyError, TypeError, ValueError, WhybatchError) as exc:
        raise ResultsError(f"{where}: {type(exc).__name__}: {exc}") from None
