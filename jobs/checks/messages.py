"""Plain words for GX validation results: one :class:`~jobs.checks.report.CheckRow` per result.

Each result is read from GX's JSON form (``ExpectationValidationResult.to_json_dict()``):
``expectation_config`` (type, kwargs and the ``meta`` :mod:`jobs.checks.suite` wrote),
``result`` (``observed_value``, or ``element_count``, ``unexpected_count`` and
``partial_unexpected_counts`` for the per-row expectations) and ``exception_info``.
Expectations of the study's own vocabulary get a sentence of their own; a user's
expectation is named with its kwargs and what GX counted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from jobs.checks.report import GX, CheckRow
from jobs.checks.suite import NUMERIC_TYPES


def result_row(result: Mapping[str, Any], columns: Sequence[str]) -> CheckRow:
    """The :class:`CheckRow` of one GX result; ``columns`` are the checked frame's columns
    (named when a needed one is missing)."""
    config = result.get("expectation_config") or {}
    kind, kwargs, meta = config.get("type", ""), config.get("kwargs") or {}, config.get("meta") or {}
    found = result.get("result") or {}
    success = bool(result.get("success"))
    error = (result.get("exception_info") or {})
    if error.get("raised_exception"):
        success = False
        message = f"{meta.get('checks', kind)}: could not be checked: {error.get('exception_message')}"
    else:
        words = _WORDS.get(kind if meta.get("check") != "expectations" else "", _user_words)
        message = words(success, kwargs, meta, found, columns)
    return CheckRow(check=meta.get("check", "expectations"), expectation=kind, column=kwargs.get("column"),
                    severity=meta.get("severity", "critical"), success=success, message=message,
                    observed=found.get("observed_value"), unexpected_count=found.get("unexpected_count"),
                    element_count=found.get("element_count"), source=GX)


def _who(kwargs: Mapping, meta: Mapping) -> str:
    return f"{meta.get('role', 'column')} {kwargs.get('column')!r}"


def _row_count(success, kwargs, meta, found, columns) -> str:
    n, least = found.get("observed_value"), kwargs.get("min_value")
    if success:
        return f"the interval has {n} row(s), at least the {least} required"
    return f"the interval has {n} row(s), fewer than the {least} required"


def _exists(success, kwargs, meta, found, columns) -> str:
    if success:
        return f"{_who(kwargs, meta)} is a column of the data"
    return f"{_who(kwargs, meta)} is not a column of the data (its columns: {', '.join(columns) or 'none'})"


def _types(success, kwargs, meta, found, columns) -> str:
    wanted = "a number" if set(kwargs.get("type_list") or ()) <= set(NUMERIC_TYPES) else "a number, text or a date"
    observed = found.get("observed_value")
    if success:
        return f"{_who(kwargs, meta)} has type {observed}, {wanted}"
    return f"{_who(kwargs, meta)} has type {observed}; expected {wanted}"


def _in_set(success, kwargs, meta, found, columns) -> str:
    allowed = "{" + ", ".join(_value_text(v) for v in _sorted(kwargs.get("value_set") or ())) + "}"
    if success:
        return f"{_who(kwargs, meta)} takes only values in {allowed}"
    # GX counts the example values among the first EXAMPLE_VALUES unexpected rows only:
    # per-value counts are exact when every unexpected row is among them.
    counts = found.get("partial_unexpected_counts") or []
    shown = sum(c["count"] for c in counts)
    total = found.get("unexpected_count") or shown
    if total > shown:
        examples = ", ".join(_value_text(c["value"]) for c in counts)
        return f"{_who(kwargs, meta)} has values outside {allowed}: {_rows(total)}, among them {examples}"
    listed = ", ".join(f"{_value_text(c['value'])} ({_rows(c['count'])})" for c in counts)
    return f"{_who(kwargs, meta)} has values outside {allowed}: {listed}"


def _not_null(success, kwargs, meta, found, columns) -> str:
    nulls, n = found.get("unexpected_count") or 0, found.get("element_count") or 0
    limit = 1.0 - float(kwargs.get("mostly", 1.0))
    share = nulls / n if n else 0.0
    counted = f"{share:.1%} of rows ({nulls} of {n})"
    if success:
        return f"{_who(kwargs, meta)} is null in {counted}, within the limit {_percent(limit)}"
    return f"{_who(kwargs, meta)} is null in {counted}, above the limit {_percent(limit)}"


def _freshness(success, kwargs, meta, found, columns) -> str:
    newest, column = found.get("observed_value"), kwargs.get("column")
    if newest is None:
        return f"the partition column {column!r} has no values: there is no partition to date"
    lag = _days_between(newest, meta.get("reference"))
    behind = f"{lag} day(s) before {meta.get('since')}" if lag is not None else f"older than {kwargs.get('min_value')}"
    if success:
        return f"the newest partition {column}={newest} is {behind}, within the {meta.get('days')} allowed"
    return f"the newest partition {column}={newest} is {behind}, more than the {meta.get('days')} allowed"


def _user_words(success, kwargs, meta, found, columns) -> str:
    what = meta.get("checks", "expectation")
    if success:
        return f"{what} held"
    if found.get("unexpected_count") is not None:
        n, bad = found.get("element_count") or 0, found["unexpected_count"]
        share = f" ({bad / n:.1%})" if n else ""
        return f"{what} failed: {bad} of {n} rows{share} unexpected"
    return f"{what} failed: observed {_value_text(found.get('observed_value'))}"


_WORDS: dict[str, Callable[..., str]] = {
    "expect_table_row_count_to_be_between": _row_count,
    "expect_column_to_exist": _exists,
    "expect_column_values_to_be_in_type_list": _types,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_max_to_be_between": _freshness,
}


def _sorted(values) -> list:
    try:
        return sorted(values)
    except TypeError:  # values of mixed types keep the spec's order
        return list(values)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _value_text(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _as_date(value: Any) -> date | None:
    """A partition value as a date: ``YYYYMMDD`` integers, ISO dates and timestamps."""
    text = str(value)
    try:
        if text.isdigit() and len(text) == 8:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _days_between(newest: Any, bound: Any) -> int | None:
    a, b = _as_date(newest), _as_date(bound)
    return (b - a).days if a and b else None
