"""Experiment statistics from per-arm (per-bucket) sums: metric kinds, lifts, CUPED,
delta method, SRM, sequential intervals, Bayesian readouts, quantiles, multiple testing.

Every function takes :class:`ArmSums` (counts, sums and cross products per arm, the
moments the warehouse pass produces), per-arm histograms for quantiles, or estimates
derived from them — never rows. :class:`ExperimentReadout` ties a metric × arm × segment
grid together.
"""

from causal_core.experiments.bayesian import BayesianResult, GaussianPrior, bayesian_compare
from causal_core.experiments.cuped import CupedArms, LinArms, cuped_arms, cuped_theta, lin_arms
from causal_core.experiments.frequentist import LiftResult, compare, log_ratio_interval
from causal_core.experiments.metrics import ArmEstimate, Metric, arm_estimate
from causal_core.experiments.multiple import AdjustedPValues, adjust_p_values
from causal_core.experiments.quantile import QuantileEstimate, ValueCounts, quantile_estimate, quantile_lift
from causal_core.experiments.readout import ExperimentReadout, MetricReadout, ReadoutResult
from causal_core.experiments.sequential import SequentialResult, sequential_lift
from causal_core.experiments.srm import SrmResult, srm_test
from causal_core.experiments.sums import ArmSums

__all__ = [
    "AdjustedPValues", "ArmEstimate", "ArmSums", "BayesianResult", "CupedArms", "ExperimentReadout",
    "GaussianPrior", "LiftResult", "LinArms", "Metric", "MetricReadout", "QuantileEstimate",
    "ReadoutResult", "SequentialResult", "SrmResult", "ValueCounts", "adjust_p_values",
    "arm_estimate", "bayesian_compare", "compare", "cuped_arms", "cuped_theta", "lin_arms",
    "log_ratio_interval", "quantile_estimate", "quantile_lift", "sequential_lift", "srm_test",
]
