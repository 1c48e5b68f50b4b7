"""The report's sections on the estimators' diagnostics: balance, overlap, bootstrap.

They read what the estimators recorded in ``EstimateRow.diagnostics``: ``smd_before`` /
``smd_after`` (weighting's standardized differences), ``propensity_histogram`` (rows
per arm in propensity bands), ``overlap`` (every back-door estimator's per-arm score
ranges and the shares beyond the bounds), and ``bootstrap_se`` / ``analytic_se``.
An estimator that recorded none of them adds nothing; one propensity model shared by
several metrics is drawn once, with the metrics named.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from causal_core.study import EstimateRow, StudyResult
from jobs.report.markup import Html, MISSING, figure, heading, number, paragraph, section, share, table
from jobs.report.plots import love_plot, normal_curves, overlap_plot


def _distinct(result: StudyResult, keep: Callable[[Mapping], object]) -> list[tuple[EstimateRow, list[str]]]:
    """Rows whose ``keep(diagnostics)`` is truthy, one per estimator, segment and distinct
    value of it, with every metric that shares the value."""
    seen: dict[tuple, tuple[EstimateRow, list[str]]] = {}
    for e in result.estimated:
        value = keep(e.diagnostics)
        if not value:
            continue
        key = (e.estimator, e.segment, json.dumps(value, sort_keys=True))
        seen.setdefault(key, (e, []))[1].append(e.metric)
    return list(seen.values())


def _who(e: EstimateRow, metrics: list[str]) -> str:
    segment = "" if e.segment == "all" else f", segment {e.segment}"
    return f"{e.estimator} ({', '.join(dict.fromkeys(metrics))}{segment})"


def balance_section(result: StudyResult) -> Html | None:
    """A Love plot per weighting model: |standardized mean difference| of each covariate
    between the arms before and after weighting (Austin & Stuart 2015, sec. 5.1)."""
    found = _distinct(result, lambda d: d.get("smd_before") and d.get("smd_after") is not None
                      and {"before": d["smd_before"], "after": d["smd_after"]})
    if not found:
        return None
    parts: list[str] = [paragraph("Absolute standardized mean differences of the model's covariates between "
                                  "treated and control rows; below 0.1 (dashed) is the usual mark of balance.")]
    for e, metrics in found:
        before, after = e.diagnostics["smd_before"], e.diagnostics["smd_after"]
        largest = e.diagnostics.get("max_abs_smd_after")
        parts.append(figure(love_plot(before, after, _who(e, metrics)), f"balance of {_who(e, metrics)}",
                            f"{_who(e, metrics)}: largest |SMD| after weighting {number(largest)}."))
        parts.append(table(["covariate", "SMD before", "SMD after"],
                           [(c, number(before[c]), number(after.get(c))) for c in before], numeric=(1, 2)))
    return section("balance", "Covariate balance before and after weighting", parts)


def _range(overlap: Mapping, arm: str) -> str:
    r = (overlap.get("range") or {}).get(arm)
    return MISSING if not r else f"{number(r[0], 3)} – {number(r[1], 3)}"


def _bounds_caption(rows: list[EstimateRow]) -> str:
    """The bounds the overlap shares were counted against, as the estimators recorded them."""
    pairs = {(tuple((e.diagnostics["overlap"].get("bounds") or ())), tuple(e.diagnostics["overlap"].get("crump_bounds")
                                                                            or ())) for e in rows}
    said = [f"bounds [{', '.join(map(number, b))}], Crump bounds [{', '.join(map(number, c))}]" for b, c in pairs]
    return "Scores are propensities (logistic) or the linear discriminant's; " + "; ".join(sorted(said)) + "."


def overlap_section(result: StudyResult) -> Html | None:
    """The arms' overlap: propensity histograms where the estimator counted rows per band
    (ipw), and for every back-door estimator the per-arm range of its score and the
    shares of rows beyond the bounds (Crump, Hotz, Imbens & Mitnik 2009)."""
    histograms = _distinct(result, lambda d: d.get("propensity_histogram"))
    ranges = [e for e in result.estimated if isinstance(e.diagnostics.get("overlap"), Mapping)
              and e.diagnostics["overlap"].get("range")]
    if not histograms and not ranges:
        return None
    parts: list[str] = []
    for e, metrics in histograms:
        bounds = (e.diagnostics.get("overlap") or {}).get("bounds")
        parts.append(figure(overlap_plot(e.diagnostics["propensity_histogram"], bounds, _who(e, metrics)),
                            f"propensity overlap of {_who(e, metrics)}",
                            f"{_who(e, metrics)}: estimated propensities of treated (up) and control (down) rows, "
                            f"counted in bands; dashed lines mark [{', '.join(number(b, 3) for b in bounds or ())}]."))
    if ranges:
        rows = []
        for e in ranges:
            o = e.diagnostics["overlap"]
            rows.append((e.estimator, e.metric, e.segment, o.get("propensity"), _range(o, "treated"),
                         _range(o, "control"), number(o.get("arms_overlap")),
                         share(o.get("share_outside")), share(o.get("share_outside_crump"))))
        parts += [heading("Score ranges per arm"),
                  table(["estimator", "metric", "segment", "score", "treated range", "control range",
                         "arms overlap", "share beyond bounds", "share beyond Crump bounds"], rows,
                        numeric=(7, 8), caption=_bounds_caption(ranges))]
        suggestions = {e.diagnostics["overlap"].get("trim_suggestion") for e in ranges} - {None}
        parts += [paragraph(s) for s in sorted(suggestions)]
    return section("overlap", "Propensity overlap", parts)


def bootstrap_section(result: StudyResult) -> Html | None:
    """Bootstrap against analytic standard errors per estimate, and the normal sampling
    distributions the bootstrap standard errors imply (the replicates themselves are not
    kept in the results, so their histogram cannot be drawn)."""
    rows = [e for e in result.estimated if e.diagnostics.get("bootstrap_se") is not None]
    if not rows:
        return None
    d = lambda e, k: e.diagnostics.get(k)  # noqa: E731
    parts: list[str] = [table(
        ["estimator", "metric", "segment", "replicates", "failed", "kind", "bootstrap se", "analytic se",
         "ratio"],
        [(e.estimator, e.metric, e.segment, number(d(e, "bootstrap_replicates")), number(d(e, "bootstrap_failed")),
          d(e, "bootstrap_kind") or MISSING, number(d(e, "bootstrap_se")), number(d(e, "analytic_se")),
          number(d(e, "bootstrap_se") / d(e, "analytic_se"), 3) if d(e, "analytic_se") else MISSING)
         for e in rows], numeric=(3, 4, 6, 7, 8))]
    for metric in dict.fromkeys(e.metric for e in rows):
        curves = [{"label": f"{e.estimator} ({e.contrast})" if e.contrast and len({r.contrast for r in rows}) > 1
                   else e.estimator, "estimate": e.estimate, "se": d(e, "bootstrap_se")}
                  for e in rows if e.metric == metric and e.segment == "all" and d(e, "bootstrap_se") > 0]
        if curves:
            parts.append(figure(normal_curves(curves, f"{metric}: normal approximation of the bootstrap"),
                                f"bootstrap sampling distributions of {metric}",
                                f"{metric}, all rows: N(estimate, bootstrap se²) per estimator — a normal "
                                "approximation drawn from the bootstrap standard error, not a histogram of the "
                                "replicates, which the results do not keep."))
    return section("bootstrap", "Bootstrap", parts)
