"""StudyResult: an exact JSON round trip (NaN, None, nested diagnostics), typed rows for
estimates that could not be made, and bad documents that say what is wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from causal_core.estimators.results import EstimateResult
from causal_core.identification.plan import identify
from causal_core.study import Comparison, EstimateRow, Interval, ResultsError, StudyResult


def _result() -> StudyResult:
    plan = identify("z -> d -> y; z -> y; d -> m -> y", "d", "y")
    fitted = EstimateResult(
        estimator="ols", strategy="backdoor.optimal", metric="y", target="ate", estimate=np.float64(1.25),
        se=float("nan"), ci_low=0.5, ci_high=np.float32(2.0), ci_method="bootstrap-percentile", p_value=1e-300,
        n=np.int64(1200), contrast="d: 1 vs 0", segment="all",
        diagnostics={"nested": {"values": (1.0, float("nan"), np.int32(3)), "flag": np.bool_(True)},
                     "inf": float("inf"), "text": "é", "empty": [], "none": None, 7: "key"})
    return StudyResult(
        study="s", run_key="abc", interval=Interval("2026-01-01", None), rows=1200, plan={"y": plan},
        estimates=(EstimateRow.from_result(fitted, {"buckets_keyed_on": "unit", "inf": "frame"}),
                   EstimateRow.not_estimated("ipw", "backdoor.optimal", "y", "treatment 'd' is not binary"),
                   EstimateRow.not_estimated(None, "", "w", "not identifiable: a hedge")),
        spec_hash="0123", comparisons=(Comparison("y", "d: 1 vs 0", "all", "ate", "ols", "aipw", 0.1, float("nan"),
                                                  0.2, 0.03, 400),),
        warnings=("a warning",), dropped_rows={"null in a needed column": np.int64(3)},
        refutations=({"refuter": "placebo", "new_effect": float("nan")},), graph_validation={"tests": [{"p": 0.5}]},
        mlflow={"run_id": "r"}, seconds=1.5)


def test_a_hand_built_result_round_trips_exactly():
    result = _result()
    text = result.to_json()
    back = StudyResult.from_json(text)
    assert back == result
    assert back.to_json() == text
    assert StudyResult.from_json(text).plan["y"] == result.plan["y"]


def test_numbers_json_cannot_hold_are_none_in_the_value_as_in_the_text():
    result = _result()
    row, not_binary, not_identified = result.estimates
    assert row.estimate == 1.25 and type(row.estimate) is float and row.n == 1200 and type(row.n) is int
    assert row.se is None and row.ci_high == 2.0
    assert row.diagnostics["nested"] == {"values": [1.0, None, 3], "flag": True}
    assert row.diagnostics["inf"] is None and row.diagnostics["7"] == "key"
    # frame facts join the estimator's diagnostics only where the estimator left the key free
    assert row.diagnostics["buckets_keyed_on"] == "unit"
    assert list(row.diagnostics)[-1] == "buckets_keyed_on"
    assert result.comparisons[0].se is None and result.comparisons[0].disagree  # Holm-adjusted p 0.03
    assert result.refutations[0]["new_effect"] is None and result.dropped_rows == {"null in a needed column": 3}
    doc = json.loads(result.to_json())
    assert doc["estimates"][0]["se"] is None and doc["estimates"][0]["diagnostics"]["nested"]["values"][1] is None
    assert doc["estimates"][1] == {"estimator": "ipw", "strategy": "backdoor.optimal", "metric": "y",
                                   "segment": "all", "estimate": None, "reason": "treatment 'd' is not binary"}
    assert (not_binary.estimated, not_identified.estimator) == (False, None)
    assert result.estimated == (row,) and result.failed == (not_binary, not_identified)
    assert "NaN" not in result.to_json() and "Infinity" not in result.to_json()


def test_summary_as_a_frame_and_as_text():
    result = _result()
    frame = result.summary()
    assert list(frame["estimator"]) == ["ols", "ipw", None]
    assert frame["estimate"].iloc[0] == 1.25 and frame["reason"].iloc[1] == "treatment 'd' is not binary"
    lines = str(result).splitlines()
    assert lines[0].split() == ["y", "ols", "all", "ate:", "1.2500", "[0.5000,", "2.0000]", "n=1200"]
    assert lines[1] == "y: ipw not estimated: treatment 'd' is not binary"


def test_a_row_is_an_estimate_or_a_reason():
    with pytest.raises(ResultsError, match="needs a reason"):
        EstimateRow("ols", "backdoor", "y")
    with pytest.raises(ResultsError, match="has no reason"):
        EstimateRow("ols", "backdoor", "y", estimate=1.0, reason="why")
    with pytest.raises(ResultsError, match="carries no se, n"):
        EstimateRow("ols", "backdoor", "y", se=0.1, n=5, reason="why")
    with pytest.raises(ResultsError, match="not a finite number"):
        EstimateRow("ols", "backdoor", "y", estimate=float("nan"))


def _doc() -> dict:
    return json.loads(_result().to_json())


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.pop("rows"), r"missing field\(s\) 'rows' of results.json"),
    (lambda d: d["estimates"][0].pop("se"), r"estimates\[0\]: missing field\(s\) 'se' of an estimate row"),
    (lambda d: d["estimates"][1].pop("reason"),
     r"estimates\[1\]: missing field\(s\) 'reason' of a row without an estimate"),
    (lambda d: d["estimates"][2].update(colour="red"), r"estimates\[2\]: unknown field\(s\) 'colour'"),
    (lambda d: d["comparisons"][0].pop("p_adjusted"), r"comparisons\[0\]: missing field\(s\) 'p_adjusted'"),
    (lambda d: d["comparisons"][0].update(disagree=False), r"comparisons\[0\]: .*'disagree' is False"),
    (lambda d: d["plan"]["y"].pop("graph"), r"plan\['y'\]: KeyError: 'graph'"),
    (lambda d: d["interval"].pop("end"), r"interval: missing field\(s\) 'end'"),
    (lambda d: d.update(estimates={}), r"estimates: expected a list, got dict"),
    (lambda d: d.update(version=1), r"version 1 is not supported; expected 2"),
    (lambda d: d.update(rows="many"), r"results.json: ValueError"),
])
def test_a_bad_document_says_what_is_wrong(damage, message):
    doc = _doc()
    damage(doc)
    with pytest.raises(ResultsError, match=message):
        StudyResult.from_json(json.dumps(doc))


def test_text_that_is_not_json_or_not_an_object_is_refused():
    with pytest.raises(ResultsError, match="not valid JSON"):
        StudyResult.from_json("{'study': 1")
    with pytest.raises(ResultsError, match="results.json: expected an object, got list"):
        StudyResult.from_json("[]")
