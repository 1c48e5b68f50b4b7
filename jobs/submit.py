"""The ``spark-submit`` entry point: run a study on the session that spark-submit provides.

``spark-submit`` takes a Python file, not a module, so this file is what it runs; it calls
:func:`jobs.entrypoints.run_study` on ``SparkSession.builder.getOrCreate()`` — the session
spark-submit configured (master, conf) — with the arguments of ``whybatch run``::

    spark-submit --master spark://127.0.0.1:7077 \\
        --conf spark.pyspark.python=$PWD/.venv/bin/python --conf spark.pyspark.driver.python=$PWD/.venv/bin/python \\
        --conf spark.sql.warehouse.dir=$PWD/warehouse/spark-warehouse ... \\
        jobs/submit.py discount_observational --start 2026-11-01 --end 2026-11-04 --output results.json

The exact command for a profile (its master, warehouse, metastore, log and conf) is
printed by ``python -m jobs.submit --print-command --profile standalone STUDY [args]``.
The driver runs where spark-submit runs (client mode: a standalone master runs Python
drivers in client mode only); the executors need no Python, since the estimation code
sends Spark only SQL expressions. Exit codes are those of ``whybatch run``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    # run as a file, Python puts jobs/ first on the path: import jobs.* from the project instead
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import shlex  # noqa: E402

from causal_core.errors import SpecError, WhybatchError  # noqa: E402
from jobs.spark.session import SparkProfile, load_profile, session_conf  # noqa: E402

EXIT_OK, EXIT_STUDY_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def parser() -> argparse.ArgumentParser:
    """The arguments: those of ``whybatch run``, plus ``--print-command``."""
    p = argparse.ArgumentParser(prog="jobs/submit.py", description="Run a study on the session spark-submit provides.")
    p.add_argument("study", help="study YAML path or name under conf/studies")
    p.add_argument("--start", help="first partition (inclusive)")
    p.add_argument("--end", help="end of the interval (exclusive)")
    p.add_argument("--output", default="results.json", help="where to write results.json")
    p.add_argument("--report", help="where to write report.html (default: beside results.json)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db)")
    p.add_argument("--no-track", dest="track", action="store_false", help="no MLflow run, no results table rows")
    p.add_argument("--quiet", action="store_true", help="no stage lines on stderr")
    p.add_argument("--profile", default="local", help="Spark profile for --print-command (conf/spark/ name or path)")
    p.add_argument("--print-command", action="store_true",
                   help="print the spark-submit command that runs this study with --profile's settings, and exit")
    return p


def submit_command(profile: SparkProfile | str, study_args: list[str]) -> list[str]:
    """The ``spark-submit`` command that runs this file with ``study_args`` on ``profile``'s
    master, warehouse, metastore and conf, with this Python as the driver's."""
    from jobs.spark.server import spark_home

    prof = profile if isinstance(profile, SparkProfile) else load_profile(profile)
    if prof.remote is not None:
        raise SpecError(f"profile {prof.name!r} is a Spark Connect client (remote: {prof.remote}); "
                        "spark-submit needs a master: use `whybatch run --profile` for it")
    conf = {"spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable,
            **session_conf(prof)}
    command = [str(spark_home() / "bin" / "spark-submit"), "--master", prof.master, "--name", prof.app_name]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(Path(__file__).resolve()), *study_args]


def main(argv: list[str] | None = None) -> int:
    """Run the study (or print the spark-submit command); returns the exit code."""
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
    """``run_study`` on the session spark-submit provides; results.json at ``args.output``."""
    from pyspark.sql import SparkSession
    from rich.console import Console

    from jobs.entrypoints import prepare_run, run_study
    from jobs.progress import SILENT, ConsoleProgress

    err = Console(stderr=True, soft_wrap=True)
    output = Path(args.output)
    try:
        prepare_run(args.study, start=args.start, end=args.end)  # bad input fails before Spark starts
        progress = SILENT if args.quiet else ConsoleProgress(err)
        with progress.stage("Spark session from spark-submit"):
            spark = SparkSession.builder.getOrCreate()
        result = run_study(args.study, start=args.start, end=args.end, spark=spark, output=output,
                           tracking_uri=args.tracking_uri, track=args.track,
                           report=args.report or output.with_name("report.html"), progress=progress)
    except SpecError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_BAD_INPUT
    except WhybatchError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_STUDY_FAILED
    print(result)
    print(f"wrote {output}")
    return EXIT_STUDY_FAILED if result.failed and not result.estimated else EXIT_OK


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
