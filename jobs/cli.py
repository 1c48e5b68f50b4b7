"""The ``whybatch`` command line.

Exit codes (DESIGN.md): 0 done; 1 a study failed its checks or could not be estimated;
2 bad invocation or bad spec.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from causal_core.errors import SpecError, WhybatchError
from jobs.spark.server import server_app

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="whybatch: causal effect estimation on warehouse data (plan, run, validate, report, history, demo).")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
app.add_typer(server_app, name="server")

EXIT_OK, EXIT_STUDY_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _fail(exc: Exception) -> None:
    code = EXIT_BAD_INPUT if isinstance(exc, SpecError) else EXIT_STUDY_FAILED
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _warn_ignored(spec) -> None:
    for line in spec.ignored_fields():
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)


def _resolve_study(study: str) -> Path:
    from jobs.entrypoints import resolve_study

    return resolve_study(study)


@app.command()
def plan(study: Annotated[str, typer.Argument(help="study YAML path or name under conf/studies")],
         as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False) -> None:
    """Print the estimand plan of a study (one per outcome metric)."""
    from causal_core.spec import load_spec
    from causal_core.study.plans import plan_study

    try:
        spec = load_spec(_resolve_study(study))
        plans = plan_study(spec)
    except WhybatchError as exc:
        _fail(exc)
    _warn_ignored(spec)
    if as_json:
        sys.stdout.write(json.dumps({m: p.to_dict() for m, p in plans.items()}, indent=2, ensure_ascii=False) + "\n")
    else:
        console.rule(f"[bold]{spec.name}[/]")
        for p in plans.values():
            console.print(str(p), highlight=False, markup=False)
            console.print()
    if not all(p.identifiable for p in plans.values()):
        raise typer.Exit(EXIT_STUDY_FAILED)


@app.command()
def validate(study: Annotated[str, typer.Argument(help="study YAML path or name under conf/studies")],
             start: Annotated[Optional[str], typer.Option(help="first partition (inclusive)")] = None,
             end: Annotated[Optional[str], typer.Option(help="end of the interval (exclusive)")] = None,
             profile: Annotated[str, typer.Option(help="Spark profile in conf/spark/")] = "local",
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False) -> None:
    """Run only the data checks and graph validation on a partition interval (nothing is
    estimated); exit 1 when a critical check fails or the data reject the graph."""
    from jobs.entrypoints import prepare_run, validate_study
    from jobs.progress import SILENT, ConsoleProgress
    from jobs.spark.session import build_session

    try:
        prepared = prepare_run(study, start=start, end=end, profile=profile)
        progress = SILENT if quiet else ConsoleProgress(err)
        with progress.stage(f"start Spark ({prepared.profile.name} profile)"):
            spark = build_session(prepared.profile)
        checks, graph = validate_study(spark, prepared, progress)
    except WhybatchError as exc:
        _fail(exc)
    for row in checks.rows:
        mark = "ok" if row.success else ("FAILED" if row.severity == "critical" else "warning")
        console.print(f"{mark:<8} {row.severity:<9} {row.message}", highlight=False, markup=False)
    if graph:
        console.print(graph_line(graph), highlight=False, markup=False)
    for t in (graph or {}).get("tests", []):
        i = t["implication"]
        text = f"{i['x']} ⊥ {i['y']}" + (f" | {', '.join(i['given'])}" if i["given"] else "")
        console.print(f"  {'REJECTED' if t['rejected'] else 'holds':<9} {text:<40} p = {t['p_value']:.3g}, "
                      f"adjusted {t['p_adjusted']:.3g}", highlight=False, markup=False)
    if not checks.passed or (graph or {}).get("passed") is False:
        raise typer.Exit(EXIT_STUDY_FAILED)


@app.command()
def report(source: Annotated[str, typer.Argument(help="a results.json file or an MLflow run id")],
           output: Annotated[Path, typer.Option(help="where to write the report")] = Path("report.html"),
           study: Annotated[Optional[str], typer.Option(help="the study's YAML (draws its graph as declared)")] = None,
           tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI")] = None
           ) -> None:
    """Rebuild report.html from a results file or from an MLflow run."""
    from causal_core.spec import load_spec
    from jobs.entrypoints import load_results
    from jobs.report import write_report

    try:
        result = load_results(source, tracking_uri)
        spec = load_spec(_resolve_study(study)) if study else None
        path = write_report(result, output, spec=spec)
    except WhybatchError as exc:
        _fail(exc)
    interval = result.interval
    span = f"[{interval.start or '…'}, {interval.end or '…'})" if interval.start or interval.end else "all partitions"
    console.print(f"wrote {path} ({result.study}, {span})")


@app.command()
def history(study: Annotated[str, typer.Argument(help="study name (as in its YAML's name:)")],
            profile: Annotated[str, typer.Option(help="Spark profile in conf/spark/")] = "local",
            metric: Annotated[Optional[str], typer.Option(help="only this metric")] = None) -> None:
    """Print a study's estimates over the past intervals (from the whybatch_results table)."""
    from rich.table import Table

    from jobs.spark.session import build_session, load_profile
    from jobs.tracking.results_table import read_history

    try:
        name = study
        if Path(study).is_file() or not study.replace("_", "").replace("-", "").isalnum():
            from causal_core.spec import load_spec

            name = load_spec(_resolve_study(study)).name
        spark = build_session(load_profile(profile))
        rows = read_history(spark, name)
    except WhybatchError as exc:
        _fail(exc)
    if metric:
        rows = rows[rows["metric"] == metric]
    if rows.empty:
        err.print(f"no results of {name!r} in the results table yet (whybatch run writes them)")
        raise typer.Exit(EXIT_STUDY_FAILED)
    table = Table("interval end", "metric", "estimator", "segment", "estimate", "95% interval", "n", title=name)
    for r in rows.itertuples():
        interval = "-" if r.estimate != r.estimate or r.estimate is None else f"[{r.ci_low:.4g}, {r.ci_high:.4g}]"
        table.add_row("all partitions" if r.interval_end is None else str(r.interval_end), r.metric, r.estimator, r.segment,
                      "-" if r.estimate is None or r.estimate != r.estimate else f"{r.estimate:.4g}", interval,
                      "" if r.n is None or r.n != r.n else f"{int(r.n):,}")
    Console(width=max(console.width, 120)).print(table)


