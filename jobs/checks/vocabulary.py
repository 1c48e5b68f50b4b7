"""The ``checks:`` section of a study spec: what each key means, and its validation.

This module reads and checks the section without Spark (the CLI calls
:func:`validate_checks_spec` or :func:`check_options` before a session starts); the
reference for the vocabulary is the docstring of :mod:`jobs.checks`.

``StudySpec.checks`` holds the section frozen (mappings as sorted pairs, lists as
tuples), which cannot tell a mapping from a list of two-item lists — a shape some GX
kwargs take (``value_pairs_set``). So the section is read back from the spec's YAML
text when the spec has one, and thawed from the frozen pairs only for specs built in
code.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from causal_core.errors import SpecError
from causal_core.spec import StudySpec, load_yaml

CRITICAL, WARNING = "critical", "warning"
SEVERITIES = (CRITICAL, WARNING)
CHECK_KEYS = ("min_rows", "max_null_fraction", "freshness_days", "treatment_values", "column_types", "expectations")
EXPECTATION_KEYS = ("expectation", "kwargs", "severity")


@dataclass(frozen=True)
class UserExpectation:
    """One entry of ``checks.expectations``: a GX expectation class name, its kwargs
    (sorted pairs, so the value hashes) and the severity of its failure."""

    expectation: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    severity: str = CRITICAL

    def kwargs_dict(self) -> dict[str, Any]:
        return dict(self.kwargs)


@dataclass(frozen=True)
class CheckOptions:
    """The checks a study asked for, with the defaults filled in.

    ``max_null_fraction`` is one limit for every needed column (a float), a limit per
    named column (sorted pairs), or None for no null check.
    """

    min_rows: int = 1
    max_null_fraction: float | tuple[tuple[str, float], ...] | None = None
    freshness_days: int | None = None
    treatment_values: bool = True
    column_types: bool = True
    expectations: tuple[UserExpectation, ...] = ()


def checks_section(spec: StudySpec) -> dict[str, Any]:
    """The ``checks:`` mapping as the user wrote it (see the module docstring)."""
    if spec.raw:
        doc = load_yaml(spec.raw)
        section = doc.get("checks") if isinstance(doc, Mapping) else None
        return dict(section) if isinstance(section, Mapping) else {}
    return {key: _thaw(value) for key, value in spec.checks}


def _thaw(value: Any) -> Any:
    """Undo ``_freeze`` of the spec parser: pairs with text keys become a dict, other tuples lists."""
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
            return {k: _thaw(v) for k, v in value}
        return [_thaw(v) for v in value]
    return value


def validate_checks_spec(spec: StudySpec) -> list[tuple[str, str]]:
    """Every problem of the ``checks:`` section as ``(field, message)`` pairs (empty when
    it is valid), without Spark: unknown keys (with the closest valid one), values of the
    wrong kind or range, unknown GX expectation classes (looked up among the attributes of
    ``great_expectations.expectations``) and kwargs the expectation class rejects."""
    return _parse_for(spec)[1]


def check_options(spec: StudySpec) -> CheckOptions:
    """The spec's :class:`CheckOptions`; a :class:`SpecError` listing every problem
    (as :func:`validate_checks_spec`) when the section is invalid."""
    options, problems = _parse_for(spec)
    if problems:
        lines = "\n".join(f"  {where}: {what}" for where, what in problems)
        raise SpecError(f"{spec.source or spec.name}: invalid checks section:\n{lines}", tuple(problems))
    return options


def _parse_for(spec: StudySpec) -> tuple[CheckOptions, list[tuple[str, str]]]:
    """The section's options and problems, with those that need the rest of the spec."""
    options, problems = _parse(checks_section(spec))
    if options.freshness_days is not None and not spec.data.partition_column:
        problems.append(("checks.freshness_days", "dates the newest partition, so it needs data.partition_column"))
    return options, problems


def _parse(section: Mapping[str, Any]) -> tuple[CheckOptions, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    for key in section:
        if key not in CHECK_KEYS:
            close = difflib.get_close_matches(str(key), CHECK_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"checks.{key}", f"unknown check{hint}; expected one of {', '.join(CHECK_KEYS)}"))
    if "min_rows" in section:
        values["min_rows"] = _count(section["min_rows"], "checks.min_rows", problems, minimum=0)
    if "freshness_days" in section:
        values["freshness_days"] = _count(section["freshness_days"], "checks.freshness_days", problems, minimum=0)
    if "max_null_fraction" in section:
        values["max_null_fraction"] = _null_limits(section["max_null_fraction"], problems)
    for flag in ("treatment_values", "column_types"):
        if flag in section:
            if isinstance(section[flag], bool):
                values[flag] = section[flag]
            else:
                problems.append((f"checks.{flag}", f"expected true or false, got {section[flag]!r}"))
    if "expectations" in section:
        values["expectations"] = _user_expectations(section["expectations"], problems)
    kept = {k: v for k, v in values.items() if v is not None}
    return CheckOptions(**kept), problems


