"""What the CLI, ``spark-submit`` and Airflow call: resolve a study, check it, run it.

Everything that can be checked without Spark — the spec, the Spark profile, the
interval's form, a local data path — is checked before a JVM starts, so bad input costs
milliseconds and exits 2, not a 20-second start and a JVM traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from causal_core.errors import SpecError
from causal_core.spec import StudySpec, load_spec
from causal_core.study import Interval, StudyResult
from jobs.spark.session import PROJECT_DIR, SparkProfile, load_profile
from jobs.warehouse.read import check_interval, check_source

STUDY_DIRS = (Path("conf/studies"), PROJECT_DIR / "conf" / "studies")


def resolve_study(study: str | Path) -> Path:
    """A study is a YAML path, or a name under ``conf/studies/`` (of the current directory,
    then of the whybatch project), so a name works from any directory."""
    p = Path(study)
    if p.is_file():
        return p
    looked = [p]
    for root in STUDY_DIRS:
        for candidate in (root / f"{study}.yaml", root / f"{study}.yml"):
            looked.append(candidate)
            if candidate.is_file():
                return candidate
    raise SpecError(f"{study}: no such study file (looked for {', '.join(str(c) for c in dict.fromkeys(looked))})")


@dataclass(frozen=True)
class PreparedRun:
    """A study checked as far as it can be without Spark: what :func:`run_study` needs."""

    spec: StudySpec
    interval: Interval
    profile: SparkProfile


def prepare_run(study: str | Path | StudySpec, *, start: str | None = None, end: str | None = None,
                profile: str | SparkProfile = "local") -> PreparedRun:
    """Load the spec and check the profile, the interval and a local data path (no Spark)."""
    spec = study if isinstance(study, StudySpec) else load_spec(resolve_study(study))
    prof = profile if isinstance(profile, SparkProfile) else load_profile(profile)
    check_interval(spec, start, end)
    check_source(spec)
    return PreparedRun(spec, Interval(start, end), prof)


def run_study(study: str | Path | StudySpec, *, start: str | None = None, end: str | None = None,
              profile: str | SparkProfile = "local", output: str | Path | None = None,
              spark: Any = None) -> StudyResult:
    """Run a study on the partitions in ``[start, end)`` and return its :class:`StudyResult`
    (written to ``output`` as results.json when given).

    ``study`` is a YAML path, a study name under ``conf/studies/`` or a parsed
    :class:`StudySpec`; ``spark`` an existing SparkSession (default: one built from
    ``profile``). Bad input raises :class:`causal_core.SpecError` before Spark starts;
    data that fail their checks raise :class:`causal_core.DataCheckError`.
    """
    from jobs.estimate import estimate_study
    from jobs.spark.session import build_session

    prepared = prepare_run(study, start=start, end=end, profile=profile)
    session = spark if spark is not None else build_session(prepared.profile)
    result = estimate_study(session, prepared.spec, prepared.interval)
    if output is not None:
        write_results(result, output)
    return result


def write_results(result: StudyResult, path: str | Path) -> Path:
    """Write results.json: the result's ``to_json()``, which ``StudyResult.from_json`` reads back."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(result.to_json(), encoding="utf-8")
    return p