def main() -> None:  # pragma: no cover - console entry
    app()



def refutation_table(refutations, graph_validation=None) -> str:
    """The run's refutations, one line each: refuter, estimator, metric, the effect it implies,
    its p-value, what it measured (RV for sensitivity, the simulations' spread otherwise),
    passed; then graph validation's verdict."""
    def number(value) -> str:
        return "-" if value is None else f"{value:.4g}"

    lines = ["", f"{'refuter':<24} {'estimator':<14} {'metric':<12} {'new effect':>10} {'p':>6}  {'measure':<18} passed"]
    for r in refutations:
        details = r.get("details") or {}
        passed = "-" if r.get("passed") is None else ("yes" if r["passed"] else "NO")
        if "rv_qa" in details:
            measure = f"RV_a {number(details['rv_qa'])}"
        elif "sd" in details:
            measure = f"sd {number(details['sd'])} (S={details.get('simulations')})"
        elif "strongest" in details:
            s = details["strongest"]
            measure = f"CI {number(s['ci_low'])}..{number(s['ci_high'])}"
        else:
            measure = ""
        line = (f"{r['refuter']:<24} {r['estimator']:<14} {r['metric']:<12} {number(r.get('new_effect')):>10} "
                f"{number(r.get('p_value')):>6}  {measure:<18} {passed}")
        lines.append(line + (f"  ({details['reason']})" if "reason" in details else ""))
    if graph_validation:
        lines.append(graph_line(graph_validation))
    return "\n".join(lines)


def graph_line(graph_validation: dict) -> str:
    """Graph validation's verdict in one line."""
    if graph_validation.get("passed") is None:
        return f"graph validation: not run ({graph_validation.get('reason')})"
    return (f"graph validation: {len(graph_validation.get('tests', []))} implications tested, "
            f"{len(graph_validation.get('rejected', []))} rejected ({graph_validation.get('method')}, "
            f"alpha={graph_validation.get('alpha')}), {len(graph_validation.get('untested', []))} untested: "
            f"{'passed' if graph_validation['passed'] else 'FAILED'}")


@app.command()
def run(study: Annotated[str, typer.Argument(help="study YAML path or name under conf/studies")],
        start: Annotated[Optional[str], typer.Option(help="first partition (inclusive), e.g. 2026-11-01")] = None,
        end: Annotated[Optional[str], typer.Option(help="end of the interval (exclusive)")] = None,
        profile: Annotated[str, typer.Option(help="Spark profile in conf/spark/")] = "local",
        tracking_uri: Annotated[Optional[str], typer.Option(
            "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db here)")] = None,
        track: Annotated[bool, typer.Option("--track/--no-track", help="log to MLflow and the results table")] = True,
        output: Annotated[Path, typer.Option(help="where to write results.json")] = Path("results.json"),
        report: Annotated[Optional[Path], typer.Option(help="where to write report.html (default: beside results.json)")
                          ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display (for schedulers)")] = False
        ) -> None:
    """Check the data, estimate and refute a study on a partition interval; write results.json
    and report.html, log the run to MLflow and its rows to the results table."""
    import logging

    from jobs.entrypoints import execute, preload, prepare_run
    from jobs.progress import SILENT, ConsoleProgress
    from jobs.spark.session import build_session, log_files

    for noisy in ("mlflow", "alembic"):  # store migrations and run notices: not the user's business
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        prepared = prepare_run(study, start=start, end=end, profile=profile)
        _warn_ignored(prepared.spec)
        progress = SILENT if quiet else ConsoleProgress(err)
        preload(track)
        with progress.stage(f"start Spark ({prepared.profile.name} profile)") as stage:
            spark = build_session(prepared.profile)
            stage.note = (f"Spark Connect at {prepared.profile.remote}" if getattr(prepared.profile, "remote", None)
                          else f"log: {log_files(prepared.profile)[0]}")
        result = execute(spark, prepared, output=output, tracking_uri=tracking_uri, track=track,
                         report=report if report is not None else output.with_name("report.html"), progress=progress)
    except WhybatchError as exc:
        _fail(exc)
    console.print(str(result), highlight=False, markup=False)
    if result.refutations or result.graph_validation:
        console.print(refutation_table(result.refutations, result.graph_validation), highlight=False, markup=False)
    for line in result.warnings:
        if line in prepared.spec.ignored_fields():
            continue
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, markup=True, soft_wrap=True)
    for row in (result.checks or {}).get("rows", []):
        if not row.get("success") and row.get("severity") == "warning":
            err.print(f"[yellow]check:[/] {escape(str(row.get('message')))}", highlight=False)
    console.print(f"wrote {output}" + (f" and {report or output.with_name('report.html')}"))
    if result.mlflow:
        console.print(f"MLflow run {result.mlflow['run_id']} in {result.mlflow['tracking_uri']} "
                      f"(browse: mlflow ui --backend-store-uri {result.mlflow['tracking_uri']})")
    if result.failed and not result.estimated:
        raise typer.Exit(EXIT_STUDY_FAILED)


