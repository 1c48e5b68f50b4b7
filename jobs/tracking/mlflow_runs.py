"""A study run in MLflow: one parent run per study and interval, one child run per estimator.

The experiment is ``spec.tracking`` (default ``whybatch``); on a SQLite store it is created
with its artifacts in ``mlartifacts/`` beside the database. The parent run, named
``<study> <start>..<end>``, holds the ``whybatch.*`` tags (study, run_key, interval, spec
hash, code version, status), the params (graph, treatment, outcomes, strategy and
adjustment set per metric, estimators, bootstrap), every estimate and refutation metric
and the artifacts (results.json, plan.json, report.html, data-check results). Each child
run (``mlflow.parentRunId`` = the parent) holds one estimator's metrics over every
metric, contrast and segment: ``<estimator>.<metric>.<stat>``, stat in estimate, se,
ci_low, ci_high, p_value, n; the contrast joins the name when a study has several
(``ols.y.B_vs_A.estimate``), the segment when it is not ``all``
(``ols.y.country_DE.estimate``). An estimator named twice in a spec is ``ols`` and
``ols-2``, in the spec's order.

Reruns replace (the run key hashes study, interval and spec): the new parent is logged
completely, then every earlier run tagged with its ``whybatch.run_key`` (parents and
children, finished or FAILED) is deleted — one active parent per key, the latest attempt.
Deleting rather than reusing a run means nothing of an earlier attempt survives (MLflow
cannot remove a logged metric).

A tracking server that is down fails in seconds with :class:`TrackingError`: an HTTP
store is probed at ``/health`` before anything is written, and MLflow's HTTP retries are
shortened while logging (unless the user set them).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE

from causal_core.errors import TrackingError, WhybatchError
from causal_core.spec import StudySpec
from causal_core.study import EstimateRow, Interval, StudyResult, run_key
from jobs.spark.session import PROJECT_DIR

DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
DEFAULT_EXPERIMENT = "whybatch"
ARTIFACTS_DIR = "mlartifacts"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
MAX_TAG_LENGTH = 5000  # below MLflow's 8000 for tags, with room for the note's markup
STATS = ("estimate", "se", "ci_low", "ci_high", "p_value", "n")
REFUTATION_STATS = ("new_effect", "p_value")
RESERVED_ARTIFACTS = ("results.json", "plan.json")
HEALTH_TIMEOUT_SECONDS = 3.0
# MLflow retries a failing HTTP call 7 times with backoff by default (minutes); while
# whybatch logs, a call is retried twice, briefly. A value the user set is kept.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}



def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI to use: the argument, else ``MLFLOW_TRACKING_URI``, else the SQLite
    store ``mlflow.db`` in the project directory."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def code_version() -> str:
    """The installed whybatch version and, where the project is a git checkout, its commit
    (``0.1.0+git.1a2b3c4d5e6f``); never fails."""
    try:
        version = importlib.metadata.version("whybatch")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    commit = _git_commit()
    return f"{version}+git.{commit}" if commit else version


def log_study(result: StudyResult, spec: StudySpec, *, tracking_uri: str | None = None,
              artifacts: Mapping[str, Path] = {}) -> StudyResult:  # noqa: B006 - read only
    """Log a finished run to MLflow and return ``result`` with ``mlflow`` filled
    (``run_id``, ``experiment_id``, ``tracking_uri``); earlier runs with the same run key
    are replaced (see the module docstring).

    ``artifacts`` maps an artifact name (``report.html``, ``checks/suite.json``) to a
    file or directory to upload under that name. Raises :class:`TrackingError` when the
    store is unreachable or refuses a write; a parent run that was started is then
    marked FAILED, never left looking like a success.
    """
    uri = resolve_tracking_uri(tracking_uri)
    staged = _check_artifacts(artifacts)
    labels = estimator_labels(result.estimates)
    with _new_run(uri, spec, result.interval, result.run_key, "RUNNING") as (client, experiment_id, parent):
        metrics = estimate_metrics(result.estimates, labels)
        for label in dict.fromkeys(label for label in labels if label):
            rows = [e for e, own in zip(result.estimates, labels) if own == label]
            _log_child(client, experiment_id, parent, label, rows, result, spec,
                       {k: v for k, v in metrics.items() if k.startswith(f"{label}.")})
        metrics |= refutation_metrics(result.refutations)
        metrics |= {"rows": float(result.rows), "seconds": result.seconds, "not_estimated": float(len(result.failed))}
        note = {MLFLOW_RUN_NOTE: _clip("\n".join(result.warnings), MAX_TAG_LENGTH)} if result.warnings else {}
        _log_batch(client, parent, metrics, {**spec_params(spec), **plan_params(result)},
                   {"whybatch.status": "FINISHED", "whybatch.warnings": str(len(result.warnings)), **note})
        logged = replace(result, mlflow={"run_id": parent, "experiment_id": experiment_id, "tracking_uri": uri})
        _log_artifacts(client, parent, logged, staged)
        client.set_terminated(parent, RunStatus.to_string(RunStatus.FINISHED))
    return logged


def log_failed_run(spec: StudySpec, interval: Interval, reason: str, *,
                   tracking_uri: str | None = None) -> dict[str, str]:
    """Record a run that could not be completed: a parent run with status FAILED and the
    tag ``whybatch.failure`` = ``reason``; it replaces earlier runs of the same run key,
    and a later successful run of that key replaces it. Returns ``run_id``,
    ``experiment_id`` and ``tracking_uri``; raises :class:`TrackingError` like
    :func:`log_study`."""
    uri = resolve_tracking_uri(tracking_uri)
    with _new_run(uri, spec, interval, run_key(spec, interval), "FAILED") as (client, experiment_id, run_id):
        _log_batch(client, run_id, {}, spec_params(spec), {"whybatch.failure": _clip(reason, MAX_TAG_LENGTH)})
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    return {"run_id": run_id, "experiment_id": experiment_id, "tracking_uri": uri}


def estimator_labels(estimates: tuple[EstimateRow, ...]) -> list[str | None]:
    """Per estimate row, the estimator's label in metric and child-run names (None for a
    row without an estimate): its name, numbered ``-2``, ``-3`` ... when the same
    estimator appears again for the same metric, contrast and segment."""
    seen: Counter = Counter()
    labels: list[str | None] = []
    for e in estimates:
        seen[key := (e.estimator, e.metric, e.contrast, e.segment)] += e.estimated
        labels.append(_part(e.estimator) + (f"-{seen[key]}" if seen[key] > 1 else "") if e.estimated else None)
    return labels


def estimate_metrics(estimates: tuple[EstimateRow, ...], labels: list[str | None] | None = None) -> dict[str, float]:
    """``<estimator>.<metric>[.<contrast>][.<segment>].<stat>`` → value, for every estimate
    row with an estimate and every stat that is a number."""
    labels = estimator_labels(estimates) if labels is None else labels
    many_contrasts = len({e.contrast for e in estimates if e.estimated}) > 1
    out: dict[str, float] = {}
    for e, label in zip(estimates, labels):
        if label is None:
            continue
        prefix = ".".join([label, _part(e.metric), *([_part(e.contrast)] if many_contrasts else []),
                           *([_part(e.segment)] if e.segment != "all" else [])])
        out |= {f"{prefix}.{s}": float(getattr(e, s)) for s in STATS if getattr(e, s) is not None}
    return out


def refutation_metrics(refutations: tuple[Mapping[str, Any], ...]) -> dict[str, float]:
    """``refute.<refuter>.<estimator>.<metric>[.<segment>].passed`` (1 passed, 0 failed)
    and ``.new_effect`` / ``.p_value`` where the refuter reports them; a refuter that
    gives no verdict (``passed`` None) logs no ``.passed``."""
    seen: Counter = Counter()
    out: dict[str, float] = {}
    for r in refutations:
        segment = r.get("segment") or "all"
        parts = [_part(r["refuter"]), _part(r.get("estimator") or "none"), _part(r.get("metric") or "none"),
                 *([_part(segment)] if segment != "all" else [])]
        seen[key := tuple(parts)] += 1
        parts[1] += f"-{seen[key]}" if seen[key] > 1 else ""
        prefix = "refute." + ".".join(parts)
        if r.get("passed") is not None:
            out[f"{prefix}.passed"] = 1.0 if r["passed"] else 0.0
        out |= {f"{prefix}.{s}": float(r[s]) for s in REFUTATION_STATS if r.get(s) is not None}
    return out


def spec_params(spec: StudySpec) -> dict[str, str]:
    """What the spec asked for: graph text, treatment, outcomes, estimators with options,
    bootstrap, design, target and spec hash."""
    estimators = [e.name + (f"({', '.join(f'{k}={v}' for k, v in e.options)})" if e.options else "")
                  for e in spec.estimators]
    return {"graph": spec.graph.to_text(), "treatment": ", ".join(spec.treatment),
            "outcome": ", ".join(spec.outcome), "estimators": ", ".join(estimators),
            "bootstrap.replicates": str(spec.bootstrap.replicates), "bootstrap.seed": str(spec.bootstrap.seed),
            "bootstrap.kind": spec.bootstrap.kind, "design": spec.design, "target": spec.target,
            "spec_hash": spec.spec_hash()}


def plan_params(result: StudyResult) -> dict[str, str]:
    """Per outcome metric, the strategy the estimates used (``strategy.<metric>``) and its
    adjustment set (``adjustment.<metric>``, ``{a, b}``); the mediators and instruments of
    a front-door or IV strategy as ``mediators.<metric>`` and ``instruments.<metric>``.
    Where a metric used several strategies each set is prefixed with its strategy."""
    out: dict[str, str] = {}
    for metric, plan in result.plan.items():
        names = {s.name for s in plan.strategies}
        used = list(dict.fromkeys(e.strategy for e in result.estimated if e.metric == metric and e.strategy in names))
        used = used or ([plan.default] if plan.identifiable and plan.default else [])
        out[f"strategy.{_part(metric)}"] = ", ".join(used) or f"not identifiable: {plan.reason}"
        for kind in ("adjustment", "mediators", "instruments"):
            sets = {s: getattr(plan.strategy(s), kind) for s in used}
            if used and (kind == "adjustment" or any(sets.values())):
                braces = {s: "{" + ", ".join(v) + "}" for s, v in sets.items()}
                out[f"{kind}.{_part(metric)}"] = (next(iter(braces.values())) if len(used) == 1
                                                  else "; ".join(f"{s}: {b}" for s, b in braces.items()))
    return out


def _part(text: str) -> str:
    """One dot-separated part of a metric name: runs of characters other than ASCII
    letters, digits, ``_`` and ``-`` become ``_`` (MLflow names may not hold ``+``,
    ``=``, ``>``..., and a ``.`` would split the part)."""
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", str(text)).strip("_") or "_"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so and how long it was."""
    suffix = f" ... [truncated: {len(text)} characters; see plan.json / results.json]"
    return text if len(text) <= limit else text[:limit - len(suffix)] + suffix


