"""Stage reporting for long runs: what the CLI shows while a study runs.

A run calls ``progress.stage(name)`` around each step (start Spark, read and prepare a
model frame, fit an estimator, refute, validate the graph, check, track, report). The
default :data:`SILENT` reports nothing (what the Python API, Airflow and ``--quiet`` use);
the CLI passes a :class:`ConsoleProgress`, which shows the current stage with a spinner and
prints each finished one with its time and, where known, its row count.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


class Stage:
    """One running stage: ``rows`` may be set when the stage learns how many rows it read."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: int | None = None
        self.note = ""


class Progress:
    """Reports nothing; subclasses show stages somewhere."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        yield Stage(name)


SILENT = Progress()


class ConsoleProgress(Progress):
    """Stages on a rich console: a spinner with the running stage, a line per finished one."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        current = Stage(name)
        t0 = time.perf_counter()
        ok = False
        try:
            with self.console.status(f"{name} ...", spinner="dots"):
                yield current
            ok = True
        finally:
            seconds = time.perf_counter() - t0
            rows = f"  {current.rows:,} rows" if current.rows is not None else ""
            note = f"  {current.note}" if current.note else ""
            mark = "[green]done[/]" if ok else "[red]failed[/]"
            self.console.print(f"{mark} {name}{rows}{note}  [dim]{seconds:.1f} s[/]", highlight=False)


__all__ = ("ConsoleProgress", "Progress", "SILENT", "Stage")
