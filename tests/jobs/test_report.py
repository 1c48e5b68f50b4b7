"""report.html from real study runs: sections present exactly when their data is, numbers
as the result holds them, every plot an inline PNG, nothing fetched, user text escaped."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from causal_core.spec import load_spec
from causal_core.study import Interval
from jobs.estimate import estimate_study
from jobs.report import render_report, write_report

pytestmark = pytest.mark.spark

DAYS = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
INJECTION = "<script>alert('x')</script> & <b>bold</b>"
TRUE_EFFECT = 2.0

FULL_SPEC = f"""
name: tiny_report
description: "Tiny study for the report {INJECTION}"
design: observational
data: {{path: "{{path}}", format: parquet, partition_column: day, unit_id: uid}}
graph: |
  x1 -> d -> y
  x1 -> y
  x2 -> d
  x2 -> y
  seg -> y
treatment: d
outcome: y
treatment_values: {{treated: 1, control: 0}}
estimators: [ols, ipw]
bootstrap: {{replicates: 60, seed: 5}}
segments: [seg]
encode: {{seg: categorical}}
refuters:
  - placebo_treatment: {{simulations: 10}}
  - random_common_cause: {{simulations: 10}}
  - dummy_outcome: {{simulations: 10}}
  - data_subset: {{simulations: 10, fraction: 0.8}}
  - sensitivity: {{benchmarks: [x1], kd: [1, 2]}}
  - unobserved_common_cause: {{r2dz_x: [0.01, 0.05, 0.1], r2yz_dx: [0.01, 0.05, 0.1]}}
  - graph_validation: {{alpha: 0.05, method: holm}}
"""

BARE_SPEC = """
name: tiny_bare
design: observational
data: {path: "{path}", format: parquet, partition_column: day, unit_id: uid}
graph: |
  x1 -> d -> y
  x1 -> y
treatment: d
outcome: y
treatment_values: {treated: 1, control: 0}
estimators: [ols]
bootstrap: {replicates: 0, seed: 1}
"""


# results.json's ``checks`` as the data checks write it: verdict, counts, one record per check
CHECKS = {"passed": False, "critical_failures": 1, "warnings": 0, "rows": [
    {"check": "min_rows", "expectation": "expect_table_row_count_to_be_between", "column": None,
     "severity": "critical", "success": True, "message": "at least 100 rows", "observed": 2400,
     "unexpected_count": None, "element_count": None, "source": "great_expectations", "estimator": None},
    {"check": "treatment_values", "expectation": "expect_column_values_to_be_in_set", "column": "d",
     "severity": "critical", "success": False, "message": "d takes values outside {0, 1}", "observed": None,
     "unexpected_count": 12, "element_count": 2400, "source": "great_expectations", "estimator": None}],
    "validation": {"success": False, "statistics": {"evaluated_expectations": 2, "successful_expectations": 1}}}


def _tiny_table(path: Path, rows: int = 2400) -> Path:
    """Confounded by x1 and x2, effect TRUE_EFFECT, a text segment; four daily partitions."""
    rng = np.random.default_rng(7)
    x1, x2 = rng.normal(size=rows), rng.binomial(1, 0.4, size=rows)
    d = rng.binomial(1, 1 / (1 + np.exp(-(0.6 * x1 + 0.8 * x2 - 0.3))))
    seg = rng.choice(["north", "south"], size=rows)
    y = TRUE_EFFECT * d + 1.5 * x1 + x2 + 0.5 * (seg == "north") + rng.normal(size=rows)
    frame = pd.DataFrame({"uid": np.arange(rows), "day": np.array(DAYS)[np.arange(rows) % len(DAYS)], "x1": x1,
                          "x2": x2.astype(float), "d": d, "seg": seg, "y": y})
    path.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path / "part.parquet", index=False)
    return path


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """Real runs: the full study on all days and on two intervals (a history), the bare one."""
    root = tmp_path_factory.mktemp("report")
    data = _tiny_table(root / "table")
    specs = {}
    for name, text in (("full", FULL_SPEC), ("bare", BARE_SPEC)):
        (root / f"{name}.yaml").write_text(text.replace("{path}", str(data)))
        specs[name] = load_spec(root / f"{name}.yaml")
    full = estimate_study(spark, specs["full"], Interval())
    bare = estimate_study(spark, specs["bare"], Interval())
    past = [estimate_study(spark, specs["bare"], Interval(DAYS[0], end)) for end in (DAYS[2], DAYS[3])]
    history = pd.DataFrame([{"study": r.study, "interval_end": r.interval.end, "estimator": e.estimator,
                             "metric": e.metric, "segment": e.segment, "estimate": e.estimate, "ci_low": e.ci_low,
                             "ci_high": e.ci_high} for r in past for e in r.estimated])
    return {"full": full, "bare": bare, "specs": specs, "history": history}


@pytest.fixture(scope="module")
def full_html(runs):
    return render_report(runs["full"], spec=runs["specs"]["full"])


@pytest.fixture(scope="module")
def bare_html(runs):
    return render_report(runs["bare"])


class _Page(HTMLParser):
    """The page's section ids, images, and every text node."""

    def __init__(self) -> None:
        super().__init__()
        self.sections, self.images, self.texts, self.scripts, self.links = [], [], [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a["id"])
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "script":
            self.scripts += 1
        if "href" in a:
            self.links.append(a["href"])

    def handle_data(self, data):
        self.texts.append(data)


