"""Data checks on a study's rows, with Great Expectations: the ``checks:`` vocabulary.

Every check is a GX expectation on the interval's Spark DataFrame (run with an
ephemeral context, :func:`run_checks`), except the fitted-result checks of
:func:`fit_checks`, which read the estimates. A failed *critical* check stops the run
(:func:`raise_for_critical` raises :class:`~causal_core.errors.DataCheckError`, exit
code 1); a failed *warning* is reported and the run goes on.

The ``checks:`` section of a study spec (every key optional)::

    checks:
      min_rows: 1000              # critical: the interval has at least this many rows (default 1)
      max_null_fraction: 0.05     # critical: share of nulls allowed in each needed column,
                                  #   or a mapping column -> fraction ({spend: 0.1, age: 0.2})
      freshness_days: 2           # warning: the newest partition is at most this many days
                                  #   before the interval's end (before today without an end)
      treatment_values: true      # warning (default true): treatment values in the declared set
                                  #   (estimation leaves other values out of the contrast, counted)
      column_types: true          # critical (default true): needed columns exist, with usable types
      expectations:               # any GX expectation, by class name and kwargs, with a severity
        - {expectation: ExpectColumnValuesToBeBetween,
           kwargs: {column: age, min_value: 0, max_value: 120}, severity: warning}

What each check expects, as GX expectations (:func:`build_suite`):

- ``min_rows``: ``ExpectTableRowCountToBeBetween(min_value=min_rows)``; always present.
- needed columns: every treatment and outcome, and the graph's other observed
  variables present in the data. ``ExpectColumnToExist`` for each treatment and
  outcome, always.
- ``column_types``: ``ExpectColumnValuesToBeInTypeList``: outcomes numeric (boolean
  counts as 0/1), a treatment without ``treatment_values`` numeric, any other needed
  column a number, text or a date (prepare codes text as levels).
- ``treatment_values``: ``ExpectColumnValuesToBeInSet`` with ``treated`` and ``control``
  (or the ``arms``) when the spec declares them; nulls are left to ``max_null_fraction``.
- ``max_null_fraction``: ``ExpectColumnValuesToNotBeNull(mostly=1 - fraction)`` per
  needed column (or per named column). Without it, ``data.nulls: fail`` sets the limit 0.
- ``freshness_days``: GX has no freshness expectation for partitions, so
  ``ExpectColumnMaxToBeBetween`` on ``data.partition_column`` with ``min_value`` the
  interval's end minus ``freshness_days`` days, in the column's type (a date, a
  timestamp, or a ``YYYYMMDD`` integer; text partitions compare as dates). The frame
  must hold the partition column.
- ``expectations``: each class from ``great_expectations.expectations`` with its kwargs;
  ``severity`` critical (the default) or warning.

:func:`validate_checks_spec` checks the section without Spark (unknown keys with a
did-you-mean, values out of range, unknown expectation classes, kwargs the class
rejects), naming each field (``checks.max_null_fraction``).
"""

from jobs.checks.fit import fit_checks
from jobs.checks.report import CheckReport, CheckRow, raise_for_critical
from jobs.checks.run import run_checks
from jobs.checks.suite import build_suite, needed_columns
from jobs.checks.vocabulary import CheckOptions, UserExpectation, check_options, validate_checks_spec

__all__ = [
    "CheckOptions", "CheckReport", "CheckRow", "UserExpectation", "build_suite", "check_options", "fit_checks",
    "needed_columns", "raise_for_critical", "run_checks", "validate_checks_spec",
]
