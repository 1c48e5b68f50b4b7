"""Data checks: GX suites from the spec run on small Spark frames, the counts and words
of every failure, warnings that never stop a run, the checks section validated without
Spark, and overlap/balance rows read from real fits."""

from __future__ import annotations

import json
import warnings
from datetime import date, datetime, timedelta

import pytest

from causal_core.errors import DataCheckError, SpecError
from causal_core.estimators import BootstrapOptions, ModelRoles, get_estimator
from causal_core.estimators.weighting import PropensityWarning
from causal_core.identification.plan import identify
from causal_core.moments import PandasMomentEngine
from causal_core.spec import parse_spec
from causal_core.study import EstimateRow, Interval, StudyResult
from jobs.checks import (
    CheckReport, build_suite, check_options, fit_checks, raise_for_critical, run_checks, validate_checks_spec,
)
from tests.causal_core.propensity_sims import simulate

STUDY = """
name: discount_checks
data: {table: demo.orders, partition_column: ds}
graph: "age -> discount; age -> spend; discount -> spend"
treatment: discount
outcome: spend
treatment_values: {treated: 1, control: 0}
"""
CHECKS = """
checks:
  min_rows: 20
  max_null_fraction: 0.05
  freshness_days: 2
  expectations:
    - {expectation: ExpectColumnValuesToBeBetween, kwargs: {column: age, min_value: 0, max_value: 120},
       severity: warning}
"""
END = "2026-01-10"
SCHEMA = "discount int, spend double, age double, ds date"


def _rows(n, *, day="2026-01-09", discount=None, spend=None, age=None):
    """``n`` rows: discount alternating 0/1, spend and age numbers, the first row in the
    partition the day before ``day`` and the others in ``day``; ``discount`` / ``spend`` /
    ``age`` map a row index to the value it takes instead."""
    newest = date.fromisoformat(day)
    return [((discount or {}).get(i, i % 2), (spend or {}).get(i, 10.0 + i), (age or {}).get(i, 20.0 + i),
             newest - timedelta(days=0 if i else 1)) for i in range(n)]


@pytest.fixture(scope="module")
def spec():
    return parse_spec(STUDY + CHECKS)


@pytest.fixture(scope="module")
def good(spark, spec):
    return run_checks(spark, spec, spark.createDataFrame(_rows(40), SCHEMA), end=END)


@pytest.fixture(scope="module")
def bad(spark, spec):
    """16 rows (20 required), discount 2 in 3 rows, spend null in 2 (12.5% > 5%), the
    newest partition 8 days before the end, one age of 130."""
    rows = _rows(16, day="2026-01-02", discount={3: 2, 7: 2, 11: 2}, spend={4: None, 5: None}, age={6: 130.0})
    return run_checks(spark, spec, spark.createDataFrame(rows, SCHEMA), end=END)


@pytest.fixture(scope="module")
def warned(spark, spec):
    """Good rows, but a stale newest partition and one age of 130: warnings only. The
    partitions are ISO text here, which the freshness check compares as dates."""
    rows = [(*r[:3], r[3].isoformat()) for r in _rows(40, day="2026-01-02", age={9: 130.0})]
    return run_checks(spark, spec, spark.createDataFrame(rows, SCHEMA.replace("ds date", "ds string")), end=END)


def _row(report, check, column=None):
    found = [r for r in report.rows if r.check == check and (column is None or r.column == column)]
    assert len(found) == 1, (check, column, report.rows)
    return found[0]


