"""DoWhy versus whybatch on refutation: placebo treatment, random common cause and data subset.

    python bench/vs_dowhy_refuters.py [--rows 1000000] [--data-dir /tmp/whybatch-bench] [--simulations 100]
        [--fraction 0.8] [--replicates 0] [--timed-runs 3] [--skip-dowhy]

The data (``bench/datagen.py``: five confounders, binary treatment, ATE = 2) is drawn once
with numpy into ONE parquet file that both tools read (the file ``vs_dowhy.py`` uses at the
same ``--rows`` and ``--seed``). The work, for each tool: the linear regression
``y ~ 1 + d + W0..W4`` (DoWhy ``backdoor.linear_regression``; whybatch ``ols`` with
``interactions: false``, the same additive model) and three refutations of its estimate,
``--simulations`` (100) simulations each:

* placebo treatment — DoWhy ``placebo_treatment_refuter`` with ``placebo_type="permute"``
  (the treatment column permuted, the model refitted); whybatch ``placebo_treatment``;
* random common cause — DoWhy ``random_common_cause`` (a N(0, 1) column added to the
  adjustment set); whybatch ``random_common_cause``;
* data subset — DoWhy ``data_subset_refuter`` with ``subset_fraction=--fraction`` (0.8);
  whybatch ``data_subset`` with ``fraction``.

DoWhy changes the rows and refits once per simulation. whybatch draws the placebo treatment
and the random cause per bucket (K = 1000 random groups of rows) and keeps random sets of
buckets, re-solving each simulation from the per-bucket moments the fit already holds
(``causal_core/refuters/simulation.py``): the same null distributions in substance, no
pass over the rows.

DoWhy draws from numpy's global generator, seeded once with ``--seed`` (an int
``random_state`` would make its data-subset refuter draw the same subset in every
simulation); the bench keeps the effect of every model it refits (counted: one per simulation).

Timed: DoWhy from ``CausalModel(...)`` to the estimate, then each ``refute_estimate`` call
(the pandas read is not counted). whybatch, ``jobs.estimate.estimate_study`` (read the
parquet, prepare and cache the model frame, fit, refute) with ``--replicates`` (0) bootstrap
replicates, as DoWhy's estimate has no interval, on one started session: the study with the
three refuters runs once (shown: the first, cold-ish run), the estimate-only study once (not
counted), then both in turn ``--timed-runs`` (3) times; the median run of each counts. Per
refuter, whybatch's time is that spent inside its ``refute_fit`` (on the driver). Target:
whybatch's whole study >= 100x faster than DoWhy's.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.datagen import (  # noqa: E402
    ATE, CONFOUNDERS, DEFAULT_DATA_DIR, OUTCOME, TREATMENT, Clock, code_facts, machine_facts, numpy_dataset,
    started_session, study_yaml, warm_read,
)

TARGET = 100.0
OLS = "[{ols: {interactions: false}}]"
# whybatch refuter -> (DoWhy method name, DoWhy keyword arguments)
DOWHY = {
    "placebo_treatment": ("placebo_treatment_refuter", {"placebo_type": "permute"}),
    "random_common_cause": ("random_common_cause", {}),
    "data_subset": ("data_subset_refuter", {}),  # and subset_fraction=--fraction
}


def dowhy_runs(path: Path, simulations: int, fraction: float, seed: int) -> dict:
    """The DoWhy estimate and its three refutations, each timed on its own."""
    import numpy as np
    import pandas as pd
    from dowhy import CausalModel
    from dowhy.causal_estimators.linear_regression_estimator import LinearRegressionEstimator

    logging.getLogger("dowhy").setLevel(logging.ERROR)
    with Clock() as c:
        frame = pd.read_parquet(path, columns=[*CONFOUNDERS, TREATMENT, OUTCOME])
    print(f"DoWhy: pandas read {len(frame):,} rows in {c.wall:.2f} s (not counted)")
    np.random.seed(seed)
    effects: list[float] = []  # every refitted model's effect: one per simulation
    estimate_effect = LinearRegressionEstimator.estimate_effect

    def kept(self, *args, **kwargs):
        out = estimate_effect(self, *args, **kwargs)
        effects.append(float(out.value))
        return out

    LinearRegressionEstimator.estimate_effect = kept
    out: dict = {"refuters": {}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Clock() as c:
                model = CausalModel(data=frame, treatment=TREATMENT, outcome=OUTCOME, common_causes=list(CONFOUNDERS))
                estimand = model.identify_effect(proceed_when_unidentifiable=True)
                est = model.estimate_effect(estimand, method_name="backdoor.linear_regression")
            out.update(estimate=float(est.value), wall=c.wall, cpu=c.cpu)
            print(f"DoWhy estimate (backdoor.linear_regression): {est.value:.6f}  wall {c.wall:.1f} s")
            for name, (method, params) in DOWHY.items():
                kwargs = {**params, **({"subset_fraction": fraction} if name == "data_subset" else {})}
                effects.clear()
                with Clock() as c:
                    ref = model.refute_estimate(estimand, est, method_name=method, num_simulations=simulations,
                                                **kwargs)
                if len(effects) != simulations:
                    raise AssertionError(f"DoWhy {method}: expected {simulations} refits, saw {len(effects)}")
                p = float(ref.refutation_result["p_value"])
                out["refuters"][name] = {
                    "new_effect": float(ref.new_effect), "p_value": p,
                    "passed": not bool(ref.refutation_result["is_statistically_significant"]),
                    "tested": 0.0 if name == "placebo_treatment" else float(est.value),
                    "sd": float(np.std(effects, ddof=1)), "wall": c.wall, "cpu": c.cpu}
                print(f"DoWhy {method}: new effect {ref.new_effect:.6f}, p {p:.3f}  wall {c.wall:.1f} s, "
                      f"CPU {c.cpu:.1f} s, {len(effects)} refits (counted)")
    finally:
        LinearRegressionEstimator.estimate_effect = estimate_effect
    return out


@contextmanager
def refuter_clock():
    """Yield a dict that collects the (wall, CPU) seconds spent inside ``refute_fit`` of each
    of the three refuters (the work a refutation adds once the estimate is fitted)."""
    from causal_core.refuters.registry import get_refuter

    seconds: dict[str, tuple[float, float]] = {}
    saved = {cls: cls.refute_fit for cls in map(get_refuter, DOWHY)}

    def timed(method):
        def call(refuter, *args, **kwargs):
            clock = Clock()
            try:
                with clock:
                    return method(refuter, *args, **kwargs)
            finally:
                wall, cpu = seconds.get(refuter.name, (0.0, 0.0))
                seconds[refuter.name] = (wall + clock.wall, cpu + clock.cpu)
        return call

    for cls, method in saved.items():
        cls.refute_fit = timed(method)
    try:
        yield seconds
    finally:
        for cls, method in saved.items():
            cls.refute_fit = method


def whybatch_runs(ds, args) -> dict:
    """The estimate alone and with the three refuters, on one warm session: medians over
    ``--timed-runs`` rounds, and the seconds spent inside each refuter."""

    from causal_core.spec import parse_spec
    from jobs.estimate import Interval, estimate_study

    spark, jvm = started_session(args.data_dir, "whybatch session", driver_memory=None)  # the local profile
    warm_read(spark, ds.path)
    opts = {r: f"simulations: {args.simulations}" for r in DOWHY}
    opts["data_subset"] += f", fraction: {args.fraction}"
    refuters = "refuters: {" + ", ".join(f"{r}: {{{o}}}" for r, o in opts.items()) + "}\n"
    base = study_yaml(ds, "bench_refuters", OLS, args.replicates)
    variants = {"estimate": parse_spec(base), "all": parse_spec(base + refuters)}

    def run(name: str):
        with Clock(jvm) as c, refuter_clock() as inside:
            result = estimate_study(spark, variants[name], Interval())
        return c, result, inside

    first, second = run("all")[0], run("estimate")[0]
    print(f"whybatch: first runs: estimate + three refuters {first.wall:.1f} s (cold-ish; CPU {first.cpu:.1f} s, "
          f"Python + JVM), then the estimate alone {second.wall:.1f} s (not counted)")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}  # (wall, CPU) per run
    inside: dict[str, list[tuple[float, float]]] = {r: [] for r in DOWHY}
    results = {}
    for i in range(args.timed_runs):
        for name in variants:
            c, results[name], seconds = run(name)
            times[name].append((c.wall, c.cpu))
            if name == "all":
                for r in DOWHY:
                    inside[r].append(seconds.get(r, (float("nan"), float("nan"))))
        print(f"whybatch: timed round {i + 1}: estimate {times['estimate'][-1][0]:.2f} s, estimate + refuters "
              f"{times['all'][-1][0]:.2f} s; inside the refuters " + ", ".join(f"{r} {v[-1][0] * 1e3:.1f} ms"
                                                                             for r, v in inside.items()))
    spark.stop()
    (row,) = [e for e in results["all"].estimates if e.estimator == "ols" and e.segment == "all"]
    if row.estimate is None:
        raise AssertionError(f"whybatch ols could not estimate: {row.reason}")
    rows = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in results["all"].refutations]
    refs = {r["refuter"]: r for r in rows if r["estimator"] == "ols" and r.get("segment", "all") == "all"}
    missing = sorted(set(DOWHY) - set(refs))
    if missing:
        raise AssertionError(f"whybatch returned no refutation from {missing} (got {sorted(refs)}); warnings: "
                             f"{results['all'].warnings}")
    return {"estimate": row.estimate, "se": row.se, "first": first.wall, "refuters": refs,
            "runs": {k: [w for w, _ in v] for k, v in times.items()},
            "time": {k: _median_run(v) for k, v in times.items()},
            "inside": {r: _median_run(v) for r, v in inside.items()}}


def _median_run(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The (wall, CPU) of the median run by wall time."""
    return sorted(runs)[len(runs) // 2]


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def report(args, dowhy: dict | None, wb: dict) -> None:
    n, se = args.simulations, wb["se"]
    tol = 4 * math.sqrt(2 / n) * se  # two means of n simulations each, 4 sd apart at most
    print(f"\nEstimate ({args.rows:,} rows, truth ATE = {ATE}): whybatch {wb['estimate']:.6f} (SE {se:.5f})"
          + (f", DoWhy {dowhy['estimate']:.6f}, |diff| {abs(dowhy['estimate'] - wb['estimate']):.1e}" if dowhy else ""))
    print(f"\nRefutations ({n} simulations each). 'new' = mean of the simulated effects, 'sd' their spread, "
          "'p of' the value whose two-sided percentile p-value among them is shown (est = the estimate); "
          f"'agree' = new effects within {tol:.5f} (4 sd of the difference of two {n}-simulation means) and the "
          "same verdict:")
    print(f"{'':<20}|{'DoWhy':^40}|{'whybatch':^40}|")
    head = f"{'new':>10}{'sd':>9}{'p of':>6}{'p':>7}{'passed':>7} "
    print(f"{'refuter':<20}|{head}|{head}|{'|diff|/SE':>10}  verdict")
    for name in DOWHY:
        w = wb["refuters"][name]
        tested = (w.get("details") or {}).get("tested_value")
        w_of = "-" if tested is None else ("0" if tested == 0 else "est")
        wcols = (f"{_num(w.get('new_effect'), '.6f'):>10}{_num((w.get('details') or {}).get('sd'), '.5f'):>9}"
                 f"{w_of:>6}{_num(w.get('p_value'), '.3f'):>7}{str(w.get('passed')):>7} ")
        d = dowhy["refuters"][name] if dowhy else None
        if d and w.get("new_effect") is not None:
            diff = abs(d["new_effect"] - w["new_effect"])
            verdict = "agree" if diff <= tol and d["passed"] == w.get("passed") else "DIFFER"
            d_of = "0" if d["tested"] == 0 else "est"
            dcols = (f"{d['new_effect']:>10.6f}{d['sd']:>9.5f}{d_of:>6}{d['p_value']:>7.3f}"
                     f"{str(d['passed']):>7} ")
            dcol = f"{diff / se:>10.3f}"
        else:
            verdict, dcols, dcol = "-", f"{'-':>40}", f"{'-':>10}"
        print(f"{name:<20}|{dcols}|{wcols}|{dcol}  {verdict}")

    t, inside = wb["time"], wb["inside"]
    print(f"\nTimes (seconds, wall and CPU; DoWhy CPU = this process, whybatch CPU = Python + JVM; whybatch = the "
          f"median of {args.timed_runs} runs of each study; per refuter, whybatch's time is spent inside the refuter, "
          "on the driver):")
    print(f"{'step':<40}{'DoWhy wall (CPU)':>18}{'whybatch wall (CPU)':>22}{'ratio wall':>12}{'ratio CPU':>11}"
          "   whybatch runs (wall)")

    def line(label: str, d: tuple[float, float] | None, w: tuple[float, float], runs: str = "") -> None:
        ratios = [f"{x / y:.3g}x" if d is not None and y > 0 else "-" for x, y in zip(d or (0, 0), w)]
        dt = "-" if d is None else f"{d[0]:.1f} ({d[1]:.1f})"
        print(f"{label:<40}{dt:>18}{f'{w[0]:.4f} ({w[1]:.4f})':>22}{ratios[0]:>12}{ratios[1]:>11}   {runs}")

    def add(*pairs):
        return tuple(sum(p[i] for p in pairs) for i in (0, 1))

    d_est = (dowhy["wall"], dowhy["cpu"]) if dowhy else None
    d_ref = {r: (dowhy["refuters"][r]["wall"], dowhy["refuters"][r]["cpu"]) for r in DOWHY} if dowhy else {}
    line("estimate", d_est, t["estimate"], ", ".join(f"{x:.2f}" for x in wb["runs"]["estimate"]))
    for r in DOWHY:
        line(f"  {r}", d_ref.get(r), inside[r])
    d_refs = add(*d_ref.values()) if dowhy else None
    line("three refutations (inside the refuters)", d_refs, add(*inside.values()))
    line("three refutations (study - estimate)", d_refs, tuple(x - y for x, y in zip(t["all"], t["estimate"])))
    d_total = add(d_est, d_refs) if dowhy else None
    line("total: estimate + three refutations", d_total, t["all"], ", ".join(f"{x:.2f}" for x in wb["runs"]["all"]))
    print(f"whybatch first run of the whole study (cold-ish): {wb['first']:.1f} s"
          + (f"; DoWhy / first run = {d_total[0] / wb['first']:.3g}x" if dowhy else ""))
    if dowhy:
        ratio = d_total[0] / t["all"][0]
        print(f"target: whybatch (estimate + three refuters) >= {TARGET:.0f}x faster than DoWhy (wall): "
              f"{'met' if ratio >= TARGET else 'NOT met'} ({ratio:.3g}x; CPU {d_total[1] / t['all'][1]:.3g}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--simulations", type=int, default=100)
    ap.add_argument("--fraction", type=float, default=0.8, help="data subset fraction")
    ap.add_argument("--replicates", type=int, default=0,
                    help="whybatch bootstrap replicates (DoWhy's estimate has no interval)")
    ap.add_argument("--seed", type=int, default=7, help="data seed; also seeds DoWhy's global numpy draws")
    ap.add_argument("--timed-runs", type=int, default=3,
                    help="timed rounds of the two whybatch studies (the median of each counts)")
    ap.add_argument("--skip-dowhy", action="store_true", help="whybatch only (quick runs)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    print(f"vs_dowhy_refuters: {args.rows:,} rows, {args.simulations} simulations per refuter; "
          f"machine: {machine_facts()}")
    print(f"engine code: {code_facts()}")
    ds = numpy_dataset(args.rows, args.data_dir, seed=args.seed)
    dowhy = None if args.skip_dowhy else dowhy_runs(ds.path, args.simulations, args.fraction, args.seed)
    wb = whybatch_runs(ds, args)
    report(args, dowhy, wb)
    assert abs(wb["estimate"] - ATE) <= 5 * wb["se"], f"whybatch ols {wb['estimate']} is off the truth {ATE}"
    if dowhy:
        assert abs(dowhy["estimate"] - wb["estimate"]) <= 1e-6, "DoWhy and whybatch estimates disagree"
    print(f"\ntotal bench time {time.perf_counter() - t0:.0f} s; machine at the end: {machine_facts()}")


if __name__ == "__main__":
    main()
