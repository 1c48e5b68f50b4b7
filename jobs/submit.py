"""The ``spark-submit`` entry point: run a study on the session that spark-submit provides.

``spark-submit`` takes a Python file, not a module, so this file is what it runs; it calls
:func:`jobs.entrypoints.run_study` on ``SparkSession.builder.getOrCreate()`` — the session
spark-submit configured (master, conf) — with the arguments of ``whybatch run``::

    spark-submit --master spark://127.0.0.1:7077 \\
        --conf spark.pyspark.python=$PWD/.venv/bin/python --conf spark.pyspark.driver.python=$PWD/.venv/bin/python \\
        --conf spark.sql.warehouse.dir=$PWD/warehouse/spark-warehouse ... \\
        jobs/submit.py discount_observational --start 2026-11-01 --end 2026-11-04 --output results.json

With ``--checks-only`` it runs the data checks alone (:func:`check_step`, the
:func:`jobs.entrypoints.check_data` that ``whybatch validate`` and every run start with)
and writes their report to ``--output``: the first task of the Airflow ``spark_submit``
execution.

The exact command for a profile (its master, warehouse, metastore, log and conf) is
printed by ``python -m jobs.submit --print-command --profile standalone STUDY [args]``;
:func:`submission` gives its pieces to a caller that assembles the command itself
(Airflow's ``SparkSubmitOperator``). The driver runs where spark-submit runs (client mode:
a standalone master runs Python drivers in client mode only); the executors need no
Python, since the estimation code sends Spark only SQL expressions.

Exit codes are those of ``whybatch run`` — 0 done, 1 the study failed its checks or could
not be estimated, 2 bad input — and 3 for any other error (a tracking store that is down,
a lost Spark driver; the error or its traceback is on stderr), which a retry may cure
where 1 and 2 would fail again.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    # run as a file, Python puts jobs/ first on the path: import jobs.* from the project instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from causal_core.errors import SpecError, TrackingError, WhybatchError  # noqa: E402
from jobs.spark.session import SparkProfile, load_profile, session_conf  # noqa: E402

if TYPE_CHECKING:
    from jobs.checks import CheckReport
    from jobs.entrypoints import PreparedRun
    from jobs.progress import Progress

EXIT_OK, EXIT_STUDY_FAILED, EXIT_BAD_INPUT, EXIT_ERROR = 0, 1, 2, 3


def parser() -> argparse.ArgumentParser:
    """The arguments: those of ``whybatch run``, plus ``--checks-only`` and ``--print-command``."""
    p = argparse.ArgumentParser(prog="jobs/submit.py", description="Run a study on the session spark-submit provides.")
    p.add_argument("study", help="study YAML path or name under conf/studies")
    p.add_argument("--start", help="first partition (inclusive)")
    p.add_argument("--end", help="end of the interval (exclusive)")
    p.add_argument("--output", default="results.json",
                   help="where to write results.json (with --checks-only: the check report)")
    p.add_argument("--report", help="where to write report.html (default: beside results.json)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db)")
    p.add_argument("--no-track", dest="track", action="store_false", help="no MLflow run, no results table rows")
    p.add_argument("--quiet", action="store_true", help="no stage lines on stderr")
    p.add_argument("--checks-only", action="store_true",
                   help="run only the data checks; exit 1 when a critical check fails (a FAILED MLflow run is "
                        "recorded unless --no-track)")
    p.add_argument("--checks-from", type=Path, metavar="DATA_CHECKS_JSON",
                   help="the check report an earlier --checks-only run of the same interval wrote: the run uses it "
                        "instead of checking the data again")
    p.add_argument("--profile", default="local", help="Spark profile for --print-command (conf/spark/ name or path)")
    p.add_argument("--print-command", action="store_true",
                   help="print the spark-submit command that runs this study with --profile's settings, and exit")
    return p


@dataclass(frozen=True)
class Submission:
    """What spark-submit needs to run this file on a profile: its binary, the master, the
    application's name, the Spark conf (``--conf`` pairs, in order), the application and
    the application's arguments."""

    binary: Path
    master: str
    name: str
    conf: tuple[tuple[str, str], ...]
    application: Path
    args: tuple[str, ...]

    def command(self) -> list[str]:
        """The spark-submit command line."""
        command = [str(self.binary), "--master", self.master, "--name", self.name]
        for key, value in self.conf:
            command += ["--conf", f"{key}={value}"]
        return [*command, str(self.application), *self.args]


