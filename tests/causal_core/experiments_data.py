"""Simulated users for the experiment-statistics tests."""

import numpy as np


def units(rng, n, lift=0.0):
    """Users with sessions x, orders y (depending on x), and pre-period values z (orders)
    and w (sessions), correlated with y and x as pre-period metrics are."""
    w = rng.poisson(3.0, n) + 1.0
    z = rng.gamma(2.0, 1.0, n) * w / 3
    x = np.maximum(1.0, w + rng.poisson(1.0, n) - 1)
    y = 0.6 * z * x / w + rng.gamma(1.5, 0.5, n) * (1 + lift)
    return {"y": y, "x": x, "z": z, "w": w}


def two_arms(seed=7):
    """Control (2,000 users) and treatment (2,100 users, a 5 % lift on the noise part)."""
    rng = np.random.default_rng(seed)
    return units(rng, 2000), units(rng, 2100, lift=0.05)
