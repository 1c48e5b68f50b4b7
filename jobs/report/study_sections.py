"""The report's sections about the study itself: summary, graph, estimand, estimates.

Each function takes the :class:`~causal_core.study.StudyResult` (and the spec where it
helps) and returns one section's HTML, or None when the result holds nothing for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from causal_core.graph.causal_graph import CausalGraph
from causal_core.spec import StudySpec
from causal_core.study import EstimateRow, StudyResult
from jobs.report.graph_plot import graph_picture
from jobs.report.markup import (Html, bullet_list, esc, figure, heading, key_values, number, p_value,
                                paragraph, section, table)
from jobs.report.plots import forest_plot


MISSING_ESTIMATOR = "(none ran)"  # a row for an effect that no estimator could take on


def interval_text(result: StudyResult) -> str:
    """The partition interval as ``[start, end)``, an open end said in words."""
    start, end = result.interval.start, result.interval.end
    if start is None and end is None:
        return "all partitions"
    return f"[{start or 'first partition'}, " + (f"{end})" if end is not None else "last partition]")


def summary_section(result: StudyResult, spec: StudySpec | None) -> Html:
    """Study, description, interval, rows read and dropped, run identity, the verdicts of
    the refuters and graph validation, every warning, and the rows that could not be
    estimated with the reason."""
    refuted = [r for r in result.refutations if r.get("passed") is False]
    judged = [r for r in result.refutations if r.get("passed") is not None]
    pairs = [("study", result.study)]
    if spec is not None and spec.description:
        pairs.append(("description", spec.description.strip()))
    pairs += [("interval", interval_text(result)), ("rows read", number(result.rows))]
    pairs += [(f"rows dropped: {why}", number(n)) for why, n in result.dropped_rows.items()]
    pairs += [("estimates", f"{len(result.estimated)} made, {len(result.failed)} not made"),
              ("refutations", f"{len(judged) - len(refuted)} of {len(judged)} passed" if judged else "none run")]
    validation = result.graph_validation
    if validation is not None:
        verdict = validation.get("passed")
        pairs.append(("graph validation", "not run" if verdict is None else "passed" if verdict else "FAILED"))
    pairs += [("run key", result.run_key), ("spec hash", result.spec_hash), ("run time", f"{result.seconds:g} s")]
    if result.mlflow:
        pairs += [(f"MLflow {k}", v) for k, v in result.mlflow.items()]
    parts: list[str] = [key_values(pairs)]
    if result.warnings:
        parts += [heading(f"Warnings ({len(result.warnings)})"), bullet_list(result.warnings, "warnings")]
    else:
        parts.append(paragraph("No warnings.", "ok"))
    if result.failed:
        parts += [heading("Not estimated"),
                  table(["metric", "estimator", "strategy", "segment", "reason"],
                        [(e.metric, e.estimator or MISSING_ESTIMATOR, e.strategy, e.segment, e.reason)
                         for e in result.failed])]
    return section("summary", "Summary", parts)



def study_graph(result: StudyResult, spec: StudySpec | None) -> tuple[CausalGraph, set[str], set[str]] | None:
    """The graph to draw and its treatment and outcome: the spec's, else the plans'."""
    if spec is not None and spec.graph is not None:
        return spec.graph, set(spec.treatment), set(spec.outcome)
    plans = list(result.plan.values())
    if not plans:
        return None
    return (plans[0].graph, {t for p in plans for t in p.treatment}, {o for p in plans for o in p.outcome})


def graph_section(result: StudyResult, spec: StudySpec | None) -> Html | None:
    """The causal graph as a picture, and as the edge-list text that reads back to it."""
    found = study_graph(result, spec)
    if found is None:
        return None
    graph, treatment, outcome = found
    caption = (f"{len(graph.observed)} observed variables, {len(graph.latent)} latent, "
               f"{len(graph.directed)} directed edges, {len(graph.bidirected)} bidirected (latent common cause, "
               f"dashed). Treatment: {', '.join(sorted(treatment))}; outcome: {', '.join(sorted(outcome))}.")
    return section("graph", "Causal graph", [
        figure(graph_picture(graph, treatment, outcome), "the causal graph", caption, "wide"),
        Html("<details><summary>graph as text</summary><pre>" + esc(graph.to_text()) + "</pre></details>")])


def estimand_section(result: StudyResult) -> Html | None:
    """Per metric: whether the effect is identified, the strategy chosen and why, and every
    strategy found with its variable sets, formula, assumptions and admitted estimators."""
    if not result.plan:
        return None
    parts: list[str] = []
    for metric, plan in result.plan.items():
        parts.append(heading(f"{', '.join(plan.treatment)} → {metric}"))
        if not plan.identifiable:
            parts.append(paragraph(f"Not identifiable: {plan.reason}", "bad"))
            if plan.hedge is not None:
                parts.append(paragraph(f"Hedge: {{{', '.join(plan.hedge[0])}}} and {{{', '.join(plan.hedge[1])}}}"))
        else:
            used = {e.strategy: [] for e in result.estimates if e.metric == metric}
            for e in result.estimates:
                if e.metric == metric and e.estimator and e.estimator not in used[e.strategy]:
                    used[e.strategy].append(e.estimator)
            parts.append(Html(f'<p class="chosen">Chosen strategy: <strong>{esc(plan.default)}</strong>. '
                              f"{esc(plan.default_reason)}</p>"))
            rows = []
            for s in plan.strategies:
                sets = [f"{name}: {', '.join(values)}" for name, values in (
                    ("adjust for", s.adjustment), ("mediators", s.mediators), ("instruments", s.instruments),
                    ("conditioning", s.conditioning)) if values]
                if s.kind == "backdoor" and not s.adjustment:
                    sets.append("adjust for: nothing (the empty set)")
                rows.append((s.name + (" (chosen)" if s.name == plan.default else ""), s.kind,
                             "; ".join(sets) or "—", Html(f"<code>{esc(s.formula())}</code>"),
                             bullet_list(s.assumptions + ((s.note,) if s.note else ())),
                             ", ".join(plan.estimators_for(s.name)) or "—",
                             ", ".join(used.get(s.name, [])) or "—"))
            parts.append(table(["strategy", "kind", "variables", "estimand", "assumptions and source",
                                "admits", "estimated by"], rows, css="estimand"))
        if plan.notes:
            parts.append(bullet_list(plan.notes, "notes"))
    return section("estimand", "Estimand: what is estimated and why", parts)


def _ordered(rows: Sequence[EstimateRow]) -> list[EstimateRow]:
    """Rows grouped by segment, ``all`` first, then by contrast, keeping estimator order."""
    segments = list(dict.fromkeys(["all", *(e.segment for e in rows)]))
    return sorted(rows, key=lambda e: (segments.index(e.segment), e.contrast))


ESTIMATE_HEADERS = ("segment", "contrast", "estimator", "strategy", "target", "estimate", "se", "CI low",
                    "CI high", "CI method", "p", "n")


def estimate_cells(e: EstimateRow) -> tuple:
    """One row of the estimates table (:data:`ESTIMATE_HEADERS`)."""
    return (e.segment, e.contrast, e.estimator, e.strategy, e.target, number(e.estimate), number(e.se),
            number(e.ci_low), number(e.ci_high), e.ci_method or "—", p_value(e.p_value), number(e.n))


def _estimates_table(rows: Sequence[EstimateRow], contrasts: set[str]) -> Html:
    """The estimates of one metric; the contrast column only where the rows differ in it."""
    keep = [i for i, h in enumerate(ESTIMATE_HEADERS) if h != "contrast" or len(contrasts) > 1]
    numeric = [j for j, i in enumerate(keep) if i >= 5 and ESTIMATE_HEADERS[i] != "CI method"]
    return table([ESTIMATE_HEADERS[i] for i in keep], ([cells[i] for i in keep] for cells in map(estimate_cells, rows)),
                 numeric=numeric, css="estimates")


def estimates_section(result: StudyResult) -> Html | None:
    """Every estimator side by side per metric: a table and a forest plot of the intervals,
    segments grouped; then the paired comparisons of estimators."""
    if not result.estimated:
        return None
    parts: list[str] = []
    metrics = list(dict.fromkeys(e.metric for e in result.estimated))
    for metric in metrics:
        rows = _ordered([e for e in result.estimated if e.metric == metric])
        contrasts = {e.contrast for e in rows}
        said = f" ({next(iter(contrasts))})" if len(contrasts) == 1 and next(iter(contrasts)) else ""
        parts += [heading(metric + said), _estimates_table(rows, contrasts)]
        points = [{"group": e.segment if len(contrasts) == 1 else f"{e.segment} · {e.contrast}",
                   "label": f"{e.estimator} ({e.strategy})", "estimate": e.estimate, "ci_low": e.ci_low,
                   "ci_high": e.ci_high} for e in rows]
        levels = sorted({e.level for e in rows if e.level is not None})
        level = f"{', '.join(f'{100 * v:g}%' for v in levels)} intervals" if levels else "intervals"
        parts.append(figure(forest_plot(points, f"{metric}: estimates with {level}"),
                            f"forest plot of the estimates of {metric}",
                            f"Point estimates (dots) and {level} (bars) of {metric}, grouped by segment; the "
                            "dotted line is zero."))
    if result.comparisons:
        parts += [heading("Estimators compared"),
                  paragraph("Differences between two estimators of one target, with the standard error from their "
                            "paired bootstrap replicates and Holm-adjusted p-values over all comparisons."),
                  table(["metric", "segment", "contrast", "first", "second", "difference", "se", "p", "p adjusted",
                         "replicates"],
                        [(c.metric, c.segment, c.contrast, c.first, c.second, number(c.difference), number(c.se),
                          p_value(c.p_value), p_value(c.p_adjusted), number(c.replicates))
                         for c in result.comparisons], numeric=range(5, 10))]
    return section("estimates", "Estimates", parts)
