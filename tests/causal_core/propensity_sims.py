"""Simulated confounded data with heterogeneous effects, and exact ATE / ATT / ATC.

x1 ~ N(0, 1), x2 ~ Bernoulli(0.5); P(d = 1 | x) = sigma(a0 + a1 x1 + a2 x2) (a correct
logistic model); y0 = 1 + x1 + 0.5 x2 + noise; tau(x) = 1 + t1 x1 + t2 x2 (linear, so
per-arm linear outcome models are correct). The targets differ because the effect grows
with x1, which also drives treatment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import integrate, stats

ALPHA = (-0.3, 0.8, 0.5)
TAU = (1.0, 1.0, 0.5)


def simulate(n: int, seed: int, alpha=ALPHA, tau=TAU, noise: float = 1.0, y0_square: float = 0.0,
             e_square: float = 0.0) -> pd.DataFrame:
    """``y0_square`` / ``e_square`` add x1^2 terms to the outcome / the propensity logit,
    which a model linear in (x1, x2) then misspecifies."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.5, n).astype(float)
    e = 1.0 / (1.0 + np.exp(-(alpha[0] + alpha[1] * x1 + alpha[2] * x2 + e_square * x1 ** 2)))
    d = rng.binomial(1, e).astype(float)
    y0 = 1.0 + x1 + 0.5 * x2 + y0_square * x1 ** 2 + noise * rng.normal(size=n)
    y = y0 + d * (tau[0] + tau[1] * x1 + tau[2] * x2)
    return pd.DataFrame({"d": d, "y": y, "x1": x1, "x2": x2, "__unit": np.arange(n)})


def truths(alpha=ALPHA, tau=TAU, trim: float | None = None, e_square: float = 0.0) -> dict[str, float]:
    """Exact ATE, ATT, ATC by quadrature over x1 for each x2; with ``trim`` a, the same
    effects in the overlap population a <= e(x) <= 1 - a (Crump et al. 2009; not combined
    with ``e_square``)."""
    def limits(x2):
        if trim is None:
            return -12.0, 12.0
        lo = (np.log(trim / (1 - trim)) - alpha[0] - alpha[2] * x2) / alpha[1]
        return lo, (-np.log(trim / (1 - trim)) - alpha[0] - alpha[2] * x2) / alpha[1]

    def moment(f, arm):
        total = 0.0
        for x2 in (0.0, 1.0):
            def g(x1):
                e = 1.0 / (1.0 + np.exp(-(alpha[0] + alpha[1] * x1 + alpha[2] * x2 + e_square * x1 ** 2)))
                pr = e if arm == 1 else (1.0 - e) if arm == 0 else 1.0
                return 0.5 * stats.norm.pdf(x1) * pr * f(x1, x2)
            total += integrate.quad(g, *limits(x2), epsabs=1e-13, epsrel=1e-12)[0]
        return total

    def cate(x1, x2):
        return tau[0] + tau[1] * x1 + tau[2] * x2

    one = lambda x1, x2: 1.0  # noqa: E731
    out = {"ate": moment(cate, None) / moment(one, None)}
    out["att"] = moment(cate, 1) / moment(one, 1)
    out["atc"] = moment(cate, 0) / moment(one, 0)
    return out


def naive(df: pd.DataFrame) -> float:
    return float(df.y[df.d == 1].mean() - df.y[df.d == 0].mean())