def test_every_check_passes_on_good_data(good):
    assert good.passed and not good.warnings
    assert all(r.success for r in good.rows)
    kinds = [(r.check, r.expectation, r.column) for r in good.rows]
    assert kinds == [
        ("min_rows", "expect_table_row_count_to_be_between", None),
        ("column_types", "expect_column_to_exist", "discount"),
        ("column_types", "expect_column_to_exist", "spend"),
        ("column_types", "expect_column_values_to_be_in_type_list", "discount"),
        ("column_types", "expect_column_values_to_be_in_type_list", "spend"),
        ("column_types", "expect_column_values_to_be_in_type_list", "age"),
        ("treatment_values", "expect_column_values_to_be_in_set", "discount"),
        ("max_null_fraction", "expect_column_values_to_not_be_null", "discount"),
        ("max_null_fraction", "expect_column_values_to_not_be_null", "spend"),
        ("max_null_fraction", "expect_column_values_to_not_be_null", "age"),
        ("freshness_days", "expect_column_max_to_be_between", "ds"),
        ("expectations", "expect_column_values_to_be_between", "age"),
    ]
    assert _row(good, "min_rows").observed == 40
    assert _row(good, "freshness_days").message == (
        "the newest partition ds=2026-01-09 is 1 day(s) before the interval's end 2026-01-10, within the 2 allowed")
    assert [r.severity for r in good.rows].count("warning") == 3  # treatment values, freshness, the user's expectation
    raise_for_critical(good)


def test_bad_data_fail_critically_with_counts_in_words(bad):
    assert not bad.passed
    failed = {(r.check, r.column): r for r in bad.critical_failures}
    assert set(failed) == {("min_rows", None), ("max_null_fraction", "spend")}
    assert failed["min_rows", None].message == "the interval has 16 row(s), fewer than the 20 required"
    # values outside the contrast warn: estimation leaves those rows out and counts them
    (values,) = [r for r in bad.warnings if r.check == "treatment_values"]
    assert values.message == "treatment 'discount' has values outside {0, 1}: 2 (3 rows)"
    assert (values.unexpected_count, values.element_count) == (3, 16)
    nulls = failed["max_null_fraction", "spend"]
    assert nulls.message == "outcome 'spend' is null in 12.5% of rows (2 of 16), above the limit 5%"
    assert (nulls.unexpected_count, nulls.element_count) == (2, 16)
    with pytest.raises(DataCheckError) as err:
        raise_for_critical(bad)
    text = str(err.value)
    assert text.startswith("the data failed 2 critical check(s):") and values.message not in text
    for row in failed.values():
        assert row.message in text
    assert "age" not in text and "partition" not in text  # warnings are not in the error


def test_stale_partition_and_user_warning_are_kept_and_do_not_stop_the_run(bad, warned):
    for report, n_rows in ((bad, 16), (warned, 40)):
        fresh = _row(report, "freshness_days")
        assert (fresh.severity, fresh.success, fresh.observed) == ("warning", False, "2026-01-02")
        assert fresh.message == ("the newest partition ds=2026-01-02 is 8 day(s) before the interval's end "
                                 "2026-01-10, more than the 2 allowed")
        user = _row(report, "expectations")
        assert (user.severity, user.success, user.unexpected_count, user.element_count) == ("warning", False, 1,
                                                                                              n_rows)
        assert user.message.startswith("ExpectColumnValuesToBeBetween(column='age', max_value=120, min_value=0) "
                                       f"failed: 1 of {n_rows} rows")
    assert warned.passed and set(warned.warnings) == {_row(warned, "freshness_days"), _row(warned, "expectations")}
    raise_for_critical(warned)  # warnings only: nothing raised


def test_a_missing_column_and_a_text_outcome_fail_by_name(spark):
    spec = parse_spec(STUDY.replace("outcome: spend", "outcome: [spend, visits]")
                      .replace("discount -> spend", "discount -> spend; discount -> visits"))
    df = spark.createDataFrame([(i % 2, f"{i}.5", 30.0) for i in range(6)], "discount int, spend string, age double")
    report = run_checks(spark, spec, df)
    failed = {(r.expectation, r.column): r.message for r in report.critical_failures}
    assert failed == {
        ("expect_column_to_exist", "visits"):
            "outcome 'visits' is not a column of the data (its columns: discount, spend, age)",
        ("expect_column_values_to_be_in_type_list", "spend"): "outcome 'spend' has type StringType; expected a number",
    }
    with pytest.raises(DataCheckError, match="failed 2 critical check"):
        raise_for_critical(report)


