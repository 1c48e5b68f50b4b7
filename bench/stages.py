"""The stages of a study run as windows of wall-clock time, in this process or in a ``whybatch
run`` subprocess, so that :meth:`bench.event_log.EventLog.within` can say what Spark did in each.

* :class:`StageRecorder` — a :class:`jobs.progress.Progress` for ``estimate_study`` /
  ``execute`` in this process: each stage's name, start and end (:func:`time.time`).
* :func:`run_cli` — runs a ``whybatch run`` command, reading the stage lines it prints on
  standard error as they come (``done <stage>  [rows]  [note]  <seconds> s``): a line's
  arrival time is the stage's end and its seconds give the start.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from jobs.progress import Progress, Stage

STAGE_LINE = re.compile(r"^(done|failed) (?P<body>.*?)\s+(?P<seconds>\d+(?:\.\d+)?) s$")


@dataclass(frozen=True)
class Window:
    """A stage: its name and its wall-clock interval (:func:`time.time` seconds)."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class StageRecorder(Progress):
    """Records each stage of an in-process run as a :class:`Window` in :attr:`windows`."""

    def __init__(self) -> None:
        self.windows: list[Window] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        current = Stage(name)
        t0 = time.time()
        try:
            yield current
        finally:
            self.windows.append(Window(name, t0, time.time()))


@dataclass(frozen=True)
class CliRun:
    """A finished ``whybatch run`` process: its return code, output, wall-clock span and stages."""

    returncode: int
    stdout: str
    stderr: str
    start: float
    end: float
    windows: tuple[Window, ...]

    @property
    def wall(self) -> float:
        return self.end - self.start


def _stage_name(body: str) -> str:
    """``read and prepare y for ols, ipw  1,000,000 rows`` -> the stage's name (rows and notes
    follow it after two spaces)."""
    return body.split("  ")[0].strip()


def run_cli(command: list[str], cwd) -> CliRun:
    """Run ``command`` (a ``whybatch run``), timing its stages from its standard error."""
    windows, lines = [], []
    with tempfile.TemporaryFile("w+") as out:
        start = time.time()
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.PIPE, text=True, bufsize=1)
        for line in proc.stderr:
            now = time.time()
            lines.append(line)
            m = STAGE_LINE.match(line.rstrip())
            if m:
                windows.append(Window(_stage_name(m["body"]), now - float(m["seconds"]), now))
        proc.wait()
        end = time.time()
        out.seek(0)
        stdout = out.read()
    return CliRun(proc.returncode, stdout, "".join(lines), start, end, tuple(windows))


def stage_lines(log, windows, indent: str = "    ") -> list[str]:
    """One line per stage: its wall time and the SQL executions and jobs that started in it
    (``log`` a :class:`bench.event_log.EventLog`, or None for wall times only)."""
    lines = []
    for w in windows:
        text = f"{indent}{w.name:<44}{w.seconds:>8.2f} s"
        if log is not None:
            t = log.within(w.start, w.end)
            text += (f"  {t.executions:>3} executions running {t.execution_busy:>6.2f} s, {t.jobs:>3} jobs; "
                     f"outside executions {t.outside:>6.2f} s")
        lines.append(text)
    return lines


__all__ = ("CliRun", "StageRecorder", "Window", "run_cli", "stage_lines")
