"""A study, engine-free: one plan per metric, which estimator runs on which strategy, the
design each fits, how estimators of one target compare, the run key, and the typed
:class:`StudyResult` (results.json) a run produces."""

from causal_core.study.comparison import Comparison, compare_estimates, study_warnings
from causal_core.study.design import (
    FrameColumns, ModelRequest, build_design, contrast_text, model_request, treatment_fits, treatment_obstacle,
)
from causal_core.study.plans import plan_study
from causal_core.study.result import (
    RESULTS_VERSION, EstimateRow, Interval, ResultsError, StudyResult, gather_result, run_key,
)
from causal_core.study.selection import Selection, auto_estimators, binary_by_design, choose_estimators

__all__ = [
    "RESULTS_VERSION", "Comparison", "EstimateRow", "FrameColumns", "Interval", "ModelRequest", "ResultsError",
    "Selection", "StudyResult", "auto_estimators", "binary_by_design", "build_design", "choose_estimators",
    "compare_estimates", "contrast_text", "gather_result", "model_request", "plan_study", "run_key",
    "study_warnings", "treatment_fits", "treatment_obstacle",
]
