"""What a study's estimates say together: estimators of one target compared through their
paired bootstrap replicates (disagreement is evidence that a model is misspecified), and
the warnings a user must see, gathered in one list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats

from causal_core.estimators.results import EstimateResult
from causal_core.json_values import finite_or_none, json_native

DISAGREEMENT_ALPHA = 0.05
COMPARISON_FIELDS = ("metric", "contrast", "segment", "target", "first", "second", "difference", "se", "p_value",
                     "p_adjusted", "replicates")


@dataclass(frozen=True)
class Comparison:
    """The difference of two estimators' estimates of one target, with its bootstrap SE.

    Both estimators reweight the same buckets with the same bootstrap weights, so the
    replicate differences are draws of the difference's sampling distribution (the
    bootstrap of a smooth function of the same bucket sums); ``p_adjusted`` is Holm's
    adjustment over every comparison of the study (Holm 1979).
    """

    metric: str
    contrast: str
    segment: str
    target: str
    first: str
    second: str
    difference: float | None
    se: float | None
    p_value: float | None
    p_adjusted: float | None
    replicates: int

    def __post_init__(self) -> None:
        # A number that is not finite is None, as results.json writes it, so the value and
        # its JSON text say the same.
        for name in ("difference", "se", "p_value", "p_adjusted"):
            object.__setattr__(self, name, finite_or_none(getattr(self, name)))
        object.__setattr__(self, "replicates", int(self.replicates))

    @property
    def disagree(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < DISAGREEMENT_ALPHA

    def to_dict(self) -> dict:
        return json_native({"metric": self.metric, "contrast": self.contrast, "segment": self.segment,
                            "target": self.target, "first": self.first, "second": self.second,
                            "difference": self.difference, "se": self.se, "p_value": self.p_value,
                            "p_adjusted": self.p_adjusted, "replicates": self.replicates,
                            "disagree": self.disagree})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        """The comparison :meth:`to_dict` wrote; ``disagree`` is derived, so it must agree."""
        out = cls(**{f: d[f] for f in COMPARISON_FIELDS})
        if "disagree" in d and d["disagree"] != out.disagree:
            raise ValueError(f"'disagree' is {d['disagree']} but p_adjusted {out.p_adjusted} says {out.disagree}")
        return out

    def warning(self, estimates: Mapping[str, float]) -> str:
        return (f"{self.first} and {self.second} disagree on the {self.target.upper()} of {self.contrast} on "
                f"{self.metric} ({self.segment}): {estimates[self.first]:.4g} vs {estimates[self.second]:.4g}, "
                f"difference {self.difference:.4g} (bootstrap SE {self.se:.3g}, Holm-adjusted p = "
                f"{self.p_adjusted:.2g}); at least one of their models (outcome regression, propensity "
                "score, strata) is misspecified, or positivity is weak")


def compare_estimates(estimates: Sequence[EstimateResult]) -> list[Comparison]:
    """Every pair of estimators of the same metric, contrast, segment and target whose
    bootstrap replicates are paired (same count: the same weights), with the bootstrap SE
    of their difference, a normal p-value and Holm's adjustment across all pairs."""
    groups: dict[tuple, list[EstimateResult]] = {}
    for e in estimates:
        groups.setdefault((e.metric, e.contrast, e.segment, e.target), []).append(e)
    raw: list[tuple] = []
    for (metric, contrast, segment, target), members in groups.items():
        for a, b in combinations(members, 2):
            ra, rb = np.asarray(a.replicates, float), np.asarray(b.replicates, float)
            if len(ra) < 2 or len(ra) != len(rb) or a.estimator == b.estimator:
                continue
            d = ra - rb
            d = d[np.isfinite(d)]
            if len(d) < 2:
                continue
            diff = float(a.estimate - b.estimate)
            se = float(np.std(d, ddof=1))
            p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else (0.0 if diff else 1.0)
            raw.append((metric, contrast, segment, target, a.estimator, b.estimator, diff, se, p, len(d)))
    if not raw:
        return []
    from statsmodels.stats.multitest import multipletests

    adjusted = multipletests([r[8] for r in raw], method="holm")[1]
    return [Comparison(*r[:9], p_adjusted=float(q), replicates=r[9]) for r, q in zip(raw, adjusted)]


def study_warnings(estimates: Sequence[EstimateResult], comparisons: Sequence[Comparison],
                   dropped: Mapping[str, int]) -> list[str]:
    """What the console summary and results.json must show: rows left out by reason, each
    estimator's own warnings (overlap, weak instruments...), and disagreeing estimators."""
    out = [f"{k:,} rows left out: {why}" for why, k in dropped.items() if k]
    seen: set[str] = set()
    for e in estimates:
        for w in e.diagnostics.get("warnings", ()) or ():
            text = f"{e.estimator} ({e.metric}, {e.segment}): {w}"
            if text not in seen:
                seen.add(text)
                out.append(text)
    by_target = {}
    for e in estimates:
        by_target.setdefault((e.metric, e.contrast, e.segment, e.target), {})[e.estimator] = e.estimate
    out += [c.warning(by_target[(c.metric, c.contrast, c.segment, c.target)]) for c in comparisons if c.disagree]
    return out
