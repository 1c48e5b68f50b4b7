"""The GX expectation suite of a study: one expectation per check and column.

:func:`build_suite` turns the spec's checks (:class:`~jobs.checks.vocabulary.CheckOptions`,
defaults filled in) into a ``great_expectations.ExpectationSuite``. It needs the columns
of the frame to be checked (names and Spark types) but no data: a needed column that is
missing gets only its ``ExpectColumnToExist`` (an expectation on a missing column would
fail with an exception instead of saying what is wrong), and the freshness bound takes
the partition column's type.

Every expectation carries its severity twice: GX's own ``severity`` field and
``meta["severity"]``, next to ``meta["check"]`` (the key of the vocabulary), ``meta["role"]``
(treatment, outcome, variable, partition column) and ``meta["checks"]``, what it checks
in words. :mod:`jobs.checks.run` reads them back to word the results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from causal_core.spec import StudySpec
from jobs.checks.vocabulary import CRITICAL, WARNING, CheckOptions, check_options

# Spark type names (``type(dataType).__name__``, what ExpectColumnValuesToBeInTypeList
# compares on Spark) of the columns prepare can use as numbers.
NUMERIC_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "DecimalType",
                 "BooleanType")
# Types a graph variable may have: numbers, or discrete values prepare codes as levels.
USABLE_TYPES = (*NUMERIC_TYPES, "StringType", "VarcharType", "CharType", "DateType", "TimestampType",
                "TimestampNTZType")
_SIMPLE_TO_CLASS = {"tinyint": "ByteType", "smallint": "ShortType", "int": "IntegerType", "bigint": "LongType",
                    "float": "FloatType", "double": "DoubleType", "boolean": "BooleanType", "string": "StringType",
                    "date": "DateType", "timestamp": "TimestampType", "timestamp_ntz": "TimestampNTZType"}


def spark_type_name(simple: str) -> str:
    """The Spark type class name for a ``DataFrame.dtypes`` type string (``bigint`` ->
    ``LongType``, ``decimal(10,2)`` -> ``DecimalType``)."""
    base = simple.split("(")[0].lower()
    if base in ("decimal", "varchar", "char"):
        return {"decimal": "DecimalType", "varchar": "VarcharType", "char": "CharType"}[base]
    return _SIMPLE_TO_CLASS.get(base, simple)


def needed_columns(spec: StudySpec, columns: Sequence[str]) -> dict[str, str]:
    """Column -> role for the columns the checks look at: every treatment and outcome
    (required), and the graph's other observed variables that are present in the data."""
    roles = {t: "treatment" for t in spec.treatment}
    roles.update({y: "outcome" for y in spec.outcome if y not in roles})
    roles.update({v: "variable" for v in spec.graph.observed if v not in roles and v in columns})
    return roles


def build_suite(spec: StudySpec, columns: Mapping[str, str] | Sequence[str], *, end: str | None = None,
                today: date | None = None):
    """The ``ExpectationSuite`` of ``spec``'s checks for a frame with ``columns``.

    ``columns`` maps each column to its Spark type string (``dict(df.dtypes)``), or lists
    the names alone (types then unknown: the freshness bound is a date).
    ``end`` is the interval's end (``YYYY-MM-DD`` or ``YYYYMMDD``); without it the
    freshness bound counts back from ``today`` (default: the date the suite is built).
    The spec's checks section must be valid (:func:`~jobs.checks.vocabulary.check_options`
    raises a SpecError otherwise).
    """
    import great_expectations as gx

    options = check_options(spec)
    types = dict(columns) if isinstance(columns, Mapping) else {c: "" for c in columns}
    # Given at construction, the expectations need no data context (add_expectation
    # looks for one to save the suite to).
    return gx.ExpectationSuite(name=f"whybatch-{spec.name}", expectations=_expectations(spec, options, types, end,
                                                                                          today))


def _expectations(spec: StudySpec, options: CheckOptions, types: dict[str, str], end: str | None,
                  today: date | None) -> list:
    import great_expectations.expectations as gxe

    roles = needed_columns(spec, list(types))
    out = [_expect(gxe.ExpectTableRowCountToBeBetween, CRITICAL, "min_rows",
                   f"the interval has at least {options.min_rows} row(s)", min_value=options.min_rows)]
    for column, role in roles.items():
        if role != "variable":
            out.append(_expect(gxe.ExpectColumnToExist, CRITICAL, "column_types",
                               f"{role} {column!r} is a column of the data", column=column, role=role))
    present = {c: r for c, r in roles.items() if c in types}
    if options.column_types:
        out += _type_expectations(spec, present)
    if options.treatment_values and not spec.treatment_values.natural:
        allowed = _declared_values(spec)
        for t in spec.treatment:
            if t in types:
                # a warning: estimation leaves rows with other values out of the contrast, counted
                out.append(_expect(gxe.ExpectColumnValuesToBeInSet, WARNING, "treatment_values",
                                   f"treatment {t!r} takes only the declared values {_set_text(allowed)}",
                                   column=t, role="treatment", value_set=list(allowed)))
    out += _null_expectations(spec, options, present, types)
    if options.freshness_days is not None and spec.data.partition_column:
        out.append(_freshness(spec.data.partition_column, types.get(spec.data.partition_column, ""),
                              options.freshness_days, end, today))
    for i, user in enumerate(options.expectations):
        cls = getattr(gxe, user.expectation)
        kwargs = user.kwargs_dict()
        words = f"{user.expectation}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        out.append(_expect(cls, user.severity, "expectations", words, index=i, **kwargs))
    return out


