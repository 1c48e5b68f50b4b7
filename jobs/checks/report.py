"""The outcome of a study's data checks as one frozen, JSON-able value.

A :class:`CheckReport` holds one :class:`CheckRow` per check — the GX expectations of
:func:`~jobs.checks.run.run_checks` and the fitted-result checks of
:func:`~jobs.checks.fit.fit_checks` in the same format — and GX's own validation result
as a JSON-native dict. ``CheckReport.from_dict(r.to_dict()) == r``, and ``to_dict()``
is what results.json holds under ``checks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from causal_core.errors import DataCheckError
from causal_core.json_values import json_native
from jobs.checks.vocabulary import CRITICAL, SEVERITIES

GX, FITTED = "great_expectations", "fitted result"


@dataclass(frozen=True)
class CheckRow:
    """One check's outcome.

    ``check`` is the vocabulary key (``min_rows``, ``treatment_values``, ... or, for a
    fitted result, ``overlap`` and ``balance``); ``expectation`` the GX expectation type
    (``expect_column_values_to_be_in_set``), None for a fitted-result check; ``source``
    says which of the two produced it. ``observed`` is the observed value (a row count,
    a type name, a share), ``unexpected_count`` / ``element_count`` the rows that broke
    the expectation and the rows looked at, where the check counts rows. ``estimator``
    names the fitted estimate a fitted-result check read.
    """

    check: str
    expectation: str | None
    column: str | None
    severity: str
    success: bool
    message: str
    observed: Any = None
    unexpected_count: int | None = None
    element_count: int | None = None
    source: str = GX
    estimator: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"CheckRow.severity: expected one of {SEVERITIES}, got {self.severity!r}")
        object.__setattr__(self, "observed", json_native(self.observed))

    @property
    def critical_failure(self) -> bool:
        return not self.success and self.severity == CRITICAL

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckRow:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass(frozen=True)
class CheckReport:
    """The rows of every check and GX's validation result (``validation``, JSON-native).

    ``passed`` is True when no critical check failed; warnings never fail a run.
    """

    rows: tuple[CheckRow, ...]
    validation: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "validation", json_native(self.validation))

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    @property
    def critical_failures(self) -> tuple[CheckRow, ...]:
        return tuple(r for r in self.rows if r.critical_failure)

    @property
    def warnings(self) -> tuple[CheckRow, ...]:
        """The checks of severity warning that failed."""
        return tuple(r for r in self.rows if not r.success and r.severity != CRITICAL)

    def with_rows(self, rows: Iterable[CheckRow]) -> CheckReport:
        """This report with ``rows`` added (the fitted-result checks, after estimation)."""
        return replace(self, rows=self.rows + tuple(rows))

    def to_json_dict(self) -> dict:
        """GX's validation result (``ExpectationSuiteValidationResult.to_json_dict()``)."""
        return dict(self.validation)

    def to_dict(self) -> dict:
        """results.json's ``checks``: the verdict, counts, every row, and GX's result."""
        return {"passed": self.passed, "critical_failures": len(self.critical_failures),
                "warnings": len(self.warnings), "rows": [r.to_dict() for r in self.rows],
                "validation": self.to_json_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckReport:
        return cls(tuple(CheckRow.from_dict(r) for r in d["rows"]), d.get("validation") or {})


def raise_for_critical(report: CheckReport) -> None:
    """Raise :class:`DataCheckError` listing every failed critical check in words; do
    nothing when the report passed (warnings are left to the caller to show)."""
    failed = report.critical_failures
    if not failed:
        return
    lines = "\n".join(f"  - {r.message}" for r in failed)
    raise DataCheckError(f"the data failed {len(failed)} critical check(s):\n{lines}")