def _page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _cell_rows(html: str, section: str) -> list[list[str]]:
    """The text of every table row's cells in one section."""
    body = re.search(rf'<section id="{section}">(.*?)</section>', html, re.S).group(1)
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        rows.append([re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)])
    return rows


def _records(html: str, section: str) -> list[dict[str, str]]:
    """The data rows of a section's tables as dicts keyed by the column headers."""
    out, header = [], None
    for row in _cell_rows(html, section):
        if row and row[0] in ("segment", "refuter", "implication", "covariate", "interval end"):
            header = row
        elif header and len(row) == len(header):
            out.append(dict(zip(header, row)))
    return out


def test_every_section_with_data_is_present_in_order(runs, full_html):
    assert _page(full_html).sections == ["summary", "graph", "estimand", "estimates", "balance", "overlap",
                                         "bootstrap", "refutations", "sensitivity", "graph-validation"]
    with_all = render_report(dataclasses.replace(runs["full"], checks=CHECKS), spec=runs["specs"]["full"],
                             history=runs["history"])
    assert _page(with_all).sections[-2:] == ["checks", "history"]
    rows = _cell_rows(with_all, "checks")
    assert ["critical_failures", "1"] in rows and ["warnings", "0"] in rows
    assert rows[-2][:5] == ["min_rows", "expect_table_row_count_to_be_between", "—",
                            "critical", "ok"]
    assert rows[-1][4] == "FAILED" and rows[-1][7] == "12" and "treatment_values" in rows[-1]
    assert "&quot;evaluated_expectations&quot;: 2" in with_all  # the checking library's result, folded


def test_sections_without_data_are_absent(bare_html):
    # ols alone, no bootstrap, no refuters: no weighting balance, no propensity histogram,
    # no bootstrap, refutation, sensitivity, validation, checks or history sections
    assert _page(bare_html).sections == ["summary", "graph", "estimand", "estimates", "overlap"]
    assert "propensity overlap of" not in bare_html  # ols has score ranges, not a histogram


def test_estimates_table_holds_the_results_numbers(runs, full_html):
    result = runs["full"]
    table = {(r["segment"], r["estimator"]): r for r in _records(full_html, "estimates")}
    assert len(table) == len(result.estimated) == 6  # 2 estimators x (all, north, south)
    for e in result.estimated:
        row = table[(e.segment, e.estimator)]
        assert [row[c] for c in ("estimate", "se", "CI low", "CI high", "p", "n")] == [
            f"{e.estimate:.4g}", f"{e.se:.4g}", f"{e.ci_low:.4g}", f"{e.ci_high:.4g}", f"{e.p_value:.3g}", str(e.n)]
    assert f"<h3>y ({result.estimated[0].contrast})</h3>" in full_html  # one contrast: said once, not per row
    ols = next(e for e in result.estimated if e.estimator == "ols" and e.segment == "all")
    assert abs(ols.estimate - TRUE_EFFECT) < 5 * ols.se


