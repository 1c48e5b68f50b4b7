"""Positivity and balance as checks on a fitted study: warning rows read from the estimates.

These are not GX expectations: they read what the estimators measured while fitting (a
``StudyResult``'s estimate diagnostics), not the rows, so no batch is validated. They
come out as :class:`~jobs.checks.report.CheckRow` values of severity warning, in the
format of the data checks, with ``source`` "fitted result" and the estimator named.

- ``overlap``: the share of rows whose propensity lies beyond [0.05, 0.95]
  (``diagnostics["overlap"]["share_outside"]``, :func:`~causal_core.estimators.weighting.overlap_diagnostic`).
  The limit is the one the estimator itself warns at: 1% for an estimator that weights
  rows by 1/e (its diagnostics count ``n_near_bounds``), where a few extreme weights
  move the estimate, and 10% for one that does not (ols, stratification), where
  extrapolation does. Arms whose propensity ranges do not meet fail whatever the share.
- ``balance``: after weighting, the largest absolute standardized mean difference of a
  covariate (``max_abs_smd_after``) at most 0.1 (Austin 2009, "Balance diagnostics for
  comparing the distribution of baseline covariates", sec. 3; Stuart 2010); for ols, Rubin's
  (2001, sec. 3) standardized difference B of the linear discriminant score within
  (-0.5, 0.5) and its variance ratio R within (0.5, 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from causal_core.estimators.weighting import EXTRAPOLATION_SHARE, NEAR_BOUND, NEAR_SHARE
from causal_core.study.result import EstimateRow, StudyResult
from jobs.checks.report import FITTED, CheckRow
from jobs.checks.vocabulary import WARNING

SMD_LIMIT = 0.1  # Austin (2009): |SMD| above 0.1 marks a meaningful imbalance
RUBIN_B, RUBIN_R = 0.5, (0.5, 2.0)  # Rubin (2001, sec. 3)


def fit_checks(result: StudyResult) -> list[CheckRow]:
    """The overlap and balance warning rows of every estimate in ``result`` that measured
    them (see the module docstring); estimates without those diagnostics give none."""
    rows: list[CheckRow] = []
    for estimate in result.estimated:
        diagnostics = estimate.diagnostics or {}
        overlap = diagnostics.get("overlap")
        if isinstance(overlap, Mapping) and overlap.get("share_outside") is not None:
            rows.append(_overlap_row(estimate, overlap, weighted="n_near_bounds" in diagnostics))
        if diagnostics.get("max_abs_smd_after") is not None:
            rows.append(_smd_row(estimate, diagnostics))
        if isinstance(overlap, Mapping) and overlap.get("standardized_difference") is not None:
            rows.append(_rubin_row(estimate, overlap))
    return rows


def _who(estimate: EstimateRow) -> str:
    segment = f", segment {estimate.segment}" if estimate.segment not in ("", "all") else ""
    return f"{estimate.estimator} on {estimate.metric}{segment}"


def _row(estimate: EstimateRow, check: str, success: bool, message: str, observed: Any,
         column: str | None = None) -> CheckRow:
    return CheckRow(check=check, expectation=None, column=column, severity=WARNING, success=success,
                    message=message, observed=observed, source=FITTED, estimator=estimate.estimator)


def _overlap_row(estimate: EstimateRow, overlap: Mapping[str, Any], weighted: bool) -> CheckRow:
    share, limit = float(overlap["share_outside"]), NEAR_SHARE if weighted else EXTRAPOLATION_SHARE
    low, high = overlap.get("bounds") or (NEAR_BOUND, 1.0 - NEAR_BOUND)
    score = f"{overlap.get('propensity', 'estimated')} propensity"
    if overlap.get("arms_overlap") is False:
        return _row(estimate, "overlap", False, f"{_who(estimate)}: the treated and untreated rows do not overlap "
                    f"in their {score} (complete separation): the effect is not supported by comparable rows",
                    share)
    beyond = f"{share:.1%} of the rows have a {score} beyond [{low:g}, {high:g}]"
    why = "inverse weights are extreme there" if weighted else "the outcome model extrapolates there"
    if share <= limit:
        return _row(estimate, "overlap", True, f"{_who(estimate)}: {beyond}, within the limit {limit:.0%}", share)
    trim = overlap.get("trim_suggestion")
    return _row(estimate, "overlap", False, f"{_who(estimate)}: {beyond}, above the limit {limit:.0%} ({why})"
                + (f"; {trim}" if trim else ""), share)


def _smd_row(estimate: EstimateRow, diagnostics: Mapping[str, Any]) -> CheckRow:
    worst = float(diagnostics["max_abs_smd_after"])
    after = diagnostics.get("smd_after") or {}
    column = max(after, key=lambda c: abs(after[c] or 0.0)) if after else None
    named = f" (covariate {column!r})" if column else ""
    text = (f"{_who(estimate)}: after weighting the largest absolute standardized mean difference is "
            f"{worst:.3f}{named}")
    if worst <= SMD_LIMIT:
        return _row(estimate, "balance", True, f"{text}, within {SMD_LIMIT:g}", worst, column)
    return _row(estimate, "balance", False, f"{text}, above {SMD_LIMIT:g}: the propensity model may be "
                "misspecified", worst, column)


def _rubin_row(estimate: EstimateRow, overlap: Mapping[str, Any]) -> CheckRow:
    b = float(overlap["standardized_difference"])
    r = overlap.get("variance_ratio")
    ok = abs(b) < RUBIN_B and (r is None or RUBIN_R[0] < float(r) < RUBIN_R[1])
    ratio = f" and variance ratio {float(r):.2f}" if r is not None else ""
    text = f"{_who(estimate)}: the arms' discriminant scores have standardized difference {b:.2f}{ratio}"
    if ok:
        return _row(estimate, "balance", True, f"{text}, within Rubin's bounds (|B| < 0.5, 0.5 < R < 2)",
                    {"standardized_difference": b, "variance_ratio": r})
    return _row(estimate, "balance", False, f"{text}, outside Rubin's bounds (|B| < 0.5, 0.5 < R < 2): the "
                "regression adjustment leans on extrapolation", {"standardized_difference": b, "variance_ratio": r})