def _run_name(study: str, interval: Interval) -> str:
    return f"{study} {interval.start or ''}..{interval.end or ''}"


def _run_tags(spec: StudySpec, interval: Interval, key: str, status: str) -> dict[str, str]:
    tags = {"whybatch.study": spec.name, "whybatch.run_key": key, "whybatch.interval_start": interval.start or "",
            "whybatch.interval_end": interval.end or "", "whybatch.spec_hash": spec.spec_hash(),
            "whybatch.code_version": code_version(), "whybatch.status": status}
    commit = _git_commit()
    return tags | ({MLFLOW_GIT_COMMIT: commit} if commit else {})


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PROJECT_DIR), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@contextmanager
def _tracking(uri: str) -> Iterator[MlflowClient]:
    """A client for ``uri`` after checking the store can be reached; MLflow's and the
    network's errors inside become :class:`TrackingError` naming the URI."""
    if uri.startswith(("http://", "https://")):
        _probe(uri)
    elif uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in QUICK_HTTP}
    os.environ.update({k: v for k, v in QUICK_HTTP.items() if saved[k] is None})
    try:
        yield MlflowClient(tracking_uri=uri)
    except WhybatchError:
        raise
    except Exception as exc:
        raise TrackingError(f"MLflow tracking at {uri} failed: {type(exc).__name__}: {exc}. "
                            "Nothing was recorded as a success; results.json written before tracking is kept."
                            ) from exc
    finally:
        for k in [k for k, v in saved.items() if v is None]:
            os.environ.pop(k, None)


