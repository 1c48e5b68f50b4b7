"""The whybatch CLI: plan output, JSON, and exit codes for bad input."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from causal_core.identification.plan import EstimandPlan
from jobs.cli import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_plan_prints_every_example_study():
    for study in sorted((ROOT / "conf" / "studies").glob("*.yaml")):
        out = runner.invoke(app, ["plan", str(study)])
        assert out.exit_code == 0, out.output
        assert "Estimand plan for P(" in out.output and "default:" in out.output


def test_plan_json_round_trips():
    out = runner.invoke(app, ["plan", str(ROOT / "conf/studies/ads_frontdoor.yaml"), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    plan = EstimandPlan.from_dict(doc["purchase"])
    assert plan.default == "frontdoor"
    assert json.loads(plan.to_json()) == doc["purchase"]


def test_bad_spec_exits_2_and_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: {table: t}\ngraph: 'a -> b -> a'\ntreatment: a\noutcome: b\ncolour: red\n")
    out = runner.invoke(app, ["plan", str(bad)])
    assert out.exit_code == 2
    assert "cycle" in out.output and "colour" in out.output


def test_missing_study_exits_2(tmp_path):
    out = runner.invoke(app, ["plan", str(tmp_path / "nope.yaml")])
    assert out.exit_code == 2 and "no such study file" in out.output


def test_non_identifiable_study_exits_1(tmp_path):
    spec = tmp_path / "bow.yaml"
    spec.write_text("name: bow\ndata: {table: t}\ngraph: 'x -> y; x <-> y'\ntreatment: x\noutcome: y\n")
    out = runner.invoke(app, ["plan", str(spec)])
    assert out.exit_code == 1 and "NOT IDENTIFIABLE" in out.output and "hedge" in out.output


def _tiny_study(tmp_path) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    x = rng.normal(size=500)
    d = (rng.random(500) < 0.5).astype(int)
    pd.DataFrame({"x": x, "d": d, "y": d + x + rng.normal(size=500)}).to_parquet(tmp_path / "t.parquet")
    spec = tmp_path / "s.yaml"
    spec.write_text(f"""name: tiny
data: {{path: {tmp_path / 't.parquet'}, format: parquet}}
graph: "x -> d -> y; x -> y"
treatment: d
outcome: y
estimators: [ols]
bootstrap: {{replicates: 20, seed: 1}}
""")
    return spec


def test_a_tracking_server_that_is_down_fails_the_run_and_keeps_results_json(spark, tmp_path):
    """Nothing listens on the port: exit 1 naming the URI, results.json written before."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    out = runner.invoke(app, ["run", str(_tiny_study(tmp_path)), "--tracking-uri", uri, "--output",
                              str(tmp_path / "r.json"), "--quiet"])
    assert out.exit_code == 1, out.output
    assert uri in out.output and "results.json" in out.output
    kept = json.loads((tmp_path / "r.json").read_text())
    assert kept["study"] == "tiny" and kept["estimates"][0]["estimate"] is not None and kept["mlflow"] is None


