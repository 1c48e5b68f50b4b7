"""``report.html``: one self-contained page per study run, written from its StudyResult.

The page needs no network: the styles are inline, every plot is a PNG in a ``data:`` URI,
there is no script, and a Content-Security-Policy forbids the browser to fetch anything
else or run anything. Sections appear only when the result holds their data; in order:
summary, causal graph, estimand, estimates, balance, overlap, bootstrap, refutations,
sensitivity, graph validation, data checks, and the estimate over past intervals when a
history is given.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from causal_core.spec import StudySpec
from causal_core.study import StudyResult
from jobs.report.diagnostic_sections import balance_section, bootstrap_section, overlap_section
from jobs.report.markup import Html, esc, figure, heading, number, paragraph, section, table
from jobs.report.plots import history_plot
from jobs.report.refutation_sections import (checks_section, graph_validation_section, refutations_section,
                                             sensitivity_section)
from jobs.report.study_sections import (estimand_section, estimates_section, graph_section, interval_text,
                                        summary_section)

HISTORY_COLUMNS = ("interval_end", "estimator", "metric", "segment", "estimate", "ci_low", "ci_high")

# No fetches, no scripts: images only from data: URIs, styles only from the inline sheet.
CONTENT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
:root { --ink: #1a202c; --muted: #4a5568; --line: #e2e8f0; --pass: #276749; --fail: #c53030; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0; background: #f7fafc; }
header { background: #1a365d; color: white; padding: 1.2rem 2rem; }
header h1 { margin: 0; font-size: 1.5rem; }
header p { margin: 0.3rem 0 0; color: #cbd5e0; }
nav { padding: 0.6rem 2rem; background: white; border-bottom: 1px solid var(--line); position: sticky; top: 0; }
nav a { margin-right: 1rem; color: var(--accent); text-decoration: none; font-size: 0.9rem; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 2rem 3rem; }
section { background: white; border: 1px solid var(--line); border-radius: 6px; padding: 1rem 1.5rem;
          margin: 1.2rem 0; overflow-x: auto; }
h2 { margin-top: 0; font-size: 1.25rem; border-bottom: 2px solid var(--line); padding-bottom: 0.3rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.5rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.88rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
thead th { background: #edf2f7; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { font-weight: 600; color: var(--muted); white-space: nowrap; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 0.85rem; padding-top: 0.3rem; }
td ul { margin: 0; padding-left: 1.1rem; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85rem; }
pre { background: #edf2f7; padding: 0.6rem; overflow-x: auto; }
figure { margin: 0.8rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.85rem; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8rem; }
.gallery figure { width: 340px; margin: 0; }
.badge { display: inline-block; padding: 0.05rem 0.5rem; border-radius: 999px; font-size: 0.8rem; font-weight: 600; }
.badge.pass { background: #c6f6d5; color: var(--pass); }
.badge.fail { background: #fed7d7; color: var(--fail); }
.badge.none { background: #edf2f7; color: var(--muted); }
ul.warnings li { color: #975a16; }
p.bad { color: var(--fail); font-weight: 600; }
p.ok { color: var(--pass); }
"""


def history_section(result: StudyResult, history: pd.DataFrame | None) -> Html | None:
    """The study's estimates over past intervals (a scheduled study's history): one plot per
    metric, a line per estimator and segment with its interval shaded, and the numbers."""
    if history is None:
        return None
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history: missing column(s) {', '.join(missing)}; expected {', '.join(HISTORY_COLUMNS)}")
    frame = history if "study" not in history.columns else history[history["study"] == result.study]
    if frame.empty:
        return section("history", "Estimate over past intervals",
                       [paragraph(f"The history holds no intervals of {result.study}.")])
    frame = frame.assign(series=[f"{e}" if s == "all" else f"{e} ({s})"
                                 for e, s in zip(frame["estimator"], frame["segment"])])
    parts: list[str] = []
    for metric, part in frame.groupby("metric", sort=False):
        part = part.sort_values(["interval_end", "series"])
        parts += [heading(str(metric)),
                  figure(history_plot(part, f"{metric} by interval"), f"{metric} over past intervals",
                         f"{metric}: the estimate at each interval's end, its interval shaded "
                         f"({part['interval_end'].nunique()} intervals)."),
                  table(["interval end", "estimator", "segment", "estimate", "CI low", "CI high"],
                        [(str(r.interval_end), r.estimator, r.segment, number(_float(r.estimate)),
                          number(_float(r.ci_low)), number(_float(r.ci_high))) for r in part.itertuples()],
                        numeric=(3, 4, 5))]
    return section("history", "Estimate over past intervals", parts)


def _float(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def render_report(result: StudyResult, spec: StudySpec | None = None, history: pd.DataFrame | None = None) -> str:
    """The report of one study run as a self-contained HTML page.

    ``spec`` adds the study's description and its graph as written (without it the graph
    comes from the estimand plans); ``history`` (columns ``study``, ``interval_end``,
    ``estimator``, ``metric``, ``segment``, ``estimate``, ``ci_low``, ``ci_high``) adds
    the estimate over past intervals."""
    if not isinstance(result, StudyResult):
        raise TypeError(f"render_report: expected a StudyResult, got {type(result).__name__}")
    sections = [s for s in (
        summary_section(result, spec), graph_section(result, spec), estimand_section(result),
        estimates_section(result), balance_section(result), overlap_section(result), bootstrap_section(result),
        refutations_section(result), sensitivity_section(result), graph_validation_section(result),
        checks_section(result), history_section(result, history)) if s is not None]
    links = "".join(f'<a href="#{m.group(1)}">{m.group(2)}</a>'
                    for m in (re.match(r'<section id="([^"]+)"><h2>(.*?)</h2>', s) for s in sections))
    title = f"{result.study} — {interval_text(result)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><h1>{esc(result.study)}</h1><p>{esc(interval_text(result))} · {esc(number(result.rows))} rows"
            f" · run {esc(result.run_key)}</p></header><nav>{links}</nav><main>{''.join(sections)}</main>"
            "</body></html>\n")


def write_report(result: StudyResult, path: str | Path, spec: StudySpec | None = None,
                 history: pd.DataFrame | None = None) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8; parent directories created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(result, spec, history), encoding="utf-8")
    return target
