"""An experiment study with metrics, end to end: the one Spark pass (:mod:`jobs.experiment`),
then on the driver the readouts of :class:`causal_core.experiments.ExperimentReadout`
for the whole experiment and each segment level, and the :class:`StudyResult`.

Each metric's CUPED covariates are the optimal adjustment set of its columns' plans
(:func:`causal_core.spec.experiment.readout_metric`). Per segment the readout runs as
absolute lift (the estimate of every row), relative lift (delta method, Kohavi, Tang &
Xu 2020, §18.4), always-valid when ``sequential`` is set (Waudby-Smith et al. 2023) and
Bayesian when ``readout`` asks (GrowthBook's conjugate normal model); multiple testing
corrects the metric × arm family of each segment. The sample ratio of each segment is
checked (Fabijan et al. 2019); a mismatch is a warning that names the segment. For the
whole experiment the Poisson bucket bootstrap (DESIGN.md, "The engine") checks each
analytic standard error.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from causal_core.errors import WhybatchError
from causal_core.experiments import ArmSums, ExperimentReadout, Metric, ReadoutResult, srm_test
from causal_core.experiments.cuped import cuped_arms
from causal_core.experiments.metrics import arm_estimate
from causal_core.identification.plan import identify
from causal_core.spec import StudySpec
from causal_core.spec.experiment import readout_metric
from causal_core.study import EstimateRow, Interval, StudyResult, gather_result
from jobs.experiment import ExperimentSums, check_proportions, experiment_sums, internal_metric
from jobs.progress import SILENT, Progress

MAX_SEGMENT_LEVELS = 20  # levels shown per segment column, "other" included
MAX_BOOTSTRAP = 500
OTHER = "other"
ALPHA, SRM_ALPHA = 0.05, 0.001
ESTIMATOR, STRATEGY = "experiment", "backdoor.optimal"


def estimate_experiment(spark, spec: StudySpec, interval: Interval = Interval(),
                        progress: Progress = SILENT) -> StudyResult:
    """Read out ``spec.experiment`` on the interval (module docstring): one row per metric
    × treatment arm × segment, the full readouts in ``StudyResult.experiment``."""
    t0 = time.perf_counter()
    exp = spec.experiment
    plans = {c: identify(spec.graph, spec.treatment, c, include=spec.include, exclude=spec.exclude)
             for c in exp.columns}
    metrics = tuple(readout_metric(m, plans) for m in exp.metrics)
    internal = tuple(internal_metric(m) for m in metrics)
    with progress.stage("read exposures, sum per unit, arm, bucket and segment (one pass)") as stage:
        sums = experiment_sums(spark, spec, metrics, interval)
        stage.rows = sums.rows
    with progress.stage(f"readout of {len(metrics)} metrics") as stage:
        check_proportions(sums, internal)
        parts = segment_parts(sums, spec)
        readouts, srm, failed = read_out(spec, internal, parts, sums.histograms)
        boot = bucket_bootstrap(sums, spec, internal)
        rows = estimate_rows(spec, metrics, readouts, srm, boot) + failed
        stage.note = f"{sum(r.estimated for r in rows)} rows, {len(parts)} segments"
    result = gather_result(spec, interval, plans, rows, [], rows_read=sums.rows,
                           dropped={k: v for k, v in sums.excluded_rows.items() if v},
                           seconds=time.perf_counter() - t0)
    warnings = [f"sample ratio mismatch in segment {seg}: p = {s.p_value:.3g} < {s.alpha:g} (units per arm "
                f"{dict(zip(s.arms, map(int, s.observed)))}): the readout of this segment is not trustworthy"
                for seg, s in srm.items() if s.mismatch]
    warnings += [f"{k:,} units left out: {why}" for why, k in sums.excluded_units.items() if k]
    warnings += ["refuters: not applied to an experiment readout; ignored"] if spec.refuters else []
    return replace(result, warnings=(*result.warnings, *warnings), experiment={
        "metrics": [vars(m) for m in metrics], "arms": list(exp.arms), "control": exp.control,
        "expected_split": exp.split(), "units": {a: sums.buckets[a].count() for a in exp.arms},
        "excluded_units": sums.excluded_units, "segments": [seg for seg, _ in parts],
        "srm": {seg: s.to_dict() for seg, s in srm.items()}, "bootstrap": boot["settings"],
        "readouts": {kind: r.to_dict() for kind, r in readouts.items()}})


def segment_parts(sums: ExperimentSums, spec: StudySpec,
                  max_levels: int = MAX_SEGMENT_LEVELS) -> list[tuple[str, dict[str, ArmSums]]]:
    """``[("all", {arm: sums}), ("column=level", {arm: sums}), ...]``: each segment column's
    levels by units (most first, ties by text); beyond ``max_levels`` the top
    ``max_levels - 1`` and the rest added up as ``column=other``. Histograms of merged
    levels are merged into ``sums.histograms`` under the ``other`` segment."""
    arms = spec.experiment.arms
    parts = [("all", {a: sums.buckets[a].total() for a in arms})]
    empty = ArmSums(sums.names, 0.0, np.zeros(len(sums.names)), np.zeros((len(sums.names),) * 2))
    for column in spec.segments:
        levels = sums.levels.get(column, {})
        ranked = sorted(levels, key=lambda lv: (-sum(s.count() for s in levels[lv].values()), str(lv)))
        keep, rest = (ranked, []) if len(ranked) <= max_levels else (ranked[:max_levels - 1], ranked[max_levels - 1:])
        for level in keep:
            parts.append((f"{column}={level}", {a: levels[level].get(a, empty) for a in arms}))
        if rest:
            merged = {a: empty for a in arms}
            for level in rest:
                merged = {a: merged[a] + levels[level].get(a, empty) for a in arms}
            parts.append((f"{column}={OTHER}", merged))
            _merge_histograms(sums, column, rest)
    return parts


def _merge_histograms(sums: ExperimentSums, column: str, levels: list[str]) -> None:
    keys = {(seg, arm, col) for (seg, arm, col) in sums.histograms if seg in {f"{column}={lv}" for lv in levels}}
    for seg, arm, col in sorted(keys):
        target = (f"{column}={OTHER}", arm, col)
        h = sums.histograms[seg, arm, col]
        sums.histograms[target] = sums.histograms[target] + h if target in sums.histograms else h


def readout_settings(spec: StudySpec) -> dict[str, dict]:
    """The readouts to run: name → :class:`ExperimentReadout` options."""
    exp = spec.experiment
    common = {"control": exp.control, "expected_split": exp.split(), "alpha": ALPHA, "srm_alpha": SRM_ALPHA,
              "multiple_testing": exp.multiple_testing}
    out = {"absolute": {**common, "relative": False}, "relative": {**common, "relative": True}}
    if exp.sequential_planned_n is not None:
        out["sequential"] = {**common, "relative": False, "sequential_planned_n": exp.sequential_planned_n}
    if exp.readout in ("bayesian", "both"):
        out["bayesian"] = {**common, "relative": True, "engine": "bayesian", "prior": exp.prior}
    if exp.readout == "bayesian":
        out["bayesian_absolute"] = {**common, "relative": False, "engine": "bayesian", "prior": exp.prior}
    return out


def read_out(spec: StudySpec, metrics: tuple[Metric, ...], parts, histograms):
    """Every readout of :func:`readout_settings` on every segment. A metric that cannot be
    read out in a segment (too few units for a quantile's interval...) gives rows that
    say why, and the segment's other metrics form the multiple-testing family."""
    settings = readout_settings(spec)
    collected = {kind: ([], [], {}) for kind in settings}
    srm, failed, control = {}, [], spec.experiment.control
    split = spec.experiment.split()
    for seg, arms in parts:
        if sum(s.count() for s in arms.values()) > 0:
            srm[seg] = srm_test({a: s.count() for a, s in arms.items()}, {a: split[a] for a in arms},
                                alpha=SRM_ALPHA)
        grid = {(seg, a): s for a, s in arms.items()}
        hist = {(seg, arm, m.name): histograms[seg, arm, m.numerator] for m in metrics if m.kind == "quantile"
                for arm in arms if (seg, arm, m.numerator) in histograms}
        usable = []
        for m in metrics:
            try:
                ExperimentReadout(metrics=(m,), **settings["absolute"]).fit(grid, hist)
                usable.append(m)
            except WhybatchError as exc:
                failed += [EstimateRow.not_estimated(ESTIMATOR, STRATEGY, m.name, f"{arm} vs {control}: {exc}",
                                                     segment=seg) for arm in arms if arm != control]
        if not usable:
            continue
        for kind, opts in settings.items():
            r = ExperimentReadout(metrics=tuple(usable), **opts).fit(grid, hist).result_
            collected[kind][0].extend(r.rows)
            collected[kind][1].extend(r.srm)
            collected[kind][2].update(r.settings)
    readouts = {kind: ReadoutResult(rows=tuple(rows), srm=tuple(s), settings=tuple(used.items()))
                for kind, (rows, s, used) in collected.items()}
    return readouts, srm, failed


def bucket_bootstrap(sums: ExperimentSums, spec: StudySpec, metrics: tuple[Metric, ...]) -> dict:
    """Standard deviation of each whole-experiment absolute lift over Poisson(1) bucket
    reweightings (seeded by the study's bootstrap seed; at most :data:`MAX_BOOTSTRAP`
    replicates): the check on the analytic standard errors. Quantile metrics have no
    per-bucket histograms and are not bootstrapped."""
    exp = spec.experiment
    b = min(spec.bootstrap.replicates, MAX_BOOTSTRAP)
    out: dict = {"settings": {"replicates": b, "seed": spec.bootstrap.seed, "kind": "poisson buckets"}}
    if b < 2:
        return out
    k = len(sums.buckets[exp.control].n)
    weights = np.random.default_rng(np.random.SeedSequence(spec.bootstrap.seed)).poisson(1.0, (b, k))
    replicas = {arm: [s.weighted(w) for w in weights] for arm, s in sums.buckets.items() if arm in exp.arms}
    for m in metrics:
        if m.kind == "quantile":
            continue
        for arm in exp.arms:
            if arm == exp.control:
                continue
            lifts = []
            for a, t in zip(replicas[exp.control], replicas[arm]):
                try:
                    if m.has_covariate:
                        adj = cuped_arms(a, t, m)
                        lifts.append(adj.treatment.mean - adj.control.mean)
                    else:
                        lifts.append(arm_estimate(t, m).mean - arm_estimate(a, m).mean)
                except WhybatchError:
                    continue
            out[m.name, arm] = float(np.std(lifts, ddof=1)) if len(lifts) > 1 else None
    return out


def estimate_rows(spec: StudySpec, metrics: tuple[Metric, ...], readouts: dict[str, ReadoutResult], srm: dict,
                  boot: dict) -> list[EstimateRow]:
    """One :class:`EstimateRow` per metric × arm × segment: the absolute lift (the Bayesian
    posterior when the readout is Bayesian only) with the rest in ``diagnostics``."""
    exp, t = spec.experiment, spec.treatment[0]
    by_metric = {m.name: m for m in metrics}
    index = {kind: {(r.metric, r.arm, r.segment): r for r in res.rows} for kind, res in readouts.items()}
    rows = []
    for r in readouts["absolute"].rows:
        key, m = (r.metric, r.arm, r.segment), by_metric[r.metric]
        rel = index["relative"][key]
        d = {"p_adjusted": r.p_adjusted, "multiple_testing": exp.multiple_testing,
             "relative_lift": rel.estimate, "relative_se": rel.se, "relative_ci_low": rel.ci_low,
             "relative_ci_high": rel.ci_high, "control_value": r.control_value, "treatment_value": r.treatment_value,
             "n_control": r.n_control, "n_treatment": r.n_treatment,
             "covariates": [c for c in (m.covariate, m.covariate_denominator) if c]}
        if r.method.startswith("cuped"):
            d |= {"cuped_theta": r.theta, "variance_reduction": r.variance_reduction}
        if "sequential" in index:
            s = index["sequential"][key]
            d |= {"sequential_ci_low": s.ci_low, "sequential_ci_high": s.ci_high, "sequential_p_value": s.p_value}
        if "bayesian" in index:
            bay = index["bayesian"][key]
            d |= {"chance_to_win": bay.chance_to_win, "risk_control": bay.risk_control,
                  "risk_treatment": bay.risk_treatment, "bayesian_relative_ci_low": bay.ci_low,
                  "bayesian_relative_ci_high": bay.ci_high}
        if r.segment in srm:
            d |= {"srm_p_value": srm[r.segment].p_value, "srm_mismatch": srm[r.segment].mismatch}
        if r.segment == "all" and (r.metric, r.arm) in boot:
            d |= {"bootstrap_se": boot[r.metric, r.arm], "bootstrap_replicates": boot["settings"]["replicates"]}
        main = index["bayesian_absolute"][key] if "bayesian_absolute" in index else r
        rows.append(EstimateRow(
            estimator=ESTIMATOR, strategy=STRATEGY, metric=r.metric, contrast=f"{t}: {r.arm} vs {exp.control}",
            segment=r.segment, target="ate", estimate=main.estimate, se=main.se, ci_low=main.ci_low,
            ci_high=main.ci_high, ci_method=main.method, level=1 - ALPHA,
            p_value=None if main is not r else r.p_value, n=int(r.n_control + r.n_treatment), diagnostics=d))
    return rows


__all__ = ("estimate_experiment", "segment_parts", "read_out", "readout_settings", "bucket_bootstrap",
           "estimate_rows")