def _probe(uri: str) -> None:
    """Fail in seconds, not after MLflow's retries, when the server does not answer."""
    try:
        url = uri.rstrip("/") + "/health"
        with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only
            if response.status != 200:
                raise OSError(f"/health answered {response.status}")
    except OSError as exc:  # URLError and timeouts are OSErrors
        raise TrackingError(f"the MLflow tracking server at {uri} is unreachable ({getattr(exc, 'reason', exc)}); "
                            "nothing was logged, and results.json written before tracking is kept") from None


@contextmanager
def _new_run(uri: str, spec: StudySpec, interval: Interval, key: str,
             status: str) -> Iterator[tuple[MlflowClient, str, str]]:
    """A new parent run for run key ``key``, as (client, experiment id, run id). When the
    block completes, the earlier runs of that key are deleted; when it raises, the new run
    is marked FAILED (best effort) and the earlier ones stay."""
    with _tracking(uri) as client:
        experiment_id = _experiment_id(client, spec, uri)
        earlier = _runs_with_key(client, experiment_id, key)
        run_id = client.create_run(experiment_id, run_name=_run_name(spec.name, interval),
                                   tags=_run_tags(spec, interval, key, status)).info.run_id
        try:
            yield client, experiment_id, run_id
        except Exception as exc:
            _mark_failed(client, run_id, f"logging the run failed: {type(exc).__name__}: {exc}")
            raise
        for old_id in earlier:
            client.delete_run(old_id)


