"""The report's sections on how the estimate was challenged: refutations, sensitivity,
graph validation, data checks.

Refutations are the dicts of ``StudyResult.refutations`` (``refuter``, ``estimator``,
``metric``, ``segment``, ``new_effect``, ``p_value``, ``passed``, ``details``); the
simulation refuters keep their simulated ``effects``, ``sensitivity`` the
Cinelli–Hazlett statistics and benchmark bounds, ``unobserved_common_cause`` a contour
``grid``, ``marginal_sensitivity`` its bounds per Λ and the breakdown Λ.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from causal_core.errors import EstimationError
from causal_core.refuters.sensitivity import LinearFit, contour_grid
from causal_core.study import StudyResult
from jobs.report.markup import (Html, badge, bullet_list, esc, figure, heading, key_values, number, p_value,
                                paragraph, plain, section, share, table)
from jobs.report.plots import effects_histogram, sensitivity_contour


def _who(r: Mapping) -> str:
    segment = "" if r.get("segment", "all") == "all" else f", {r['segment']}"
    return f"{r['refuter']}: {r['estimator']} on {r['metric']}{segment}"


def measure(details: Mapping) -> str:
    """What a refuter measured, in a few words."""
    if "rv_qa" in details:
        return f"RV {share(details.get('rv_q'))}, RV at α {share(details.get('rv_qa'))}"
    if "breakdown_lambda" in details:
        return (f"breakdown Λ {number(details['breakdown_lambda'])} (interval: "
                f"{number(details.get('breakdown_lambda_ci'))})")
    if "strongest" in details:
        s = details["strongest"]
        return (f"at R² ({number(s['r2dz_x'])}, {number(s['r2yz_dx'])}): CI {number(s['ci_low'])} … "
                f"{number(s['ci_high'])}")
    if details.get("sd") is not None:
        return f"{details.get('simulations')} simulations, sd {number(details['sd'])}"
    return ""


def refutations_section(result: StudyResult) -> Html | None:
    """One line per refutation with its verdict, then the simulated effects of the
    placebo, random-cause, dummy-outcome and subset refuters as small histograms."""
    if not result.refutations:
        return None
    rows = [(r["refuter"], r["estimator"], r["metric"], r.get("segment", "all"), number(r.get("new_effect")),
             p_value(r.get("p_value")), measure(r.get("details") or {}), badge(r.get("passed")),
             (r.get("details") or {}).get("reason", "")) for r in result.refutations]
    parts: list[str] = [table(["refuter", "estimator", "metric", "segment", "new effect", "p", "measured",
                               "verdict", "note"], rows, numeric=(4, 5), css="refutations")]
    small = []
    for r in result.refutations:
        details = r.get("details") or {}
        if details.get("effects"):
            png = effects_histogram(details["effects"], details.get("estimate"), details.get("tested_value"),
                                    _who(r))
            tested = details.get("tested_value")
            said = "" if tested is None or tested == details.get("estimate") else \
                f", dashed the value tested ({number(tested)})"
            small.append(figure(png, f"simulated effects of {_who(r)}",
                                f"{_who(r)}: {len(details['effects'])} simulated effects; solid line the estimate "
                                f"({number(details.get('estimate'))}){said}.", "small"))
    if small:
        parts += [heading("Simulated effects"), Html('<div class="gallery">' + "".join(small) + "</div>")]
    return section("refutations", "Refutations", parts)


def _sensitivity_window(marks: Sequence[Mapping]) -> list[float]:
    """Partial R² from 0 to 0.4 (sensemakr's window), widened to take in every mark."""
    top = max([0.4, *(1.15 * max(m["r2dz_x"], m["r2yz_dx"]) for m in marks)])
    top = min(top, 0.95)
    return [round(top * i / 40, 10) for i in range(41)]


def _sensitivity_figure(r: Mapping) -> list[str]:
    """The contour plot of one ``sensitivity`` refutation, computed from its statistics
    (estimate, se, dof) with the closed form of Cinelli & Hazlett (2020, sec. 4),
    the benchmark bounds marked; and its statistics as a table."""
    d = r["details"]
    marks = [{"label": b["label"], "r2dz_x": b["r2dz_x"], "r2yz_dx": b["r2yz_dx"], "estimate": b["estimate"]}
             for b in d.get("bounds", ())]
    if d.get("rv_q") is not None:
        # RV_q: the equal partial R² with treatment and outcome that moves the estimate by q of itself
        marks.append({"label": "RV", "r2dz_x": d["rv_q"], "r2yz_dx": d["rv_q"],
                      "estimate": (1 - d.get("q", 1.0)) * d["estimate"]})
    parts: list[str] = [key_values([
        ("estimate, se, t", f"{number(d['estimate'])}, {number(d['se'])}, {number(d.get('t'))}"),
        ("partial R² of treatment with outcome", share(d.get("r2yd_x"))),
        (f"robustness value RV (q = {number(d.get('q'))})", share(d.get("rv_q"))),
        (f"RV at α = {number(d.get('alpha'))}", share(d.get("rv_qa"))),
        ("benchmark strengths", "; ".join(f"{k}: R²(D~Xj|X) {share(v.get('r2dxj_x'))}, R²(Y~Xj|D,X) "
                                          f"{share(v.get('r2yxj_dx'))}" for k, v in d.get("benchmarks", {}).items())
         or "none")])]
    if d.get("bounds"):
        parts.append(table(["bound", "R² with treatment", "R² with outcome", "adjusted estimate", "se", "CI low",
                            "CI high"],
                           [(b["label"], number(b["r2dz_x"]), number(b["r2yz_dx"]), number(b["estimate"]),
                             number(b["se"]), number(b["ci_low"]), number(b["ci_high"])) for b in d["bounds"]],
                           numeric=range(1, 7)))
    infeasible = d.get("infeasible_bounds") or []
    if infeasible:
        parts.append(paragraph("Not drawn, as no partial R² below 1 reaches them: " + "; ".join(
            f"{b.get('kd')}× {b.get('benchmark')}" + (f" ({b['reason']})" if b.get("reason") else "")
            for b in infeasible)))
    try:
        fit = LinearFit(d["estimate"], d["se"], d["dof"])
    except (KeyError, TypeError, EstimationError) as exc:
        return [*parts, paragraph(f"No contour plot: the refutation lacks a usable fit ({exc}).")]
    window = _sensitivity_window(marks)
    grid = contour_grid(fit, window, window, reduce=bool(d.get("reduce", True)))
    parts.insert(0, figure(sensitivity_contour(grid.r2dz_x, grid.r2yz_dx, grid.estimate, d["estimate"], marks,
                                               _who(r)),
                           f"sensitivity contours of {_who(r)}",
                           f"{_who(r)}: the treatment coefficient of the additive OLS model ({number(d['estimate'])} "
                           "unadjusted), adjusted for a confounder with the given partial R² with treatment and "
                           "outcome (Cinelli & Hazlett 2020, sec. 4); red dashed where it reaches zero; diamonds mark "
                           "the benchmark bounds and the robustness value RV."))
    return parts


def _grid_figure(r: Mapping) -> list[str]:
    """The contour plot of one ``unobserved_common_cause`` refutation from its stored grid."""
    d = r["details"]
    g = d["grid"]
    strongest = d.get("strongest") or {}
    marks = [{"label": "strongest", **strongest}] if strongest else []
    return [figure(sensitivity_contour(g["r2dz_x"], g["r2yz_dx"], g["estimate"], d["coefficient"], marks, _who(r)),
                   f"unobserved common cause contours of {_who(r)}",
                   f"{_who(r)}: the estimate adjusted for a confounder over the grid of partial R² the spec asked for "
                   f"({len(g['r2dz_x'])} × {len(g['r2yz_dx'])} points); the diamond is the strongest, whose "
                   f"interval is {number(strongest.get('ci_low'))} … {number(strongest.get('ci_high'))}.")]


def _msm_table(r: Mapping) -> Html:
    """The bounds of one ``marginal_sensitivity`` refutation per Λ, with their bootstrap interval."""
    d = r["details"]
    note = paragraph(f"The {d.get('target', 'ate').upper()} if an unobserved confounder moved each unit's odds of "
                     f"treatment by a factor up to Λ (Zhao, Small & Bhattacharya 2019); the bounds reach zero at "
                     f"Λ = {number(d.get('breakdown_lambda'))}, their {share(1 - d.get('alpha', 0.05))} interval at "
                     f"Λ = {number(d.get('breakdown_lambda_ci'))}. Outcome in {d.get('bins')} bins of width "
                     f"{number(d.get('bin_width'))}: the inner bounds show what the binning added.")
    rows = [(number(b["lambda"]), number(b["lower"]), number(b["upper"]), number(b["inner_lower"]),
             number(b["inner_upper"]), number(b["ci_low"]), number(b["ci_high"])) for b in d["bounds"]]
    return Html(note + table(["Λ", "lower", "upper", "inner lower", "inner upper", "interval low", "interval high"],
                             rows, numeric=range(0, 7)))


def sensitivity_section(result: StudyResult) -> Html | None:
    """Contour plots of the adjusted estimate over the confounder's partial R²."""
    parts: list[str] = []
    for r in result.refutations:
        details = r.get("details") or {}
        if r["refuter"] == "sensitivity" and "rv_q" in details:
            parts += [heading(_who(r)), *_sensitivity_figure(r)]
        elif r["refuter"] == "unobserved_common_cause" and details.get("grid"):
            parts += [heading(_who(r)), *_grid_figure(r)]
        elif r["refuter"] == "marginal_sensitivity" and details.get("bounds"):
            parts += [heading(_who(r)), _msm_table(r)]
    if not parts:
        return None
    return section("sensitivity", "Sensitivity to an unobserved confounder", parts)


def _implication(i: Mapping) -> str:
    given = i.get("given") or []
    return f"{i['x']} ⊥ {i['y']}" + (f" | {', '.join(given)}" if given else "")


def graph_validation_section(result: StudyResult) -> Html | None:
    """The graph's testable implications: each test with its p-value, adjusted p-value and
    whether the data reject it; the implications left untested and why."""
    v = result.graph_validation
    if v is None:
        return None
    if v.get("passed") is None:
        return section("graph-validation", "Graph validation", [paragraph(f"Not run: {v.get('reason', '')}")])
    tests = v.get("tests") or []
    parts: list[str] = [Html(
        f"<p>{badge(v['passed'])} {esc(len(tests))} implications tested, {esc(len(v.get('rejected') or []))} "
        f"rejected ({esc(v.get('method'))} correction, α = {esc(number(v.get('alpha')))}), "
        f"{esc(len(v.get('untested') or []))} untested.</p>")]
    if tests:
        parts.append(table(["implication", "test", "statistic", "dof", "partial correlation", "n", "p", "p adjusted",
                            "verdict"],
                           [(_implication(t["implication"]), t["test"], number(t["statistic"]), number(t.get("dof")),
                             number(t.get("partial_correlation")), number(t.get("n")), p_value(t["p_value"]),
                             p_value(t.get("p_adjusted")), badge(not t["rejected"], "holds", "REJECTED"))
                            for t in tests], numeric=range(2, 8), css="validation"))
    if v.get("rejected"):
        parts.append(paragraph("Each rejected independence points at an edge (or a latent common cause) the graph "
                               "lacks between its two variables: " + "; ".join(map(_implication, v["rejected"]))))
    if v.get("untested"):
        parts += [heading("Untested"), bullet_list(f"{u.get('text') or _implication(u['implication'])}: "
                                                   f"{u.get('reason', '')}" for u in v["untested"])]
    return section("graph-validation", "Graph validation", parts)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(x, Mapping) for x in value)