def test_defaults_without_a_checks_section(spark):
    spec = parse_spec(STUDY)
    strays = {i: 5 if i % 3 else 7 for i in range(2, 32)}  # 30 rows outside {0, 1}: more than GX's 20 examples
    report = run_checks(spark, spec, spark.createDataFrame(_rows(33, discount=strays), SCHEMA))
    assert [(r.check, r.column, r.success) for r in report.rows] == [
        ("min_rows", None, True), ("column_types", "discount", True), ("column_types", "spend", True),
        ("column_types", "discount", True), ("column_types", "spend", True), ("column_types", "age", True),
        ("treatment_values", "discount", False)]
    assert _row(report, "min_rows").message == "the interval has 33 row(s), at least the 1 required"
    assert report.passed and not report.critical_failures  # values outside the contrast warn
    (strayed,) = report.warnings
    assert (strayed.unexpected_count, strayed.element_count) == (30, 33)
    assert strayed.message in ("treatment 'discount' has values outside {0, 1}: 30 rows, among them 5, 7",
                               "treatment 'discount' has values outside {0, 1}: 30 rows, among them 7, 5")


def test_the_report_round_trips_through_json(bad):
    text = json.dumps(bad.to_dict())
    doc = json.loads(text)
    assert doc["passed"] is False and doc["critical_failures"] == 2 and doc["warnings"] == 3
    assert doc["validation"]["statistics"]["evaluated_expectations"] == len(bad.rows)
    back = CheckReport.from_dict(doc)
    assert back == bad and json.dumps(back.to_dict()) == text
    assert bad.to_json_dict()["success"] is False


@pytest.mark.parametrize(("simple", "bound"), [
    ("date", date(2026, 1, 7)), ("int", 20260107), ("string", date(2026, 1, 7)),
    ("timestamp", datetime(2026, 1, 7)), ("bigint", 20260107)])
def test_the_freshness_bound_takes_the_partition_type_and_today_without_an_end(spec, simple, bound):
    suite = build_suite(spec, {"discount": "int", "spend": "double", "ds": simple}, today=date(2026, 1, 9))
    fresh = [e for e in suite.expectations if e.expectation_type == "expect_column_max_to_be_between"]
    assert len(fresh) == 1 and fresh[0].min_value == bound
    assert fresh[0].meta["since"] == "today" and fresh[0].meta["severity"] == "warning"
    # every expectation says its severity and what it checks, in GX's field and in meta
    assert all(e.meta["severity"] == e.severity.value and e.meta["checks"] for e in suite.expectations)


def test_nulls_fail_policy_sets_a_zero_limit_and_a_mapping_names_columns():
    spec = parse_spec(STUDY.replace("partition_column: ds}", "partition_column: ds, nulls: fail}"))
    suite = build_suite(spec, ["discount", "spend", "age"])
    mostly = {e.column: e.mostly for e in suite.expectations
              if e.expectation_type == "expect_column_values_to_not_be_null"}
    assert mostly == {"discount": 1.0, "spend": 1.0, "age": 1.0}
    spec = parse_spec(STUDY + "checks:\n  max_null_fraction: {spend: 0.1, extra: 0.5}\n")
    suite = build_suite(spec, ["discount", "spend", "age"])
    null_checks = [(e.expectation_type, e.column, getattr(e, "mostly", None)) for e in suite.expectations
                   if e.meta["check"] == "max_null_fraction"]
    assert null_checks == [("expect_column_to_exist", "extra", None),
                           ("expect_column_values_to_not_be_null", "spend", 0.9)]


BAD_CHECKS = """
checks:
  min_row: 10
  max_null_fraction: {spend: 2}
  freshness_days: -1
  treatment_values: "yes"
  expectations:
    - {expectation: ExpectColumnValuesToBeBetwen, kwargs: {column: age}, severity: warning}
    - {expectation: ExpectColumnValuesToBeBetween, kwargs: {colum: age, min_value: 0}, severity: warn}
    - {expectation: ExpectColumnValuesToNotBeNull, kwargs: {column: age, mostly: 0.9}, severity: warning, note: x}
"""


