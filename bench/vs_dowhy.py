"""DoWhy versus whybatch on the same data and the same work: OLS and IPW, 100-replicate bootstrap.

    python bench/vs_dowhy.py [--rows 1000000] [--data-dir /tmp/whybatch-bench] [--replicates 100]
        [--skip-dowhy] [--skip-cli] [--skip-server] [--warm-runs 2] [--timed-runs 3] [--server-runs 3]
        [--no-track] [--no-breakdown]

The data (``bench/datagen.py``: five confounders, binary treatment, ATE = 2) is drawn once
with numpy into ONE parquet file that both tools read. The work, for each tool:

* linear regression ``y ~ 1 + d + W0..W4`` (DoWhy ``backdoor.linear_regression``; whybatch
  ``ols`` with ``interactions: false`` — the same additive model) with a bootstrap CI;
* IPW with normalised (Hajek) weights and propensities clipped to [0.05, 0.95] from an
  unpenalised logistic model on W0..W4 (DoWhy ``backdoor.propensity_score_weighting``,
  ``weighting_scheme="ips_normalized_weight"``, its default clip 0.05 / 0.95 and
  ``LogisticRegression(penalty=None)``; whybatch ``ipw`` with ``clip: 0.05``), bootstrap CI;

each bootstrap with ``--replicates`` (100) replicates: DoWhy's ``confidence_intervals=
"bootstrap"`` with ``method_params={"num_simulations": 100}`` (row resampling and a refit
per replicate; the bench counts the replicates DoWhy really ran), whybatch's bucket
bootstrap (B = 100 reweightings of K = 1000 per-bucket moment sums).

Timed: DoWhy from ``CausalModel(...)`` to the interval (the pandas read is shown, not
counted), once (two minutes a run). whybatch in three ways, all on the ``local`` profile's
session settings (``local[*]``, 4g driver):

* *warm*: ``jobs.estimate.estimate_study`` on a session already started in this process, that
  has run both studies ``--warm-runs`` (2) times on other data of the same size (another
  seed), with the file already read once (all shown, not counted) — as a service that has
  run these studies before finds its JVM: code generated and JIT-compiled; each study is
  then timed ``--timed-runs`` (3) times and the median run counts. It still reads the
  parquet, prepares and caches the model frame, and fits.
* *fresh vs a server*: a fresh ``whybatch run <spec>.yaml --profile <connect>.yaml``
  process against a Spark Connect server the bench starts (``whybatch server start``; its
  own warehouse, Derby metastore and logs under ``<data dir>/vs_dowhy-connect/``, on a free
  port; stopped in any case at the end) and warms with one such run on the other data (not
  counted); then ``--server-runs`` (3) timed runs, the median counting. The process starts
  no JVM; it runs the whole ``whybatch run``: data checks, estimates, report, and (unless
  ``--no-track``) the results table and MLflow.
* *fresh with its own JVM*: the same command on a classic profile (warehouse and metastore
  under ``<data dir>/vs_dowhy-local/``, so it never meets the server's Derby metastore, which
  one process at a time may open): interpreter, JVM and session start included.

The estimates of all three must be equal, and agree with DoWhy and the truth (asserted).
Targets: DoWhy / warm >= 50x, DoWhy / fresh vs the server >= 20x.

Where the time goes (unless ``--no-breakdown``): each session — the warm one, the fresh
process's own, the server — writes Spark's event log (``bench/event_log.py``), and each
figure's median run is split into the time Spark's SQL executions were running and the rest,
per stage of the run (``bench/stages.py``: the stages ``whybatch run`` prints, or the same
stages recorded in this process).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.connect_server import (  # noqa: E402
    ConnectServer, free_port, whybatch_command, write_connect_profile, write_local_profile,
)
from bench.datagen import (  # noqa: E402
    ATE, CONFOUNDERS, DEFAULT_DATA_DIR, OUTCOME, TREATMENT, Clock, code_facts, machine_facts, numpy_dataset,
    started_session, study_yaml, warm_read, write_study,
)
from bench.event_log import add, event_log_conf, read_event_log  # noqa: E402
from bench.stages import StageRecorder, run_cli, stage_lines  # noqa: E402

CLIP = 0.05
TARGET = 50.0
FRESH = {  # label -> (figure, target of DoWhy / it)
    "vs server": ("whybatch fresh `run --profile connect` vs a running server", 20.0),
    "own JVM": ("whybatch fresh `run` with its own JVM (start-up included)", None),
}
WHYBATCH_ESTIMATORS = {"ols": "{ols: {interactions: false}}", "ipw": f"{{ipw: {{clip: {CLIP}}}}}"}


def dowhy_runs(path: Path, replicates: int) -> dict[str, dict]:
    """Fit both estimators with DoWhy on the parquet file; check the replicate count."""
    import pandas as pd
    from dowhy import CausalModel
    from dowhy import causal_estimator
    from sklearn.linear_model import LogisticRegression

    logging.getLogger("dowhy").setLevel(logging.ERROR)
    with Clock() as c:
        frame = pd.read_parquet(path)
    print(f"DoWhy: pandas read {len(frame):,} rows in {c.wall:.2f} s (not counted)")

    calls: list[int] = []
    original = causal_estimator.CausalEstimator._generate_bootstrap_estimates

    def counted(self, data, num_bootstrap_simulations, sample_size_fraction):
        calls.append(int(num_bootstrap_simulations))
        return original(self, data, num_bootstrap_simulations, sample_size_fraction)

    methods = {
        "ols": ("backdoor.linear_regression", {}),
        "ipw": ("backdoor.propensity_score_weighting",
                {"weighting_scheme": "ips_normalized_weight", "min_ps_score": CLIP, "max_ps_score": 1 - CLIP,
                 "propensity_score_model": LogisticRegression(penalty=None, tol=1e-10, max_iter=10_000)}),
    }
    out = {}
    causal_estimator.CausalEstimator._generate_bootstrap_estimates = counted
    try:
        for name, (method, params) in methods.items():
            data = frame.copy()  # DoWhy adds columns to the frame it is given
            calls.clear()
            with warnings.catch_warnings(), Clock() as c:
                warnings.simplefilter("ignore")
                model = CausalModel(data=data, treatment=TREATMENT, outcome=OUTCOME, common_causes=list(CONFOUNDERS))
                estimand = model.identify_effect(proceed_when_unidentifiable=True)
                est = model.estimate_effect(estimand, method_name=method, confidence_intervals="bootstrap",
                                            method_params={"num_simulations": replicates, **params})
                lo, hi = est.get_confidence_intervals()
            done = len(est.estimator._bootstrap_estimates.estimates)
            if calls != [replicates] or done != replicates:
                raise AssertionError(f"DoWhy {method}: expected one bootstrap of {replicates} replicates, "
                                     f"saw runs {calls} with {done} estimates")
            note = ""
            if "propensity_score" in data.columns:
                note = ("its estimate_effect stored 'propensity_score' in the frame, so the replicates reuse "
                        "the full-data propensities instead of refitting them")
            out[name] = {"estimate": float(est.value), "ci": (float(lo), float(hi)), "wall": c.wall, "cpu": c.cpu,
                         "replicates": done, "note": note}
            print(f"DoWhy {method}: {est.value:.5f} [{lo:.5f}, {hi:.5f}]  wall {c.wall:.1f} s, CPU {c.cpu:.1f} s, "
                  f"{done} bootstrap replicates (counted); {machine_facts()}")
            if note:
                print(f"  note: {note}")
    finally:
        causal_estimator.CausalEstimator._generate_bootstrap_estimates = original
    return out


def whybatch_warm(ds, other, data_dir: Path, replicates: int, warm_runs: int = 2, timed_runs: int = 3,
                  events: Path | None = None) -> dict[str, dict]:
    """``estimate_study`` per estimator on a started session, the file read once before;
    with ``events``, the session writes its event log there."""

    from causal_core.spec import parse_spec
    from jobs.estimate import Interval, estimate_study

    spark, jvm = started_session(data_dir, "whybatch session", driver_memory=None,  # the local profile, as the CLI's
                                 extra_conf=event_log_conf(events) if events else None)
    warm_read(spark, ds.path)
    with Clock() as c:
        for _ in range(warm_runs):
            for name, text in WHYBATCH_ESTIMATORS.items():
                estimate_study(spark, parse_spec(study_yaml(other, f"warmup_{name}", f"[{text}]", replicates)),
                               Interval())
    print(f"whybatch: warm-up, both studies {warm_runs}x on other data ({other.rows:,} rows, seed {other.seed}) "
          f"{c.wall:.1f} s (not counted): Spark generates and the JIT compiles their code, as in a session that "
          "has run the studies before")
    out = {}
    for name, text in WHYBATCH_ESTIMATORS.items():
        spec = parse_spec(study_yaml(ds, f"bench_vs_dowhy_{name}", f"[{text}]", replicates))
        runs = []
        for _ in range(timed_runs):
            stages = StageRecorder()
            t0 = time.time()
            with Clock(jvm) as c:
                results = estimate_study(spark, spec, Interval(), progress=stages).to_dict()
            runs.append((c.wall, c.cpu, t0, time.time(), stages.windows))
        (e,) = results["estimates"]
        if e.get("estimate") is None:
            raise AssertionError(f"whybatch {name} could not estimate: {e.get('reason')}")
        wall, cpu, start, end, windows = sorted(runs, key=lambda r: r[0])[len(runs) // 2]  # the median run
        out[name] = {"estimate": e["estimate"], "ci": (e["ci_low"], e["ci_high"]), "se": e["se"], "wall": wall,
                     "cpu": cpu, "replicates": e["diagnostics"].get("bootstrap_replicates"),
                     "window": (start, end), "stages": windows}
        print(f"whybatch {name} (warm): {e['estimate']:.5f} [{e['ci_low']:.5f}, {e['ci_high']:.5f}]  "
              f"median of {timed_runs} runs: wall {wall:.1f} s, CPU {cpu:.1f} s (Python + JVM); all runs "
              f"{', '.join(f'{r[0]:.2f}' for r in runs)} s; {out[name]['replicates']} bootstrap replicates; "
              f"{machine_facts()}")
    if events:
        log = read_event_log(events, since=min(w["window"][0] for w in out.values()))
        for w in out.values():
            w["spark"] = log.within(*w["window"])
            w["stage_lines"] = stage_lines(log, w["stages"])
    spark.stop()
    return out


def whybatch_fresh(ds, replicates: int, profile: Path, label: str, runs: int = 1, events: Path | None = None,
                   track: bool = True, name: str = "bench_vs_dowhy") -> dict:
    """``runs`` fresh ``whybatch run <spec>.yaml --profile <profile>`` processes on a spec YAML
    in the data dir (both estimators); the median run counts. With ``events`` (the event-log
    directory of the session that does the work), where its time went."""
    spec_path = write_study(ds, name, "[" + ", ".join(WHYBATCH_ESTIMATORS.values()) + "]", replicates)
    output = ds.path.parent / f"{name}-results.json"
    cmd = [*whybatch_command(), "run", str(spec_path), "--profile", str(profile), "--output", str(output)]
    if not track:
        cmd.append("--no-track")
    print(f"whybatch {label}: {' '.join(cmd)}")
    done = []
    for _ in range(runs):
        proc = run_cli(cmd, cwd=ds.path.parent)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        est = {e["estimator"]: e for e in json.loads(output.read_text())["estimates"]}
        done.append((proc, est))
        print(f"whybatch {label}: wall {proc.wall:.1f} s; " + ", ".join(
            f"{k} {v['estimate']:.5f} [{v['ci_low']:.5f}, {v['ci_high']:.5f}]" for k, v in est.items())
            + f"; {machine_facts()}")
    proc, est = sorted(done, key=lambda r: r[0].wall)[len(done) // 2]
    out = {"wall": proc.wall, "runs": [p.wall for p, _ in done], "estimates": est, "spec": spec_path,
           "command": " ".join(cmd)}
    if events:
        log = read_event_log(events, since=proc.start)
        out["spark"] = log.within(proc.start, proc.end)
        staged = sum(w.seconds for w in proc.windows)
        out["stage_lines"] = stage_lines(log, proc.windows) + [
            f"    {'outside the stages (interpreter, imports, spec, output)':<44}{proc.wall - staged:>8.2f} s"]
    return out


def whybatch_vs_server(ds, other, data_dir: Path, replicates: int, runs: int, events: bool, track: bool) -> dict:
    """Start a Connect server (its own warehouse, metastore and, with ``events``, event log
    under the data dir; a free port), warm it with one run on ``other`` data, then time
    ``runs`` fresh ``whybatch run --profile <connect>`` processes against it; stop it."""
    root = data_dir / "vs_dowhy-connect"
    log_dir = root / "eventlog"
    shutil.rmtree(log_dir, ignore_errors=True)
    served = write_local_profile(root / "served", event_log_conf(log_dir) if events else None)
    profile = write_connect_profile(root, served, free_port())
    with ConnectServer(profile) as server:
        print(f"whybatch server start --profile {profile}: {server.started.splitlines()[0]}, answering after "
              f"{server.seconds:.1f} s (not counted); {machine_facts()}")
        warm = whybatch_fresh(other, replicates, profile, "fresh run vs the server, warm-up on other data "
                              f"({other.rows:,} rows, seed {other.seed}; not counted)", track=track,
                              name="bench_vs_dowhy_server_warmup")
        out = whybatch_fresh(ds, replicates, profile, "fresh run vs the server", runs=runs,
                             events=log_dir if events else None, track=track)
    out["warmup"] = warm["wall"]
    out["server_pid"] = server.pid
    return out


def check(dowhy: dict | None, warm: dict, fresh: dict[str, dict]) -> None:
    """Estimates agree with the truth and with each other (asserted): every fresh process
    gives the warm session's numbers."""
    for name, w in warm.items():
        se = w["se"]
        assert abs(w["estimate"] - ATE) <= 5 * se, f"whybatch {name} {w['estimate']} is off the truth {ATE}"
        for label, f in fresh.items():
            c = f["estimates"][name]["estimate"]
            assert abs(c - w["estimate"]) <= 1e-9 * max(1.0, abs(c)), \
                f"whybatch {label} {name} {c} != warm {w['estimate']}"
        if dowhy is not None:
            d = dowhy[name]["estimate"]
            assert abs(d - ATE) <= 5 * se, f"DoWhy {name} {d} is off the truth {ATE}"
            # the same estimator on the same rows: OLS to rounding, IPW to the logistic solvers' tolerance
            tol = 1e-6 if name == "ols" else 0.02 * se
            assert abs(d - w["estimate"]) <= tol, f"{name}: DoWhy {d} and whybatch {w['estimate']} disagree"