def _check_cells(record: Mapping[str, Any], columns: Sequence[str]) -> list:
    return [badge(record[c], "ok", "FAILED") if c == "success" and isinstance(record.get(c), bool)
            else plain(record.get(c)) for c in columns]


def checks_section(result: StudyResult) -> Html | None:
    """The data checks as results.json holds them (``passed``, counts, one record per check
    under ``rows``, the checking library's own result under ``validation``): the verdict,
    the scalar fields, each list of records as a table with a mark per check, and nested
    results folded away as JSON."""
    checks: Any = result.checks
    if checks is None:
        return None
    if not isinstance(checks, Mapping):
        return section("checks", "Data checks", [paragraph(plain(checks))])
    verdict = checks.get("passed", checks.get("success"))
    parts: list[str] = [Html(f"<p>{badge(verdict)}</p>")] if isinstance(verdict, bool) else []
    scalars = [(k, plain(v)) for k, v in checks.items() if not isinstance(v, (Mapping, list)) or
               (isinstance(v, list) and not _is_records(v))]
    if scalars:
        parts.append(key_values(scalars))
    for k, v in checks.items():
        if _is_records(v):
            columns = list(dict.fromkeys(c for r in v for c in r))
            parts.append(table(columns, (_check_cells(r, columns) for r in v), caption=k, css="checks"))
        elif isinstance(v, Mapping) and v:
            parts.append(Html(f"<details><summary>{esc(k)}</summary><pre>"
                              f"{esc(json.dumps(v, indent=2, ensure_ascii=False, default=str))}</pre></details>"))
    return section("checks", "Data checks", parts)
