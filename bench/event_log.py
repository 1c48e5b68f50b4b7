"""Where a run's wall time goes, from Spark's own event log.

A session started with :func:`event_log_conf` writes every listener event as a JSON line
under its event-log directory: the SQL executions (``SparkListenerSQLExecutionStart`` /
``End``: one query, from physical planning to its last job), the jobs they launch
(``SparkListenerJobStart`` / ``End``) and, on a Spark Connect server, each plan a client
sent (``SparkListenerConnectOperationStarted`` / ``Finished``). The same files come from
a classic session, a ``whybatch run`` process and a Connect server, so one reader serves all
three. :meth:`EventLog.within` keeps the events that started inside a wall-clock window (the
event times are the JVM's ``System.currentTimeMillis``, the same clock as :func:`time.time`
on one machine) and sums them; what is left of the window's wall time is spent outside
Spark's executions: building and analysing the queries, client round trips, driver-side
numpy, start-up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
JOB_START, JOB_END = "SparkListenerJobStart", "SparkListenerJobEnd"
CONNECT_STARTED = "org.apache.spark.sql.connect.service.SparkListenerConnectOperationStarted"
WANTED = (SQL_START, SQL_END, JOB_START, JOB_END, CONNECT_STARTED)


def event_log_conf(directory: Path) -> dict[str, str]:
    """Spark conf that writes the session's event log, uncompressed, under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file://{directory}",
            "spark.eventLog.compress": "false"}


@dataclass(frozen=True)
class SparkTime:
    """The Spark work inside one window of wall time."""

    wall: float
    executions: int  # SQL executions that started in the window
    jobs: int  # Spark jobs submitted in the window
    operations: int  # plans received by a Connect server (0 on a classic session)
    execution_sum: float  # summed duration of those executions, seconds
    execution_busy: float  # the union of their intervals (nested executions counted once)
    job_busy: float  # the union of the jobs' intervals
    open: int  # executions or jobs whose end was not in the log (counted up to the window's end)

    @property
    def outside(self) -> float:
        """Wall time with no SQL execution running."""
        return self.wall - self.execution_busy

    def line(self) -> str:
        ops = f", {self.operations} Connect operations" if self.operations else ""
        unfinished = f" ({self.open} unfinished in the log)" if self.open else ""
        share = self.execution_busy / self.wall if self.wall > 0 else 0.0
        return (f"{self.executions} SQL executions / {self.jobs} jobs{ops}{unfinished}: executions running "
                f"{self.execution_busy:.2f} s of {self.wall:.2f} s wall ({share:.0%}; summed "
                f"{self.execution_sum:.2f} s), jobs running {self.job_busy:.2f} s; outside executions "
                f"{self.outside:.2f} s")


def _events(directory: Path):
    """``(application, event)`` for the wanted events of every event-log file under
    ``directory``: the application is the top-level file (or directory, for a rolling log);
    an unfinished last line, still being written, is skipped."""
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            for raw in fh:
                head = raw[:160]
                if not any(w.encode() in head for w in WANTED):
                    continue
                try:
                    yield path.relative_to(directory).parts[0], json.loads(raw)
                except ValueError:
                    continue


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


@dataclass(frozen=True)
class EventLog:
    """The SQL executions, jobs (each ``(id, start ms, end ms or None)``) and Connect
    operations (start ms) of the event logs under a directory."""

    executions: tuple[tuple[object, int, int | None], ...]
    jobs: tuple[tuple[object, int, int | None], ...]
    operations: tuple[int, ...]

    def within(self, start: float, end: float) -> SparkTime:
        """What started in ``[start, end]`` (:func:`time.time` seconds); an execution or job
        still open in the log counts up to the window's end."""
        lo, hi = int(start * 1000), int(end * 1000) + 1

        def clipped(rows):
            kept = [(a, hi if b is None else min(b, hi)) for _, a, b in rows if lo <= a <= hi]
            return kept, sum(1 for _, a, b in rows if lo <= a <= hi and b is None)

        execs, open_execs = clipped(self.executions)
        jobs, open_jobs = clipped(self.jobs)
        return SparkTime(wall=end - start, executions=len(execs), jobs=len(jobs),
                         operations=sum(1 for t in self.operations if lo <= t <= hi),
                         execution_sum=sum(b - a for a, b in execs) / 1000, execution_busy=_union(execs) / 1000,
                         job_busy=_union(jobs) / 1000, open=open_execs + open_jobs)


def read_event_log(directory: Path, since: float = 0.0, settle: float = 10.0) -> EventLog:
    """Read the event logs under ``directory``; wait up to ``settle`` seconds for the end
    events of executions and jobs that started after ``since`` (:func:`time.time`) — the
    listener bus writes them a moment after the client has its answer."""
    deadline = time.monotonic() + settle
    since_ms = int(since * 1000)
    while True:
        exec_start, exec_end, job_start, job_end, ops = {}, {}, {}, {}, []
        for app, e in _events(directory):  # ids count from 0 in every application
            kind = e.get("Event", "")
            if kind == SQL_START:
                exec_start[app, e["executionId"]] = e["time"]
            elif kind == SQL_END:
                exec_end[app, e["executionId"]] = e["time"]
            elif kind == JOB_START:
                job_start[app, e["Job ID"]] = e["Submission Time"]
            elif kind == JOB_END:
                job_end[app, e["Job ID"]] = e["Completion Time"]
            elif kind == CONNECT_STARTED:
                ops.append(e.get("eventTime", 0))
        waiting = [i for i, t in exec_start.items() if t >= since_ms and i not in exec_end] + \
            [j for j, t in job_start.items() if t >= since_ms and j not in job_end]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return EventLog(tuple((i, t, exec_end.get(i)) for i, t in exec_start.items()),
                    tuple((j, t, job_end.get(j)) for j, t in job_start.items()), tuple(ops))


def add(parts: list[SparkTime]) -> SparkTime:
    """Several windows (e.g. the studies of one figure) as one."""
    return SparkTime(*(sum(getattr(p, f) for p in parts) for f in SparkTime.__dataclass_fields__))


__all__ = ("EventLog", "SparkTime", "add", "event_log_conf", "read_event_log")
