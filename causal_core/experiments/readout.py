"""An experiment readout: every metric × arm × segment against the control, from sums.

:class:`ExperimentReadout` follows the estimator contract (keyword-only ``__init__`` that
only stores, ``fit`` returns self, the result in ``result_``). Per segment it checks the
sample ratio (:mod:`srm`), computes each metric's lift for each treatment arm — CUPED
when the metric names a covariate, always-valid when ``sequential_planned_n`` is set,
Bayesian when ``engine="bayesian"`` — and corrects the p-values of the metric × arm family
of the segment (:mod:`multiple`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from causal_core.errors import EstimationError
from causal_core.experiments.bayesian import GaussianPrior, bayesian_compare
from causal_core.experiments.cuped import cuped_arms
from causal_core.experiments.frequentist import TESTS, compare
from causal_core.experiments.metrics import Metric, arm_estimate
from causal_core.experiments.multiple import METHODS, adjust_p_values
from causal_core.experiments.quantile import ValueCounts, quantile_lift
from causal_core.experiments.sequential import sequential_lift
from causal_core.experiments.srm import SrmResult, srm_test

ENGINES = ("frequentist", "bayesian")
ALL = "all"


@dataclass(frozen=True)
class MetricReadout:
    """One metric, one treatment arm, one segment. Bayesian fields are NaN for the
    frequentist engine; ``p_adjusted`` is NaN for the Bayesian one."""

    metric: str
    arm: str
    segment: str
    method: str
    relative: bool
    control_value: float
    treatment_value: float
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    n_control: float
    n_treatment: float
    theta: float = float("nan")
    variance_reduction: float = float("nan")
    chance_to_win: float = float("nan")
    risk_control: float = float("nan")
    risk_treatment: float = float("nan")

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ReadoutResult:
    """All rows of a readout, the SRM check of each segment and the settings used."""

    rows: tuple[MetricReadout, ...]
    srm: tuple[tuple[str, SrmResult], ...]
    settings: tuple[tuple[str, object], ...] = field(default=())

    def to_dict(self) -> dict:
        return {"settings": dict(self.settings), "rows": [r.to_dict() for r in self.rows],
                "srm": {seg: s.to_dict() for seg, s in self.srm}}

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows])

    def row(self, metric: str, arm: str, segment: str = ALL) -> MetricReadout:
        for r in self.rows:
            if (r.metric, r.arm, r.segment) == (metric, arm, segment):
                return r
        raise KeyError((metric, arm, segment))


class ExperimentReadout:
    """Read out an experiment from per-(segment, arm) sums.

    ``fit(sums, histograms=None)``: ``sums`` maps ``arm`` or ``(segment, arm)`` to
    :class:`ArmSums` holding every variable the metrics name; ``histograms`` maps
    ``(segment, arm, metric name)`` to :class:`ValueCounts` for quantile metrics.
    """

    def __init__(self, *, metrics, control: str, expected_split: Mapping[str, float] | None = None,
                 relative: bool = True, alpha: float = 0.05, test: str = "welch",
                 cuped_theta: str | float = "pooled", multiple_testing: str = "holm",
                 sequential_planned_n: float | None = None, engine: str = "frequentist",
                 prior: GaussianPrior = GaussianPrior(), srm_alpha: float = 0.001) -> None:
        self.metrics = metrics
        self.control = control
        self.expected_split = expected_split
        self.relative = relative
        self.alpha = alpha
        self.test = test
        self.cuped_theta = cuped_theta
        self.multiple_testing = multiple_testing
        self.sequential_planned_n = sequential_planned_n
        self.engine = engine
        self.prior = prior
        self.srm_alpha = srm_alpha

    def _check(self) -> tuple[Metric, ...]:
        metrics = tuple(self.metrics)
        if not metrics or not all(isinstance(m, Metric) for m in metrics):
            raise EstimationError("ExperimentReadout needs a non-empty sequence of Metric")
        for name, value, valid in (("engine", self.engine, ENGINES), ("test", self.test, TESTS),
                                   ("multiple_testing", self.multiple_testing, tuple(METHODS))):
            if value not in valid:
                raise EstimationError(f"ExperimentReadout: {name} {value!r} is not one of {list(valid)}")
        return metrics

    def fit(self, sums, histograms=None) -> "ExperimentReadout":
        metrics = self._check()
        grid = {(k if isinstance(k, tuple) else (ALL, k)): v for k, v in sums.items()}
        segments = list(dict.fromkeys(seg for seg, _ in grid))
        rows, srm = [], []
        for seg in segments:
            arms = [arm for s, arm in grid if s == seg]
            if self.control not in arms:
                raise EstimationError(f"segment {seg!r} has no control arm {self.control!r}; arms: {arms}")
            if self.expected_split is not None:
                srm.append((seg, srm_test({a: grid[seg, a].count() for a in arms},
                                          {a: self.expected_split.get(a, 0.0) for a in arms},
                                          alpha=self.srm_alpha)))
            seg_rows = [self._row(m, seg, arm, grid[seg, self.control], grid[seg, arm], histograms)
                        for m in metrics for arm in arms if arm != self.control]
            rows.extend(self._adjust(seg_rows))
        settings = (("control", self.control), ("relative", self.relative), ("alpha", self.alpha),
                    ("test", self.test), ("engine", self.engine),
                    ("multiple_testing", self.multiple_testing),
                    ("sequential_planned_n", self.sequential_planned_n),
                    ("cuped_theta", self.cuped_theta))
        self.result_ = ReadoutResult(rows=tuple(rows), srm=tuple(srm), settings=settings)
        return self

    def _adjust(self, rows: list[MetricReadout]) -> list[MetricReadout]:
        if self.engine == "bayesian" or not rows:
            return rows
        adj = adjust_p_values([r.p_value for r in rows], self.multiple_testing, self.alpha).adjusted
        return [_replace(r, p_adjusted=float(a)) for r, a in zip(rows, adj)]

    def _row(self, m: Metric, seg: str, arm: str, sa, sb, histograms) -> MetricReadout:
        extra = {}
        if m.kind == "quantile":
            try:
                ha, hb = histograms[seg, self.control, m.name], histograms[seg, arm, m.name]
            except (KeyError, TypeError):
                raise EstimationError(f"quantile metric {m.name!r} needs histograms for segment "
                                      f"{seg!r}, arms {self.control!r} and {arm!r}") from None
            lift = quantile_lift(ha, hb, m.level, relative=self.relative, alpha=self.alpha)
            ea_val, eb_val, method = _q(ha, m.level), _q(hb, m.level), "quantile"
            na, nb = ha.n, hb.n
        else:
            if m.has_covariate:
                adj = cuped_arms(sa, sb, m, self.cuped_theta)
                ea, eb, method = adj.control, adj.treatment, "cuped"
                extra = {"theta": adj.theta, "variance_reduction": adj.variance_reduction}
            else:
                ea, eb, method = arm_estimate(sa, m), arm_estimate(sb, m), self.test
            ea_val, eb_val, na, nb = ea.mean, eb.mean, ea.n, eb.n
            if self.engine == "bayesian":
                b = bayesian_compare(ea, eb, relative=self.relative, prior=self.prior,
                                     alpha=self.alpha, inverse=m.inverse)
                return MetricReadout(m.name, arm, seg, f"bayesian-{method}", self.relative, ea_val, eb_val,
                                     b.expected, b.posterior_sd, b.ci_low, b.ci_high, float("nan"),
                                     float("nan"), na, nb, chance_to_win=b.chance_to_win,
                                     risk_control=b.risk_control, risk_treatment=b.risk_treatment,
                                     **extra)
            lift = compare(ea, eb, relative=self.relative, alpha=self.alpha, test=self.test)
        lo, hi, p = lift.ci_low, lift.ci_high, lift.p_value
        if self.sequential_planned_n is not None:
            seq = sequential_lift(lift.estimate, lift.se, na + nb, alpha=self.alpha,
                                  planned_n=self.sequential_planned_n)
            lo, hi, p, method = seq.ci_low, seq.ci_high, seq.p_value, f"sequential-{method}"
        return MetricReadout(m.name, arm, seg, method, self.relative, ea_val, eb_val, lift.estimate,
                             lift.se, lo, hi, p, float("nan"), na, nb, **extra)


def _q(h: ValueCounts, level: float) -> float:
    return float(h.order_statistic(np.ceil(h.n * level)))


def _replace(row: MetricReadout, **changes) -> MetricReadout:
    return MetricReadout(**{**asdict(row), **changes})