def test_accepted_but_unbuilt_fields_warn_and_help_lists_the_built_commands():
    out = runner.invoke(app, ["plan", str(ROOT / "conf/studies/discount_observational.yaml")])
    assert out.exit_code == 0, out.output
    assert "refuters" not in out.output  # every refuter is built
    assert "schedule" not in out.output and "not built yet" not in out.output  # the DAG factory schedules it
    helped = runner.invoke(app, ["--help"])
    commands = {line.split()[1] for line in helped.output.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert {"plan", "run", "validate", "report", "history", "demo"} <= commands


def test_the_refutation_table_shows_each_refuters_measure_and_verdict():
    from jobs.cli import refutation_table

    text = refutation_table([
        {"refuter": "sensitivity", "estimator": "ols", "metric": "spend", "passed": False,
         "details": {"rv_q": 0.25, "rv_qa": 0.125}},
        {"refuter": "sensitivity", "estimator": "ols", "metric": "visits", "passed": None,
         "details": {"reason": "benchmark 'age' has no term"}},
        {"refuter": "placebo_treatment", "estimator": "ipw", "metric": "spend", "passed": True, "new_effect": 0.01,
         "p_value": 0.0, "details": {"sd": 0.05, "simulations": 100}},
    ], {"passed": False, "tests": [{}, {}], "rejected": [{}], "untested": [], "method": "holm", "alpha": 0.05})
    rows = text.splitlines()
    assert rows[1].split() == ["refuter", "estimator", "metric", "new", "effect", "p", "measure", "passed"]
    assert rows[2].split() == ["sensitivity", "ols", "spend", "-", "-", "RV_a", "0.125", "NO"]
    assert rows[3].split()[:6] == ["sensitivity", "ols", "visits", "-", "-", "-"] and "no term" in rows[3]
    assert rows[4].split() == ["placebo_treatment", "ipw", "spend", "0.01", "0", "sd", "0.05", "(S=100)", "yes"]
    assert rows[5] == "graph validation: 2 implications tested, 1 rejected (holm, alpha=0.05), 0 untested: FAILED"


@pytest.mark.slow
def test_run_keeps_sparks_own_output_off_the_console(tmp_path):
    """A fresh process: the JVM's start-up lines and log4j warnings go to the profile's log
    file; the console shows whybatch's table only."""
    import subprocess
    import sys

    _tiny_study(tmp_path)
    log = ROOT / "logs" / "spark.log"
    before = log.stat().st_size if log.exists() else 0
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(tmp_path / "s.yaml"), "--no-track", "--output",
                           str(tmp_path / "r.json")], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "ols" in done.stdout and (tmp_path / "r.json").exists()
    for chatter in ("log4j", "WARN", "incubator", "NativeCodeLoader", "setLogLevel"):
        assert chatter not in done.stderr and chatter not in done.stdout, chatter
    assert log.stat().st_size > before  # the JVM's lines went to the log file


def test_validate_runs_the_checks_and_rejects_a_graph_missing_an_edge(spark, tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    x1 = rng.normal(size=2000)
    x2 = 0.5 * x1 + rng.normal(size=2000)  # the graph below says x1 ⊥ x2
    d = (rng.random(2000) < 0.5).astype(int)
    pd.DataFrame({"x1": x1, "x2": x2, "d": d, "y": d + x1 + x2 + rng.normal(size=2000)}).to_parquet(
        tmp_path / "v.parquet")
    spec = tmp_path / "v.yaml"
    spec.write_text(f"""name: v
data: {{path: {tmp_path / 'v.parquet'}, format: parquet}}
graph: "x1 -> d -> y; x1 -> y; x2 -> d; x2 -> y"
treatment: d
outcome: y
treatment_values: {{treated: 1, control: 0}}
""")
    out = runner.invoke(app, ["validate", str(spec), "--quiet"])
    assert out.exit_code == 1, out.output
    assert "ok       critical  the interval has 2000 row(s)" in out.output
    assert "graph validation: 1 implications tested, 1 rejected" in out.output
    assert "REJECTED  x1 ⊥ x2" in out.output
    assert not (tmp_path / "results.json").exists()  # nothing estimated


def test_report_rebuilds_from_a_results_file_and_from_an_mlflow_run(spark, tmp_path, tracking_store):
    spec = _tiny_study(tmp_path)
    done = runner.invoke(app, ["run", str(spec), "--output", str(tmp_path / "r.json"), "--quiet"])
    assert done.exit_code == 0, done.output
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["mlflow"]["tracking_uri"] == tracking_store and (tmp_path / "report.html").exists()
    assert result["checks"]["passed"] is True
    from_file = runner.invoke(app, ["report", str(tmp_path / "r.json"), "--output", str(tmp_path / "a.html")])
    from_run = runner.invoke(app, ["report", result["mlflow"]["run_id"], "--output", str(tmp_path / "b.html")])
    assert from_file.exit_code == 0 and from_run.exit_code == 0, (from_file.output, from_run.output)
    a, b = (tmp_path / "a.html").read_text(), (tmp_path / "b.html").read_text()
    assert "tiny" in a and f"{result['estimates'][0]['estimate']:.4g}" in a
    assert a == b  # the run's results.json is the file's
    missing = runner.invoke(app, ["report", "0123456789abcdef", "--output", str(tmp_path / "c.html")])
    assert missing.exit_code == 1 and "neither a results file nor a run" in missing.output
    history = runner.invoke(app, ["history", "tiny"])
    assert history.exit_code == 0, history.output
    assert "all partitions" in history.output and f"{result['estimates'][0]['estimate']:.4g}" in history.output