def _count(value: Any, where: str, problems: list, *, minimum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        problems.append((where, f"expected a whole number >= {minimum}, got {value!r}"))
        return None
    return int(value)


def _fraction(value: Any, where: str, problems: list) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
        problems.append((where, f"expected a fraction between 0 and 1 (0.05 for 5%), got {value!r}"))
        return None
    return float(value)


def _null_limits(value: Any, problems: list) -> float | tuple[tuple[str, float], ...] | None:
    """One fraction for every needed column, or a mapping column -> fraction."""
    if isinstance(value, Mapping):
        if not value:
            problems.append(("checks.max_null_fraction", "expected a fraction or a non-empty mapping column -> fraction"))
            return None
        limits = {str(c): _fraction(v, f"checks.max_null_fraction.{c}", problems) for c, v in value.items()}
        return None if None in limits.values() else tuple(sorted(limits.items()))
    return _fraction(value, "checks.max_null_fraction", problems)


def _user_expectations(value: Any, problems: list) -> tuple[UserExpectation, ...] | None:
    if not isinstance(value, list):
        problems.append(("checks.expectations", "expected a list of {expectation: ClassName, kwargs: {...}, "
                                                "severity: critical|warning}"))
        return None
    out = []
    for i, item in enumerate(value):
        parsed = _user_expectation(item, f"checks.expectations[{i}]", problems)
        if parsed is not None:
            out.append(parsed)
    return tuple(out) if len(out) == len(value) else None


def _user_expectation(item: Any, where: str, problems: list) -> UserExpectation | None:
    if not isinstance(item, Mapping):
        problems.append((where, f"expected a mapping with expectation, kwargs and severity, got {item!r}"))
        return None
    before = len(problems)
    for key in item:
        if key not in EXPECTATION_KEYS:
            close = difflib.get_close_matches(str(key), EXPECTATION_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((f"{where}.{key}", f"unknown key{hint}; expected {', '.join(EXPECTATION_KEYS)}"))
    severity = item.get("severity", CRITICAL)
    if severity not in SEVERITIES:
        problems.append((f"{where}.severity", f"expected critical or warning, got {severity!r}"))
    kwargs = item.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        problems.append((f"{where}.kwargs", f"expected a mapping of the expectation's arguments, got {kwargs!r}"))
        kwargs = {}
    for reserved in ("meta", "severity"):
        if reserved in kwargs:
            problems.append((f"{where}.kwargs.{reserved}", "set by whybatch; give the severity next to kwargs"))
    name = item.get("expectation")
    cls = expectation_class(name, f"{where}.expectation", problems)
    if cls is not None and len(problems) == before:
        problems.extend((f"{where}.kwargs", m) for m in _rejected_kwargs(cls, dict(kwargs)))
    if len(problems) > before:
        return None
    return UserExpectation(name, tuple(sorted((str(k), v) for k, v in kwargs.items())), severity)


def expectation_class(name: Any, where: str, problems: list) -> type | None:
    """The GX expectation class called ``name`` (e.g. ``ExpectColumnValuesToBeBetween``),
    or None with a problem naming the closest class names."""
    import great_expectations.expectations as gxe

    classes = expectation_class_names()
    if not isinstance(name, str) or name not in classes:
        close = difflib.get_close_matches(str(name), classes, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        problems.append((where, f"{name!r} is not a Great Expectations expectation class{hint}"))
        return None
    return getattr(gxe, name)


def expectation_class_names() -> tuple[str, ...]:
    """The names of the expectation classes ``great_expectations.expectations`` exports."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations import Expectation

    return tuple(sorted(n for n in dir(gxe) if isinstance(getattr(gxe, n), type)
                        and issubclass(getattr(gxe, n), Expectation) and n.startswith("Expect")))


def _rejected_kwargs(cls: type, kwargs: dict) -> list[str]:
    """What GX's own validation of the class's fields says about ``kwargs`` (empty: accepted)."""
    try:
        cls(**kwargs)
    except Exception as exc:  # pydantic's ValidationError, or GX's InvalidExpectationConfigurationError
        errors = getattr(exc, "errors", None)
        if callable(errors):
            return [f"{'.'.join(map(str, e.get('loc', ()))) or cls.__name__}: {e.get('msg')}" for e in errors()]
        return [str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__]
    return []
