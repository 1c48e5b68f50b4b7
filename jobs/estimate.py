"""``whybatch run`` on Spark: plan -> read -> prepare -> estimate (+ bucket bootstrap) -> StudyResult.

One SparkSession per job. For every outcome metric and every treatment contrast the study
rows are prepared once (coded, encoded, bucketed and, when more than one pass follows,
cached) and each estimator fits on that projection through the Spark moment engine;
segments refit on filtered frames.
What needs no Spark — which estimators run on which strategy, the frame each needs, the
design each fits, the run key and the result — is decided in :mod:`causal_core.study`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from causal_core.errors import EstimationError, SpecError, WhybatchError
from causal_core.estimators import BootstrapOptions, Estimator, get_estimator
from causal_core.estimators.base import ModelRoles
from causal_core.estimators.results import EstimateResult
from causal_core.refuters.registry import Refutation, Refuter
from causal_core.spec import EstimatorSpec, StudySpec
from causal_core.study import (
    EstimateRow, Interval, ModelRequest, Selection, StudyResult, build_design, choose_estimators, gather_result,
    model_request, plan_study, treatment_obstacle,
)
from jobs.progress import SILENT, Progress
from jobs.refute import make_refuters, refute_estimate, validate_graph_on_data
from jobs.spark.collect import collect_small
from jobs.warehouse.prepare import ModelFrame, build_model_frame
from jobs.warehouse.read import describe_selection, read_study_frame

MAX_SEGMENT_LEVELS = 50


@dataclass(frozen=True)
class _Fit:
    """An estimate row, and the fitted result behind it (None when nothing was fitted)."""

    row: EstimateRow
    result: EstimateResult | None = None
    estimator: Estimator | None = None
    design: ModelRoles | None = None


def estimate_study(spark: SparkSession, spec: StudySpec, interval: Interval = Interval(),
                   progress: Progress = SILENT) -> StudyResult:
    """Run every estimator of the study on the interval; return the :class:`StudyResult`
    (results.json is its ``to_json()``).

    Estimators that need the same model frame (same metric, contrast and adjustment,
    mediator or instrument set) share it: the rows are read, prepared and cached once,
    and they sum through one engine, which computes a pass they have in common once.
    Every estimator of one metric and contrast draws the same bootstrap weights (common
    random numbers), so the bootstrap of their difference comes free: estimators of one
    target that disagree are reported in ``comparisons`` and ``warnings``. ``progress``
    hears of each stage (:mod:`jobs.progress`).
    """
    if spec.experiment is not None:  # an experiment with metrics: the readout (jobs.experiment_readout)
        from jobs.experiment_readout import estimate_experiment

        return estimate_experiment(spark, spec, interval, progress)
    t0 = time.perf_counter()
    plans = plan_study(spec)
    seeds = iter(np.random.SeedSequence(spec.bootstrap.seed).spawn(10_000))
    fits: list[_Fit] = []
    refuters = make_refuters(spec)
    refutations: list[Refutation] = []
    rows_read = 0
    dropped: dict[str, int] = {}
    for metric, plan in plans.items():
        if not plan.identifiable:
            fits.append(_Fit(EstimateRow.not_estimated(None, "", metric, f"not identifiable: {plan.reason}")))
            continue
        selections = choose_estimators(spec, plan)
        for treated, control in spec.treatment_values.contrasts():
            slots: list[list[_Fit]] = [[] for _ in selections]
            groups: dict[ModelRequest, list[int]] = {}
            contrast_seed = next(seeds)
            for i, selection in enumerate(selections):
                if selection.strategy is None:
                    slots[i] = [_Fit(EstimateRow.not_estimated(selection.name, "", metric, selection.reason))]
                else:
                    request = model_request(selection.strategy, get_estimator(selection.name))
                    groups.setdefault(request, []).append(i)
            for request, members in groups.items():
                group = [(i, selections[i], contrast_seed) for i in members]
                rows, frame_dropped = _fit_group(spark, spec, interval, metric, request, group,
                                                 (treated, control), slots, refuters, refutations, progress)
                rows_read = max(rows_read, rows)
                for why, k in frame_dropped.items():
                    dropped[why] = max(dropped.get(why, 0), k)
            fits += [f for slot in slots for f in slot]
    graph_validation = None
    if any(r.study_level for r in refuters):
        with progress.stage("graph validation") as stage:
            graph_validation = validate_graph_on_data(spark, spec, interval, refuters)
            if graph_validation and graph_validation.get("rows") is not None:
                stage.rows = graph_validation["rows"]
    return gather_result(spec, interval, plans, [f.row for f in fits], [f.result for f in fits if f.result],
                         rows_read=rows_read, dropped=dropped, seconds=time.perf_counter() - t0,
                         refutations=refutations, graph_validation=graph_validation)


def _fit_group(spark: SparkSession, spec: StudySpec, interval: Interval, metric: str, request: ModelRequest,
               group: list[tuple[int, Selection, np.random.SeedSequence]], contrast: tuple[Any, Any],
               slots: list[list[_Fit]], refuters: Sequence[Refuter] = (),
               refutations: list[Refutation] | None = None, progress: Progress = SILENT) -> tuple[int, dict[str, int]]:
    """Prepare one model frame and fit every estimator of ``group`` on it (whole frame, then
    each segment); fits go to ``slots`` at the estimators' positions, and the refutations of
    the whole-frame estimates to ``refutations``. Returns the rows kept and the rows left
    out, by reason."""
    from jobs.spark.engine import SparkMomentEngine

    treated, control = contrast
    columns = set(spec.treatment) | {metric} | set(request.covariates) | set(request.mediators) \
        | set(request.instruments) | set(request.discrete) | set(spec.segments)
    if spec.data.unit_id:
        columns.add(spec.data.unit_id)
    names = ", ".join(selection.name for _, selection, _ in group)
    estimators = [get_estimator(selection.name) for _, selection, _ in group]
    opening = any(e.opens_with_arm_gram for e in estimators)
    # A cache pays when several passes read the frame after its preparation (build_model_frame
    # still caches a catalog table's rows, whose partitions Spark lists per query).
    once_more = (len(estimators) == 1 and estimators[0].one_pass_after_opening
                 and not spec.data.unit_id and not spec.segments
                 and not any(r.reads_rows and r.applies_to(estimators[0].name) for r in refuters))
    with progress.stage(f"read and prepare {metric} for {names}") as stage:
        raw = read_study_frame(spark, spec, sorted(columns), start=interval.start, end=interval.end)
        try:
            model = build_model_frame(raw, spec, metric, request, treated=treated, control=control,
                                      n_buckets=spec.data.buckets, opening=opening, cached=not once_more,
                                      selection=describe_selection(spec, interval.start, interval.end))
        except EstimationError as exc:
            for i, selection, _ in group:
                slots[i] = [_Fit(EstimateRow.not_estimated(selection.name, selection.strategy.name, metric,
                                                           str(exc)))]
            stage.note = "not estimated"
            return 0, {}
        stage.rows = model.n_rows
    try:
        parts = [("all", model)] + [(f"{c}={_level_text(model, c, level)}", _filter(model, c, level))
                                    for c in spec.segments for level in _segment_levels(model, c)]
        engines = [SparkMomentEngine(m.df, n_buckets=spec.data.buckets, exact=spec.data.exact_sums)
                   for _, m in parts]
        if model.opening is not None:  # summed while preparing: the first fit's opening pass
            model.opening.seed(engines[0])
        for i, selection, seed in group:
            obstacle = treatment_obstacle(get_estimator(selection.name), model.columns)
            if obstacle is not None:
                slots[i] = [_Fit(EstimateRow.not_estimated(selection.name, selection.strategy.name, metric,
                                                           obstacle))]
                continue
            with progress.stage(f"{selection.name} on {metric}" + (f" ({len(parts)} segments)"
                                                                  if len(parts) > 1 else "")):
                slots[i] = [_fit(selection, spec, m, metric, _child(seed, j), engine, name)
                            for j, ((name, m), engine) in enumerate(zip(parts, engines))]
            whole = slots[i][0]
            if whole.estimator is not None and refutations is not None and any(
                    r.applies_to(selection.name) for r in refuters):
                with progress.stage(f"refute {selection.name} on {metric}"):
                    refutations += refute_estimate(refuters, whole.estimator, selection.name, model, metric,
                                                   _child(seed, len(parts)), engine=engines[0], design=whole.design)
    finally:
        model.release()
    return model.n_rows, dict(model.dropped)


def _fit(selection: Selection, spec: StudySpec, model: ModelFrame, metric: str, seed: np.random.SeedSequence,
         engine, segment: str) -> _Fit:
    """One estimator on one segment of a frame: its row, or why it could not be estimated."""
    try:
        est = _make_estimator(selection.estimator, spec, seed)
        design = build_design(selection.strategy, type(est), model.columns, spec, metric=metric, segment=segment)
        result = est.fit(engine, design).result_
    except WhybatchError as exc:
        if isinstance(exc, SpecError):
            raise
        return _Fit(EstimateRow.not_estimated(selection.name, selection.strategy.name, metric, str(exc),
                                              segment=segment))
    return _Fit(EstimateRow.from_result(result, model.facts()), result, est, design)


def _make_estimator(es: EstimatorSpec, spec: StudySpec, seed: np.random.SeedSequence) -> Estimator:
    cls = get_estimator(es.name)
    boot = BootstrapOptions(replicates=spec.bootstrap.replicates, kind=spec.bootstrap.kind,
                            seed=int(seed.generate_state(1)[0]))
    try:
        return cls(bootstrap=boot, **es.options_dict())
    except TypeError as exc:
        raise SpecError(f"estimators.{es.name}: bad options {es.options_dict()}: {exc}",
                        ((f"estimators.{es.name}", str(exc)),)) from None


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
    return replace(model, df=model.df.where(F.col(column) == F.lit(level))).without_variable(column)


__all__: Sequence[str] = ("estimate_study",)