def _expect(cls: type, severity: str, check: str, words: str, *, role: str | None = None, index: int | None = None,
            **kwargs: Any):
    meta = {"severity": severity, "check": check, "checks": words}
    if role is not None:
        meta["role"] = role
    if index is not None:
        meta["index"] = index
    return cls(**kwargs, severity=severity, meta=meta)


def _type_expectations(spec: StudySpec, present: Mapping[str, str]) -> list:
    """Outcomes are numbers; so is a treatment without declared values (it enters as its
    own number); a graph variable may also be discrete text or a date, which prepare codes
    as levels (whether one needs ``encode: categorical`` depends on the strategy, which
    the estimation checks with the plan in hand)."""
    import great_expectations.expectations as gxe

    out = []
    for column, role in present.items():
        numeric = role == "outcome" or (role == "treatment" and spec.treatment_values.natural)
        kinds, words = (NUMERIC_TYPES, "a number") if numeric else (USABLE_TYPES, "a number, text or a date")
        out.append(_expect(gxe.ExpectColumnValuesToBeInTypeList, CRITICAL, "column_types",
                           f"{role} {column!r} holds {words}", column=column, role=role, type_list=list(kinds)))
    return out


def _declared_values(spec: StudySpec) -> tuple:
    tv = spec.treatment_values
    values = (*tv.arms, tv.control) if tv.arms else (tv.treated, tv.control)
    return tuple(dict.fromkeys(v for v in values if v is not None))


def _set_text(values: Sequence[Any]) -> str:
    return "{" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values) + "}"


def _null_expectations(spec: StudySpec, options: CheckOptions, present: Mapping[str, str],
                       types: Mapping[str, str]) -> list:
    """``ExpectColumnValuesToNotBeNull`` with ``mostly = 1 - limit``. Without
    ``max_null_fraction``, a spec with ``data.nulls: fail`` gets the limit 0 on every
    needed column, so a null stops the run here, named, before any estimation pass."""
    import great_expectations.expectations as gxe

    limit = options.max_null_fraction
    if limit is None and spec.data.nulls == "fail":
        limit = 0.0
    if limit is None:
        return []
    if isinstance(limit, tuple):
        limits = {c: (present.get(c, "column"), f) for c, f in limit}
    else:
        limits = {c: (role, limit) for c, role in present.items()}
    out = []
    for column, (role, fraction) in limits.items():
        words = f"{role} {column!r} is null in at most {fraction:.1%} of rows"
        if column not in types:  # a named column the frame lacks: the existence check says so
            out.append(_expect(gxe.ExpectColumnToExist, CRITICAL, "max_null_fraction",
                               f"{role} {column!r} (named in checks.max_null_fraction) is a column of the data",
                               column=column, role=role))
            continue
        out.append(_expect(gxe.ExpectColumnValuesToNotBeNull, CRITICAL, "max_null_fraction", words,
                           column=column, role=role, mostly=1.0 - fraction))
    return out


def freshness_bound(end: str | None, days: int, today: date | None = None) -> date:
    """The oldest newest-partition date that is fresh: ``days`` before the interval's end
    (``YYYY-MM-DD`` or ``YYYYMMDD``), or before ``today`` when there is no end."""
    if end is None:
        reference = today or date.today()
    elif end.isdigit():
        reference = datetime.strptime(end, "%Y%m%d").date()
    else:
        reference = date.fromisoformat(end)
    return reference - timedelta(days=days)


def _freshness(column: str, simple_type: str, days: int, end: str | None, today: date | None):
    """GX has no freshness expectation for partitions: the newest partition value must be
    at least the bound, so ``ExpectColumnMaxToBeBetween(min_value=bound)``, with the bound
    in the partition column's type: a YYYYMMDD number for integer partitions, a datetime
    for timestamps, else a date (GX parses a text partition value as a date)."""
    import great_expectations.expectations as gxe

    bound = freshness_bound(end, days, today)
    kind = spark_type_name(simple_type) if simple_type else ""
    if kind in ("ByteType", "ShortType", "IntegerType", "LongType"):
        value: Any = int(bound.strftime("%Y%m%d"))
    elif kind in ("TimestampType", "TimestampNTZType"):
        value = datetime(bound.year, bound.month, bound.day)
    else:  # a date; GX parses a text column's newest value as a date to compare it
        value = bound
    since = f"the interval's end {end}" if end else "today"
    expectation = _expect(gxe.ExpectColumnMaxToBeBetween, WARNING, "freshness_days",
                          f"the newest partition ({column}) is at most {days} day(s) before {since}",
                          column=column, role="partition column", min_value=value)
    expectation.meta.update({"since": since, "reference": (bound + timedelta(days=days)).isoformat(), "days": days})
    return expectation