def test_validate_checks_spec_names_every_bad_field_without_spark():
    problems = dict(validate_checks_spec(parse_spec(STUDY + BAD_CHECKS)))
    assert set(problems) == {
        "checks.min_row", "checks.max_null_fraction.spend", "checks.freshness_days", "checks.treatment_values",
        "checks.expectations[0].expectation", "checks.expectations[1].severity",
        "checks.expectations[2].note"}
    assert "did you mean 'min_rows'?" in problems["checks.min_row"]
    assert "ExpectColumnValuesToBeBetween" in problems["checks.expectations[0].expectation"]
    assert problems["checks.max_null_fraction.spend"].startswith("expected a fraction between 0 and 1")
    assert validate_checks_spec(parse_spec(STUDY + CHECKS)) == []
    unpartitioned = parse_spec(STUDY.replace(", partition_column: ds", "") + CHECKS)
    assert validate_checks_spec(unpartitioned) == [
        ("checks.freshness_days", "dates the newest partition, so it needs data.partition_column")]
    assert validate_checks_spec(parse_spec(STUDY)) == []


def test_kwargs_an_expectation_class_rejects_are_named():
    spec = parse_spec(STUDY + "checks:\n  expectations:\n    - {expectation: ExpectColumnValuesToBeBetween, "
                              "kwargs: {colum: age, min_value: 0}}\n")
    problems = validate_checks_spec(spec)
    assert [f for f, _ in problems] == ["checks.expectations[0].kwargs"] * len(problems) and problems
    assert any("column" in m for _, m in problems)
    with pytest.raises(SpecError) as err:
        check_options(spec)
    assert err.value.problems == tuple(problems)


# ---------------------------------------------------------------- fitted-result checks
def _fitted(name, frame):
    design = ModelRoles(treatment="d", outcome="y", covariates=("x1", "x2"), target="ate")
    with warnings.catch_warnings():  # poor overlap warns while fitting; the checks read the same numbers
        warnings.simplefilter("ignore", PropensityWarning)
        return get_estimator(name)(bootstrap=BootstrapOptions(replicates=0)).fit(
            PandasMomentEngine(frame, n_buckets=64), design).result_


def _study(*fitted):
    plan = identify("x1 -> d; x2 -> d; x1 -> y; x2 -> y; d -> y", "d", "y")
    return StudyResult(study="s", run_key="k", interval=Interval(), rows=1, plan={"y": plan},
                       estimates=tuple(EstimateRow.from_result(f) for f in fitted), spec_hash="h")


def test_overlap_and_balance_rows_read_the_fitted_diagnostics():
    good, poor = simulate(4000, seed=1), simulate(4000, seed=2, alpha=(0.0, 3.0, 0.0))
    fits = [_fitted("ipw", good), _fitted("ipw", poor), _fitted("ols", poor)]
    rows = fit_checks(_study(*fits))
    assert all(r.severity == "warning" and r.source == "fitted result" and r.expectation is None for r in rows)
    by = [(r.estimator, r.check, r.success) for r in rows]
    assert by[:2] == [("ipw", "overlap", True), ("ipw", "balance", True)]
    share = fits[1].diagnostics["overlap"]["share_outside"]
    poor_overlap = rows[2]
    assert (poor_overlap.check, poor_overlap.success, poor_overlap.observed) == ("overlap", False, share)
    assert share > 0.2
    assert poor_overlap.message.startswith(f"ipw on y: {share:.1%} of the rows have a logistic propensity beyond "
                                           "[0.05, 0.95], above the limit 1% (inverse weights are extreme there)")
    smd = rows[3]
    assert smd.check == "balance" and smd.observed == pytest.approx(fits[1].diagnostics["max_abs_smd_after"])
    ols_rows = [r for r in rows if r.estimator == "ols"]
    assert [r.check for r in ols_rows] == ["overlap", "balance"]
    assert ols_rows[0].observed == pytest.approx(fits[2].diagnostics["overlap"]["share_outside"])
    assert ols_rows[1].observed["standardized_difference"] == pytest.approx(
        fits[2].diagnostics["overlap"]["standardized_difference"])
    report = CheckReport(rows=()).with_rows(rows)
    assert report.passed  # fitted-result checks warn, never fail the run
    assert CheckReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report
