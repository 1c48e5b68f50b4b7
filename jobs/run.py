"""``whybatch run``: plan -> read -> prepare -> estimate (+ bucket bootstrap) -> results.json.

One SparkSession per job. For every outcome metric and every treatment contrast the study
rows are prepared once (coded, encoded, bucketed, cached) and each estimator fits on that
cached projection through the Spark moment engine; segments refit on filtered frames.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from causal_core.errors import EstimationError, SpecError, WhybatchError
from causal_core.estimand import Estimand
from causal_core.estimators import BootstrapOptions, Design, get_estimator
from causal_core.plan import EstimandPlan
from causal_core.results import EstimateResult, NotEstimable
from causal_core.spec import EstimatorSpec, StudySpec
from causal_core.study import compare_estimates, plan_study, study_warnings
from jobs.aggregates import collect_small
from jobs.prepare import ModelFrame, ModelRequest, build_model_frame, not_binary_reason
from jobs.warehouse import describe_selection, read_study_frame

AUTO_BY_KIND = {"backdoor": ("ols", "aipw"), "frontdoor": ("frontdoor",), "iv": ("iv",), "id": ("id_plugin",)}
MAX_SEGMENT_LEVELS = 50
RESULTS_VERSION = 1


@dataclass(frozen=True)
class Interval:
    start: str | None = None
    end: str | None = None

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end}


def run_key(spec: StudySpec, interval: Interval) -> str:
    """Hash of study, interval and spec content: the same run again replaces, never duplicates."""
    payload = json.dumps([spec.name, interval.start, interval.end, spec.spec_hash()])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def choose_estimators(spec: StudySpec, plan: EstimandPlan, binary: bool) -> list[tuple[EstimatorSpec, Estimand | None]]:
    """Pair each requested estimator with the strategy it runs on (the default when it admits it)."""
    default = plan.strategy() if plan.identifiable else None
    wanted: list[EstimatorSpec] = []
    for es in spec.estimators:
        if es.name == "auto":
            names = AUTO_BY_KIND[default.kind] if default else ()
            wanted += [EstimatorSpec(n) for n in names if binary or not get_estimator(n).binary_treatment]
        else:
            wanted.append(es)
    out = []
    for es in dict.fromkeys(wanted):
        strategy = None
        if default is not None and es.name in plan.estimators_for(default.name):
            strategy = default
        else:
            strategy = next((s for s in plan.strategies if es.name in plan.estimators_for(s.name)), None)
        out.append((es, strategy))
    return out


def _request(strategy: Estimand, estimator: str, spec: StudySpec) -> ModelRequest:
    if estimator == "id_plugin":
        variables = set(strategy.expression.mentioned_variables()) if strategy.expression is not None else set()
        variables |= set(strategy.treatment) | set(strategy.outcome)
        return ModelRequest(discrete=tuple(sorted(variables)))
    if strategy.kind == "backdoor":
        return ModelRequest(covariates=strategy.adjustment)
    if strategy.kind == "frontdoor":
        return ModelRequest(mediators=strategy.mediators)
    if strategy.kind == "iv":
        return ModelRequest(covariates=strategy.conditioning, instruments=strategy.instruments)
    return ModelRequest()


def _design(model: ModelFrame, strategy: Estimand, spec: StudySpec, metric: str, estimator: str) -> Design:
    return Design(
        treatment=strategy.treatment[0] if estimator == "id_plugin" else model.treatment,
        outcome=metric if estimator == "id_plugin" else model.outcome,
        covariates=model.covariates, instruments=model.instruments, mediators=model.mediators,
        target=spec.target, strategy=strategy.kind, metric=metric, clustered=bool(spec.data.unit_id),
        variables=model.discrete, expression=strategy.expression, labels=tuple(model.labels.items()),
        treated_value=model.treated_value if not spec.treatment_values.natural else 1,
        control_value=model.control_value if not spec.treatment_values.natural else 0,
    )


def _make_estimator(es: EstimatorSpec, spec: StudySpec, seed: np.random.SeedSequence):
    cls = get_estimator(es.name)
    boot = BootstrapOptions(replicates=spec.bootstrap.replicates, kind=spec.bootstrap.kind,
                            seed=int(seed.generate_state(1)[0]))
    try:
        return cls(bootstrap=boot, **es.options_dict())
    except TypeError as exc:
        raise SpecError(f"estimators.{es.name}: bad options {es.options_dict()}: {exc}",
                        ((f"estimators.{es.name}", str(exc)),)) from None


def _fit(es, strategy, spec, model, metric, seed, engine, segment: str) -> EstimateResult | NotEstimable:
    try:
        est = _make_estimator(es, spec, seed)
        design = _design(model, strategy, spec, metric, es.name)
        result = est.fit(engine, design).result_
    except (EstimationError, WhybatchError) as exc:
        if isinstance(exc, SpecError):
            raise
        return NotEstimable(es.name, strategy.name, metric, str(exc), segment=segment)
    labels = {k: v for k, v in model.labels.items()}
    diagnostics = dict(result.diagnostics)
    diagnostics.setdefault("columns", labels)
    diagnostics.setdefault("dropped_null_rows", model.dropped_nulls)
    diagnostics.setdefault("dropped_rows", dict(model.dropped))
    diagnostics.setdefault("buckets_keyed_on", model.bucketing)
    return _replace(result, strategy=strategy.name, segment=segment,
                    contrast=_contrast_text(spec, model), diagnostics=diagnostics)


def _replace(result: EstimateResult, **changes: Any) -> EstimateResult:
    from dataclasses import replace

    return replace(result, **changes)


def _contrast_text(spec: StudySpec, model: ModelFrame) -> str:
    if spec.treatment_values.natural:
        return f"{spec.treatment[0]}: +1 unit" if not model.binary_treatment else f"{spec.treatment[0]}: 1 vs 0"
    return f"{spec.treatment[0]}: {model.treated_value} vs {model.control_value}"


def estimate_study(spark: SparkSession, spec: StudySpec, interval: Interval = Interval()) -> dict:
    """Run every estimator of the study on the interval; return the results.json content.

    Estimators that need the same model frame (same metric, contrast and adjustment,
    mediator or instrument set) share it: the rows are read, prepared and cached once,
    and they sum through one engine, which computes a pass they have in common once.
    Every estimator of one metric and contrast draws the same bootstrap weights (common
    random numbers), so the bootstrap of their difference comes free: estimators of one
    target that disagree are reported in ``comparisons`` and ``warnings``.
    """
    t0 = time.perf_counter()
    plans = plan_study(spec)
    seeds = iter(np.random.SeedSequence(spec.bootstrap.seed).spawn(10_000))
    fitted: list[EstimateResult | NotEstimable | dict] = []
    rows_seen = 0
    dropped: dict[str, int] = {}
    for metric, plan in plans.items():
        if not plan.identifiable:
            fitted.append({"metric": metric, "estimator": None, "estimate": None,
                           "reason": f"not identifiable: {plan.reason}"})
            continue
        binary_hint = not spec.treatment_values.natural
        pairs = choose_estimators(spec, plan, binary=binary_hint or spec.design == "experiment")
        for treated, control in spec.treatment_values.contrasts():
            slots: list[list] = [[] for _ in pairs]
            groups: dict[ModelRequest, list[int]] = {}
            contrast_seed = next(seeds)
            for i, (es, strategy) in enumerate(pairs):
                if strategy is None:
                    slots[i] = [NotEstimable(es.name, "", metric, f"no strategy in the plan admits {es.name}; "
                                             f"strategies: {[s.name for s in plan.strategies]}")]
                else:
                    groups.setdefault(_request(strategy, es.name, spec), []).append(i)
            for request, members in groups.items():
                group = [(i, *pairs[i], contrast_seed) for i in members]
                rows, frame_dropped = _fit_group(spark, spec, interval, metric, request, group,
                                                 (treated, control), slots)
                rows_seen = max(rows_seen, rows)
                for why, k in frame_dropped.items():
                    dropped[why] = max(dropped.get(why, 0), k)
            fitted += [e for slot in slots for e in slot]
    estimates = [e for e in fitted if isinstance(e, EstimateResult)]
    comparisons = compare_estimates(estimates)
    return {
        "version": RESULTS_VERSION, "study": spec.name, "run_key": run_key(spec, interval),
        "interval": interval.to_dict(), "rows": rows_seen, "dropped_rows": dropped,
        "plan": {m: p.to_dict() for m, p in plans.items()},
        "estimates": [e if isinstance(e, dict) else e.to_dict() for e in fitted],
        "comparisons": [c.to_dict() for c in comparisons],
        "warnings": [*spec.ignored_fields(), *study_warnings(estimates, comparisons, dropped)],
        "refutations": [], "graph_validation": None, "checks": None, "mlflow": None,
        "spec_hash": spec.spec_hash(), "seconds": round(time.perf_counter() - t0, 3),
    }


def _fit_group(spark: SparkSession, spec: StudySpec, interval: Interval, metric: str, request: ModelRequest,
               group: list, contrast: tuple[Any, Any], slots: list[list]) -> tuple[int, dict[str, int]]:
    """Prepare one model frame and fit every estimator of ``group`` on it (whole frame, then
    each segment); results go to ``slots`` at the estimators' positions. Returns the rows
    kept and the rows left out, by reason."""
    from jobs.spark_engine import SparkMomentEngine

    treated, control = contrast
    columns = set(spec.treatment) | {metric} | set(request.covariates) | set(request.mediators) \
        | set(request.instruments) | set(request.discrete) | set(spec.segments)
    if spec.data.unit_id:
        columns.add(spec.data.unit_id)
    raw = read_study_frame(spark, spec, sorted(columns), start=interval.start, end=interval.end)
    try:
        model = build_model_frame(raw, spec, metric, request, treated=treated, control=control,
                                  binary_needed=False, n_buckets=spec.data.buckets,
                                  selection=describe_selection(spec, interval.start, interval.end))
    except EstimationError as exc:
        for i, es, strategy, _ in group:
            slots[i] = [NotEstimable(es.name, strategy.name, metric, str(exc))]
        return 0, {}
    try:
        parts = [("all", model)] + [(f"{c}={_level_text(model, c, level)}", _filter(model, c, level))
                                    for c in spec.segments for level in _segment_levels(model, c)]
        engines = [SparkMomentEngine(m.df, n_buckets=spec.data.buckets, exact=spec.data.exact_sums)
                   for _, m in parts]
        for i, es, strategy, seed in group:
            if get_estimator(es.name).binary_treatment and not model.binary_treatment:
                slots[i] = [NotEstimable(es.name, strategy.name, metric, not_binary_reason(model))]
                continue
            slots[i] = [_fit(es, strategy, spec, m, metric, _child(seed, j), engine, name)
                        for j, ((name, m), engine) in enumerate(zip(parts, engines))]
    finally:
        model.release()
    return model.n_rows, dict(model.dropped)


def _child(seed: np.random.SeedSequence, j: int) -> np.random.SeedSequence:
    """The j-th child of ``seed``, the same however often it is asked for (``spawn`` counts
    its calls), so every estimator of a contrast draws the same weights for part j."""
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, j))


def _segment_levels(model: ModelFrame, column: str) -> list:
    rows = collect_small(model.df.groupBy(column).count().orderBy(column), MAX_SEGMENT_LEVELS + 1,
                         f"segment levels of {column}")
    if len(rows) > MAX_SEGMENT_LEVELS:
        raise EstimationError(f"segment column {column!r} has more than {MAX_SEGMENT_LEVELS} levels")
    return [r[0] for r in rows]


def _level_text(model: ModelFrame, column: str, level: Any) -> Any:
    """A segment level as the user wrote it (a string variable id_plugin also uses is coded)."""
    labels = model.levels.get(column)
    return labels[int(level)] if labels and level is not None else level


def _filter(model: ModelFrame, column: str, level: Any) -> ModelFrame:
    from dataclasses import replace

    return replace(model, df=model.df.where(F.col(column) == F.lit(level))).without_variable(column)


def write_results(results: dict, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str))
    return p


def summarize(results: dict) -> list[str]:
    lines = []
    for e in results["estimates"]:
        if e.get("estimate") is None:
            lines.append(f"{e.get('metric')}: {e.get('estimator')} not estimated: {e.get('reason')}")
        else:
            lines.append(f"{e['metric']:<12} {e['estimator']:<15} {e['segment']:<18} {e['target']}: "
                         f"{e['estimate']:.4f}  [{e['ci_low']:.4f}, {e['ci_high']:.4f}]  n={e['n']}")
    return lines


__all__: Sequence[str] = ("Interval", "estimate_study", "run_key", "write_results", "summarize")