def _experiment_id(client: MlflowClient, spec: StudySpec, uri: str) -> str:
    """The study's experiment, created (with its artifact location) or restored as needed."""
    name = spec.tracking or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = _artifact_root(uri)
        location = (root / _part(name)).as_uri() if root is not None else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by a concurrent run
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _artifact_root(uri: str) -> Path | None:
    """``mlartifacts/`` beside a SQLite database; None (the server decides) otherwise."""
    is_sqlite = uri.startswith("sqlite:///")
    return Path(uri.removeprefix("sqlite:///")).resolve().parent / ARTIFACTS_DIR if is_sqlite else None


def _runs_with_key(client: MlflowClient, experiment_id: str, key: str) -> list[str]:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`whybatch.run_key` = '{key}'",
                              run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    return [r.info.run_id for r in runs]


def _log_child(client: MlflowClient, experiment_id: str, parent: str, label: str, rows: list[EstimateRow],
               result: StudyResult, spec: StudySpec, metrics: dict[str, float]) -> None:
    """One estimator's child run: its metrics, its name and the strategies it fitted (from ``rows``)."""
    tags = {MLFLOW_PARENT_RUN_ID: parent, "whybatch.study": result.study, "whybatch.run_key": result.run_key,
            "whybatch.estimator": label}
    child = client.create_run(experiment_id, run_name=label, tags=tags).info.run_id
    params = {"estimator": rows[0].estimator, "strategy": ", ".join(dict.fromkeys(e.strategy for e in rows)),
              "spec_hash": spec.spec_hash()}
    _log_batch(client, child, metrics, params, {})
    client.set_terminated(child, RunStatus.to_string(RunStatus.FINISHED))


def _log_batch(client: MlflowClient, run_id: str, metrics: Mapping[str, float], params: Mapping[str, str],
               tags: Mapping[str, str]) -> None:
    """Metrics, params and tags in batches within MLflow's limits (1000 metrics, 100
    params and tags per call); a param longer than MLflow's 6000 characters is clipped."""
    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    ps = [Param(k, _clip(str(v), MAX_PARAM_LENGTH)) for k, v in params.items()]
    ts = [RunTag(k, str(v)) for k, v in tags.items()]
    for i in range(0, len(ms), 1000):
        client.log_batch(run_id, metrics=ms[i:i + 1000])
    for i in range(0, max(len(ps), len(ts)), 100):
        client.log_batch(run_id, params=ps[i:i + 100], tags=ts[i:i + 100])


def _check_artifacts(artifacts: Mapping[str, Path]) -> dict[str, Path]:
    """The caller's artifacts, checked before any run starts: each exists and none takes
    a name whybatch writes itself."""
    checked = {str(name): Path(path) for name, path in artifacts.items()}
    problems = [f"{n}: whybatch writes it itself; pass another name" for n in checked if n in RESERVED_ARTIFACTS]
    problems += [f"{n}: no such file or directory {p}" for n, p in checked.items() if not p.exists()]
    if problems:
        raise TrackingError(f"artifacts to log: {'; '.join(problems)}")
    return checked


def _log_artifacts(client: MlflowClient, run_id: str, result: StudyResult, artifacts: Mapping[str, Path]) -> None:
    """results.json (with the ``mlflow`` field filled), plan.json and the caller's files,
    staged under their artifact names and uploaded in one call."""
    with tempfile.TemporaryDirectory(prefix="whybatch-artifacts-") as tmp:
        root = Path(tmp)
        (root / "results.json").write_text(result.to_json(), encoding="utf-8")
        plans = {metric: plan.to_dict() for metric, plan in result.plan.items()}
        (root / "plan.json").write_text(json.dumps(plans, indent=2, ensure_ascii=False), encoding="utf-8")
        for name, path in artifacts.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copyfile(path, target)
        client.log_artifacts(run_id, str(root))


def _mark_failed(client: MlflowClient, run_id: str, reason: str) -> None:
    """Best effort (the store may be what failed): the run ends FAILED with its reason."""
    try:
        client.log_batch(run_id, tags=[RunTag("whybatch.status", "FAILED"),
                                       RunTag("whybatch.failure", _clip(reason, MAX_TAG_LENGTH))])
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