def submission(profile: SparkProfile | str, study_args: list[str]) -> Submission:
    """How spark-submit runs this file with ``study_args`` on ``profile``'s master,
    warehouse, metastore and conf, with this Python as the driver's. A Spark Connect
    profile has no master to submit to: a :class:`SpecError` says so."""
    from jobs.spark.server import spark_home

    prof = profile if isinstance(profile, SparkProfile) else load_profile(profile)
    if prof.remote is not None:
        raise SpecError(f"profile {prof.name!r} is a Spark Connect client (remote: {prof.remote}); "
                        "spark-submit needs a master: use `whybatch run --profile` for it")
    conf = {"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable,
            **session_conf(prof)}
    return Submission(binary=spark_home() / "bin" / "spark-submit", master=prof.master, name=prof.app_name,
                      conf=tuple(conf.items()), application=Path(__file__).resolve(), args=tuple(study_args))


def submit_command(profile: SparkProfile | str, study_args: list[str]) -> list[str]:
    """The ``spark-submit`` command that runs this file with ``study_args`` on ``profile``
    (:func:`submission`'s command line)."""
    return submission(profile, study_args).command()


def main(argv: list[str] | None = None) -> int:
    """Run the study, or its checks (or print the spark-submit command); returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.print_command:
        study_args = _without_command_options(argv)
        try:
            print(shlex.join(submit_command(args.profile, study_args)))
        except WhybatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return EXIT_OK
    return run(args)


def run(args: argparse.Namespace) -> int:
    """``run_study`` (or :func:`check_step` with ``--checks-only``) on the session
    spark-submit provides; results.json, or the check report, at ``args.output``."""
    from pyspark.sql import SparkSession
    from rich.console import Console

    from jobs.entrypoints import prepare_run, run_study
    from jobs.progress import SILENT, ConsoleProgress

    err = Console(stderr=True, soft_wrap=True)
    output = Path(args.output)
    try:
        prepared = prepare_run(args.study, start=args.start, end=args.end)  # bad input fails before Spark starts
        checks = _checks_from(args.checks_from)
        progress = SILENT if args.quiet else ConsoleProgress(err)
        with progress.stage("Spark session from spark-submit"):
            spark = SparkSession.builder.getOrCreate()
        if args.checks_only:
            report = check_step(spark, prepared, output, tracking_uri=args.tracking_uri, track=args.track,
                                progress=progress)
            print(f"{len(report.rows)} checks, 0 critical failures, {len(report.warnings)} warnings")
            print(f"wrote {output}")
            return EXIT_OK
        result = run_study(args.study, start=args.start, end=args.end, spark=spark, output=output,
                           tracking_uri=args.tracking_uri, track=args.track,
                           report=args.report or output.with_name("report.html"), progress=progress,
                           checks=checks)
    except SpecError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_BAD_INPUT
    except WhybatchError as exc:
        err.print(f"error: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return EXIT_ERROR if isinstance(exc, TrackingError) else EXIT_STUDY_FAILED
    except Exception:  # the process boundary: exit 1 must mean the study itself failed
        traceback.print_exc()
        return EXIT_ERROR
    print(result)
    print(f"wrote {output}")
    return EXIT_STUDY_FAILED if result.failed and not result.estimated else EXIT_OK


def check_step(spark: Any, prepared: PreparedRun, output: str | Path, *, tracking_uri: str | None = None,
               track: bool = True, progress: Progress | None = None) -> CheckReport:
    """The data checks of a scheduled run: :func:`jobs.entrypoints.check_data` on the
    interval, then the report (``CheckReport.to_dict``) written to ``output``. Data that
    fail a critical check raise :class:`~causal_core.errors.DataCheckError`, after a
    FAILED MLflow run is recorded when ``track``."""
    from jobs.checks import raise_for_critical
    from jobs.entrypoints import check_data
    from jobs.progress import SILENT

    with failures_recorded(prepared, tracking_uri, track):
        report = check_data(spark, prepared, progress or SILENT)
        raise_for_critical(report)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return report


@contextmanager
def failures_recorded(prepared: PreparedRun, tracking_uri: str | None, track: bool = True) -> Iterator[None]:
    """Record a FAILED MLflow run when the block raises a :class:`WhybatchError` (a
    failed check, a study that cannot be estimated), then let the error through; a
    tracking store that is down does not hide the original error."""
    try:
        yield
    except TrackingError:
        raise
    except WhybatchError as exc:
        if track:
            from jobs.tracking.mlflow_runs import log_failed_run

            try:
                log_failed_run(prepared.spec, prepared.interval, str(exc), tracking_uri=tracking_uri)
            except TrackingError:
                pass
        raise


def _checks_from(path: Path | None):
    """The :class:`CheckReport` a ``--checks-only`` run wrote at ``path`` (None without one)."""
    if path is None:
        return None
    from jobs.checks.report import CheckReport

    try:
        return CheckReport.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise SpecError(f"--checks-from {path}: no such file (the --checks-only run writes it)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"--checks-from {path}: not a check report written by --checks-only ({exc})") from None


def _without_command_options(argv: list[str]) -> list[str]:
    """``argv`` less ``--print-command`` and ``--profile P``: what the submitted run gets."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--print-command":
            continue
        elif arg == "--profile":
            skip = True
        elif not arg.startswith("--profile="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