def report(rows: int, replicates: int, dowhy: dict | None, warm: dict, fresh: dict[str, dict]) -> None:
    def ci(c) -> str:
        return f"[{c[0]:.4f}, {c[1]:.4f}]"

    print(f"\nEstimates ({rows:,} rows, truth ATE = {ATE}, bootstrap B = {replicates}; asserted to agree):")
    print(f"{'estimator':<10}{'DoWhy':>9}  {'DoWhy 95% CI':<19}{'whybatch':>9}  {'whybatch 95% CI':<19}{'|diff|':>9}"
          + "".join(f"  |{label} - warm|" for label in fresh))
    for name, w in warm.items():
        d = dowhy[name] if dowhy else None
        de = f"{d['estimate']:.5f}" if d else "-"
        dci = ci(d["ci"]) if d else "-"
        diff = f"{abs(d['estimate'] - w['estimate']):.1e}" if d else "-"
        others = "".join(f"  {abs(f['estimates'][name]['estimate'] - w['estimate']):>{len(label) + 9}.1e}"
                         for label, f in fresh.items())
        print(f"{name:<10}{de:>9}  {dci:<19}{w['estimate']:>9.5f}  {ci(w['ci']):<19}{diff:>9}{others}")

    print("\nTimes per study (wall seconds; CPU seconds in parentheses, whybatch CPU = Python + JVM):")
    print(f"{'estimator':<10}{'DoWhy':>16}{'whybatch warm':>18}{'DoWhy / warm':>14}")
    for name, w in warm.items():
        d = dowhy[name] if dowhy else None
        ds = f"{d['wall']:.1f} ({d['cpu']:.0f})" if d else "-"
        ratio = f"{d['wall'] / w['wall']:.3g}x" if d else "-"
        print(f"{name:<10}{ds:>16}{w['wall']:>11.1f} ({w['cpu']:.0f}){ratio:>14}")

    total_d = sum(d["wall"] for d in dowhy.values()) if dowhy else None
    figures = [("whybatch warm (started session, in this process)", sum(w["wall"] for w in warm.values()),
                TARGET)]
    figures += [(FRESH[label][0], f["wall"], FRESH[label][1]) for label, f in fresh.items()]
    print(f"\nSummary: OLS + IPW, B = {replicates}, {rows:,} rows (wall seconds of both studies)")
    print(f"{'':<58}{'wall s':>8}{'DoWhy / it':>12}{'target':>9}  verdict")
    print(f"{'DoWhy 0.14 (CausalModel ... interval)':<58}" + (f"{total_d:>8.1f}" if dowhy else f"{'-':>8}"))
    for label, wall, target in figures:
        ratio = total_d / wall if dowhy else None
        verdict = "-" if target is None or ratio is None else ("met" if ratio >= target else "NOT met")
        print(f"{label:<58}{wall:>8.1f}" + (f"{ratio:>11.3g}x" if ratio else f"{'-':>12}")
              + (f"{'>= ' + format(target, '.0f') + 'x':>9}" if target else f"{'-':>9}") + f"  {verdict}")