def test_refutation_and_validation_tables_hold_the_results_values(runs, full_html):
    result = runs["full"]
    rows = [list(r.values()) for r in _records(full_html, "refutations")]
    assert [(r[0], r[1], r[7]) for r in rows] == [
        (x["refuter"], x["estimator"], {True: "passed", False: "FAILED", None: "not judged"}[x["passed"]])
        for x in result.refutations]
    placebo = next(x for x in result.refutations if x["refuter"] == "placebo_treatment")
    assert rows[0][4] == f"{placebo['new_effect']:.4g}" and rows[0][5] == f"{placebo['p_value']:.3g}"
    tests = result.graph_validation["tests"]
    validation = [list(r.values()) for r in _records(full_html, "graph-validation")]
    assert len(validation) == len(tests) > 0
    for row, t in zip(validation, tests):
        assert row[6:9] == [f"{t['p_value']:.3g}", f"{t['p_adjusted']:.3g}",
                            "REJECTED" if t["rejected"] else "holds"]


def test_balance_table_holds_the_standardized_differences(runs, full_html):
    ipw = next(e for e in runs["full"].estimated if e.estimator == "ipw" and e.segment == "all")
    first = [r for r in _cell_rows(full_html, "balance") if r[0] != "covariate"][:len(ipw.diagnostics["smd_before"])]
    rows = {r[0]: r for r in first}  # the first model drawn is ipw's on all rows
    for name, before in ipw.diagnostics["smd_before"].items():
        assert rows[name][1:] == [f"{before:.4g}", f"{ipw.diagnostics['smd_after'][name]:.4g}"]
    assert abs(ipw.diagnostics["smd_before"]["x1"]) > 0.1 > abs(ipw.diagnostics["smd_after"]["x1"])


def test_every_image_is_an_inline_png(full_html, bare_html):
    for html, least in ((full_html, 15), (bare_html, 2)):
        images = _page(html).images
        assert len(images) >= least
        for src in images:
            assert src.startswith("data:image/png;base64,")
            picture = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
            assert picture.ndim == 3 and picture.shape[0] > 50 and picture.shape[1] > 50


def test_nothing_is_fetched_and_nothing_runs(runs, full_html):
    page = _page(full_html)
    assert page.scripts == 0
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", full_html)
    assert "http://" not in full_html and "https://" not in full_html and "@import" not in full_html
    assert not re.search(r"url\(", full_html)
    assert all(link.startswith("#") for link in page.links)
    assert "default-src 'none'" in full_html


def test_user_text_is_escaped(full_html):
    assert "<script>" not in full_html and "<b>bold</b>" not in full_html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in full_html
    assert any(INJECTION in text for text in _page(full_html).texts)  # shown to the reader as written


def test_history_plots_the_past_intervals(runs):
    html = render_report(runs["bare"], history=runs["history"])
    rows = [list(r.values()) for r in _records(html, "history")]
    assert [r[0] for r in rows] == [DAYS[2], DAYS[3]]
    for row, e in zip(rows, runs["history"].itertuples()):
        assert row[3:] == [f"{e.estimate:.4g}", f"{e.ci_low:.4g}", f"{e.ci_high:.4g}"]
    assert len(_page(html).images) == len(_page(render_report(runs["bare"])).images) + 1


def test_the_estimand_section_says_the_strategy_and_its_adjustment_set(runs, full_html):
    plan = runs["full"].plan["y"]
    body = re.search(r'<section id="estimand">(.*?)</section>', full_html, re.S).group(1)
    chosen = plan.strategy()
    assert f"<strong>{chosen.name}</strong>" in body and plan.default_reason in body
    assert f"adjust for: {', '.join(chosen.adjustment)}" in body and set(chosen.adjustment) == {"x1", "x2", "seg"}


def test_write_report_writes_the_rendered_page(runs, tmp_path):
    path = write_report(runs["bare"], tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8") == render_report(runs["bare"])