@app.command()
def demo(rows: Annotated[int, typer.Option(help="rows per demo table")] = 200_000,
         profile: Annotated[str, typer.Option(help="Spark profile in conf/spark/")] = "local",
         studies: Annotated[Path, typer.Option(help="folder of example studies")] = Path("conf/studies"),
         output: Annotated[Path, typer.Option(help="folder for the results files")] = Path("output")) -> None:
    """Build the demo warehouse (known effects), run the example studies, print estimate vs truth."""
    from rich.table import Table

    import logging

    from causal_core.spec import load_spec
    from causal_core.study.plans import plan_study
    from jobs.entrypoints import execute, prepare_run
    from jobs.progress import ConsoleProgress
    from jobs.spark.session import build_session
    from jobs.tracking.mlflow_runs import resolve_tracking_uri
    from jobs.warehouse.demo import build_demo_warehouse

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        from jobs.spark.session import PROJECT_DIR

        if not studies.is_dir() and not studies.is_absolute():  # run from elsewhere: the project's examples
            studies = PROJECT_DIR / studies
        specs = [load_spec(p) for p in sorted(studies.glob("*.yaml"))]
        if not specs:
            raise SpecError(f"no study files (*.yaml) in {studies}")
        for spec in specs:
            for plan_ in plan_study(spec).values():
                console.print(str(plan_), highlight=False, markup=False)
                console.print()
        spark = build_session(profile)
        console.print(f"building the demo warehouse ({rows} rows per table)...")
        truths = build_demo_warehouse(spark, rows)
        table = Table(title="whybatch demo: estimate vs truth")
        for col in ("study", "metric", "estimator", "arm", "target", "estimate", "95% CI", "truth", "covered"):
            table.add_column(col)
        for spec in specs:
            err.rule(spec.name)
            result = execute(spark, prepare_run(spec, profile=profile), output=output / spec.name / "results.json",
                             track=True, report=output / spec.name / "report.html", progress=ConsoleProgress(err))
            for e in result.estimates:
                if e.segment != "all":  # segments are in the report; the table compares with the truth
                    continue
                if not e.estimated:
                    table.add_row(spec.name, e.metric, str(e.estimator), "", "", "—", e.reason[:60], "", "")
                    continue
                arm = e.contrast.split(": ", 1)[-1].split(" vs ")[0] if e.contrast else ""
                truth = truths.get((spec.name, e.metric, e.target), truths.get((spec.name, e.metric, f"ate:{arm}")))
                interval = (e.ci_low, e.ci_high)
                covered = "" if truth is None or None in interval else \
                    ("yes" if e.ci_low <= truth <= e.ci_high else "NO")
                table.add_row(spec.name, e.metric, e.estimator, arm if arm and arm != "1" else e.segment, e.target,
                              f"{e.estimate:.4f}",
                              "[" + ", ".join("nan" if v is None else f"{v:.4f}" for v in interval) + "]",
                              "" if truth is None else f"{truth:.4f}", covered)
        table.caption = ("covered = the 95% CI contains the simulated truth; coarse propensity strata "
                         "(stratification) leave residual confounding by design; newsletter_refutation is biased "
                         "by a hidden confounder on purpose (its refuters say so)")
        Console(width=max(console.width, 150)).print(table)
        uri = resolve_tracking_uri()
        console.print(f"results and reports: {output}/<study>/results.json and report.html "
                      f"(open {output / specs[0].name / 'report.html'} in a browser)")
        console.print(f"MLflow runs in {uri}; browse them with: .venv/bin/mlflow ui --backend-store-uri {uri} "
                      "(then http://127.0.0.1:5000)")
    except WhybatchError as exc:
        _fail(exc)


if __name__ == "__main__":  # pragma: no cover - python -m jobs.cli
    main()
