"""Simulated data sets with known effects, for tests and the coverage bench.

Each simulator takes a row count and a numpy Generator and returns a :class:`Simulated`:
the frame, the :class:`~causal_core.estimators.base.ModelRoles` fields that describe it, and
the true effect for each target. Truths are population quantities (computed by
Gauss-Hermite quadrature where they involve the selection model), so interval coverage
is measured against the estimand, not the sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from causal_core.estimators.base import ModelRoles


@dataclass(frozen=True)
class Simulated:
    frame: pd.DataFrame
    design: dict[str, Any]
    truth: dict[str, float] = field(default_factory=dict)

    def make_design(self, target: str = "ate", **changes: Any) -> ModelRoles:
        return ModelRoles(**{**self.design, "target": target, **changes})


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


# Confounded binary treatment with an effect that varies with the confounder x1:
# tau(x) = TAU0 + TAU1 * x1, selection P(d=1 | x) = sigmoid(PS1 * x1 + PS2 * x2).
TAU0, TAU1, PS1, PS2 = 2.0, 1.5, 0.8, -0.4


def _selected_mean_x1(treated: bool) -> float:
    """E[x1 | d] for x1, x2 iid N(0, 1) under the logistic selection (quadrature)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    w = weights / weights.sum()
    x1, x2 = np.meshgrid(nodes, nodes, indexing="ij")
    p = _sigmoid(PS1 * x1 + PS2 * x2)
    p = p if treated else 1.0 - p
    ww = np.outer(w, w)
    return float((ww * p * x1).sum() / (ww * p).sum())


def confounded_binary(n: int, rng: np.random.Generator) -> Simulated:
    """x1, x2 ~ N(0,1); d ~ Bernoulli(sigmoid(0.8 x1 - 0.4 x2));
    y = 1 + x1 + 0.5 x2 + d (2 + 1.5 x1) + (1 + 0.5|x1|) e. ATE = 2, and ATT > ATE > ATC
    because the treated have larger x1; the naive difference in means is biased upward."""
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    d = (rng.uniform(size=n) < _sigmoid(PS1 * x1 + PS2 * x2)).astype(float)
    y = 1.0 + x1 + 0.5 * x2 + d * (TAU0 + TAU1 * x1) + (1.0 + 0.5 * np.abs(x1)) * rng.normal(size=n)
    truth = {"ate": TAU0, "att": TAU0 + TAU1 * _selected_mean_x1(True),
             "atc": TAU0 + TAU1 * _selected_mean_x1(False)}
    frame = pd.DataFrame({"d": d, "y": y, "x1": x1, "x2": x2})
    return Simulated(frame, {"treatment": "d", "outcome": "y", "covariates": ("x1", "x2")}, truth)


IV_EFFECT = 1.5


def linear_iv(n: int, rng: np.random.Generator) -> Simulated:
    """An unobserved u confounds d and y; z1 (continuous) and z2 (binary) move d only.
    d = 0.6 z1 + 0.5 z2 + 0.5 w + u + v; y = 1 + 1.5 d + 0.7 w - 2 u + (1 + 0.5|w|) e."""
    z1, z2, w, u = rng.normal(size=n), rng.binomial(1, 0.5, n).astype(float), rng.normal(size=n), rng.normal(size=n)
    d = 0.6 * z1 + 0.5 * z2 + 0.5 * w + u + rng.normal(size=n)
    y = 1.0 + IV_EFFECT * d + 0.7 * w - 2.0 * u + (1.0 + 0.5 * np.abs(w)) * rng.normal(size=n)
    frame = pd.DataFrame({"d": d, "y": y, "w": w, "z1": z1, "z2": z2})
    design = {"treatment": "d", "outcome": "y", "covariates": ("w",), "instruments": ("z1", "z2"),
              "strategy": "iv"}
    return Simulated(frame, design, {"ate": IV_EFFECT, "late": IV_EFFECT})


FD_A, FD_B = 0.8, 1.2


def linear_frontdoor(n: int, rng: np.random.Generator) -> Simulated:
    """u confounds d and y; d affects y only through m.
    d = u + e1; m = 0.8 d + (1 + 0.3|d|) e2; y = 1.2 m + 1.5 u + e3. Effect 0.96."""
    u = rng.normal(size=n)
    d = u + rng.normal(size=n)
    m = FD_A * d + (1.0 + 0.3 * np.abs(d)) * rng.normal(size=n)
    y = FD_B * m + 1.5 * u + rng.normal(size=n)
    frame = pd.DataFrame({"d": d, "y": y, "m": m})
    design = {"treatment": "d", "outcome": "y", "mediators": ("m",), "strategy": "frontdoor"}
    return Simulated(frame, design, {"ate": FD_A * FD_B})
