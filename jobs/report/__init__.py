"""report.html from a StudyResult: one self-contained page with the study's graph, its
estimand, the estimates side by side, the estimators' diagnostics, the refutations,
graph validation, data checks and the estimate over past intervals (see
:mod:`jobs.report.html`)."""

from jobs.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
