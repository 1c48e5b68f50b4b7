"""Independent row-level numpy / statsmodels computations for the propensity estimators.

Written from the textbook formulas on row arrays (no moment expressions, no buckets), so
the moment-based estimators in causal_core can be checked against them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm


def logit_fit(df: pd.DataFrame, covariates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """statsmodels Logit: (coefficients, design matrix X with constant, fitted e)."""
    x = np.column_stack([np.ones(len(df))] + [df[c].to_numpy(float) for c in covariates])
    res = sm.Logit(df["d"].to_numpy(float), x).fit(method="newton", disp=0, tol=1e-14, maxiter=100)
    return np.asarray(res.params), x, np.asarray(res.predict(x))


def arm_weights(e: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w1, w0, dw1/de, dw0/de) written in e (the estimator writes them in eta)."""
    one = np.ones_like(e)
    if target == "ate":
        return 1 / e, 1 / (1 - e), -1 / e ** 2, 1 / (1 - e) ** 2
    if target == "att":
        return one, e / (1 - e), 0 * e, 1 / (1 - e) ** 2
    return (1 - e) / e, one, -1 / e ** 2, 0 * e


def hajek(df, covariates, target="ate", trim=None, clip=None, units=None):
    """Hajek IPW point estimate (statsmodels WLS of y on [1, d]) and its stacked sandwich SE
    (psi = (d k w1 (y - mu1), (1-d) k w0 (y - mu0), (d - e) x); Lunceford & Davidian 2004)."""
    d, y = df["d"].to_numpy(float), df["y"].to_numpy(float)
    b, x, e = logit_fit(df, covariates)
    keep = np.ones_like(e) if trim is None else ((e >= trim) & (e <= 1 - trim)).astype(float)
    free = np.ones_like(e)
    ec = e
    if clip is not None:
        free = ((e >= clip) & (e <= 1 - clip)).astype(float)
        ec = np.clip(e, clip, 1 - clip)
    w1, w0, dw1, dw0 = arm_weights(ec, target)
    wt = keep * (d * w1 + (1 - d) * w0)
    m = wt > 0
    est = sm.WLS(y[m], sm.add_constant(d[m]), weights=wt[m]).fit().params[1]
    mu1 = np.sum(d * keep * w1 * y) / np.sum(d * keep * w1)
    mu0 = np.sum((1 - d) * keep * w0 * y) / np.sum((1 - d) * keep * w0)
    psi = np.column_stack([d * keep * w1 * (y - mu1), (1 - d) * keep * w0 * (y - mu0), (d - e)[:, None] * x])
    de = (e * (1 - e) * free)[:, None] * x
    p = x.shape[1]
    g = np.zeros((p + 2, p + 2))
    g[0, 0] = -np.sum(d * keep * w1)
    g[1, 1] = -np.sum((1 - d) * keep * w0)
    g[0, 2:] = np.sum((d * keep * (y - mu1) * dw1)[:, None] * de, axis=0)
    g[1, 2:] = np.sum(((1 - d) * keep * (y - mu0) * dw0)[:, None] * de, axis=0)
    g[2:, 2:] = -(x * (e * (1 - e))[:, None]).T @ x
    meat = _meat(psi, units)
    gi = np.linalg.inv(g)
    v = gi @ meat @ gi.T
    a = np.r_[1.0, -1.0, np.zeros(p)]
    return float(est), float(np.sqrt(a @ v @ a)), dict(mu1=mu1, mu0=mu0, psi=psi, g=g, b=b)


def _meat(psi: np.ndarray, units) -> np.ndarray:
    if units is None:
        return psi.T @ psi
    s = pd.DataFrame(psi).groupby(np.asarray(units)).sum().to_numpy()
    return s.T @ s


def aipw(df, covariates, target="ate", units=None):
    """AIPW with statsmodels Logit and per-arm statsmodels OLS, and the variance of its
    estimated influence function (Glynn & Quinn 2010; Mercatanti & Li 2014 for the ATT)."""
    d, y = df["d"].to_numpy(float), df["y"].to_numpy(float)
    _, x, e = logit_fit(df, covariates)
    m = {a: sm.OLS(y[d == a], x[d == a]).fit().predict(x) for a in (0, 1)}
    if target == "ate":
        g = m[1] - m[0] + d * (y - m[1]) / e - (1 - d) * (y - m[0]) / (1 - e)
        h = np.ones_like(d)
    elif target == "att":
        g = d * (y - m[0]) - (1 - d) * e / (1 - e) * (y - m[0])
        h = d
    else:
        g = (1 - d) * (m[1] - y) + d * (1 - e) / e * (y - m[1])
        h = 1 - d
    tau = g.sum() / h.sum()
    psi = (g - tau * h) / h.mean()
    if units is not None:
        psi = pd.Series(psi).groupby(np.asarray(units)).sum().to_numpy()
    return float(tau), float(np.sqrt(np.sum(psi ** 2)) / len(d))