def breakdown(warm: dict, fresh: dict[str, dict]) -> None:
    """Where each figure's wall time went: Spark's SQL executions against the rest."""
    if "spark" not in next(iter(warm.values())):
        return
    print("\nWhere the time goes (Spark event log: an execution is one SQL query, from physical planning to "
          "its last job;\noutside executions = building and analysing queries, round trips to the server, "
          "driver-side numpy, start-up):")
    total = add([w["spark"] for w in warm.values()])
    print(f"  warm, both studies (median runs): {total.line()}")
    for name, w in warm.items():
        print(f"  warm, {name}: {w['spark'].line()}")
        print("\n".join(w["stage_lines"]))
    for label, f in fresh.items():
        if "spark" in f:
            print(f"  {label} (median run): {f['spark'].line()}")
            print("\n".join(f["stage_lines"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-dowhy", action="store_true", help="whybatch only (quick runs)")
    ap.add_argument("--skip-cli", action="store_true", help="no fresh `whybatch run` with its own JVM")
    ap.add_argument("--skip-server", action="store_true", help="no Spark Connect server and no runs against it")
    ap.add_argument("--warm-runs", type=int, default=2,
                    help="times both studies run on other data of the same size before the timed runs")
    ap.add_argument("--timed-runs", type=int, default=3, help="timed whybatch runs per study (the median is used)")
    ap.add_argument("--server-runs", type=int, default=3,
                    help="timed fresh processes against the server (the median is used)")
    ap.add_argument("--no-track", action="store_true", help="fresh processes run with --no-track (no MLflow, "
                    "no results table)")
    ap.add_argument("--no-breakdown", action="store_true", help="no event logs: no breakdown of where time goes")
    args = ap.parse_args()

    t0 = time.perf_counter()
    print(f"vs_dowhy: {args.rows:,} rows, B = {args.replicates}; machine: {machine_facts()}")
    print(f"engine code: {code_facts()}")
    ds = numpy_dataset(args.rows, args.data_dir, seed=args.seed)
    other = numpy_dataset(ds.rows, ds.path.parent, seed=args.seed + 1, log=lambda *_: None)
    data_dir, events = ds.path.parent, not args.no_breakdown
    dowhy = None if args.skip_dowhy else dowhy_runs(ds.path, args.replicates)
    warm_log = data_dir / "vs_dowhy-warm" / "eventlog"
    shutil.rmtree(warm_log, ignore_errors=True)
    warm = whybatch_warm(ds, other, data_dir, args.replicates, args.warm_runs, args.timed_runs,
                         warm_log if events else None)
    fresh = {}
    if not args.skip_cli:  # its own warehouse and metastore: the server below holds another one
        root = data_dir / "vs_dowhy-local"
        shutil.rmtree(root / "eventlog", ignore_errors=True)
        local = write_local_profile(root, event_log_conf(root / "eventlog") if events else None)
        fresh["own JVM"] = whybatch_fresh(ds, args.replicates, local, "fresh run with its own JVM",
                                          events=root / "eventlog" if events else None, track=not args.no_track)
    if not args.skip_server:
        fresh["vs server"] = whybatch_vs_server(ds, other, data_dir, args.replicates, args.server_runs, events,
                                                track=not args.no_track)
    fresh = {k: fresh[k] for k in ("vs server", "own JVM") if k in fresh}
    report(args.rows, args.replicates, dowhy, warm, fresh)
    breakdown(warm, fresh)
    check(dowhy, warm, fresh)
    print(f"\ntotal bench time {time.perf_counter() - t0:.0f} s; machine at the end: {machine_facts()}")


if __name__ == "__main__":
    main()
