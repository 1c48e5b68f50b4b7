"""Instrumental variables (``iv``): two-stage least squares from one pass of moments.

With treatment d, excluded instruments z and exogenous covariates w, X = (1, d, w) and
Z = (1, z, w); 2SLS is ``b = (X'P_Z X)^-1 X'P_Z y`` with ``X'P_Z X = X'Z (Z'Z)^-1 Z'X``,
all sub-blocks of the Gram matrix of ``(1, d, w, z, y)`` (Wooldridge 2010, *Econometric
Analysis of Cross Section and Panel Data*, §5.2). One binary instrument and no
covariates give the Wald estimator, the LATE for compliers under monotonicity (Imbens &
Angrist 1994); with covariates the effect is the linear IV estimand the plan states.

Standard errors (second pass, residuals ``e = y - X b`` with b as literals): HC1
``n/(n-k) H (sum e^2 z z') H'`` with ``H = (X'P_Z X)^-1 X'Z (Z'Z)^-1`` (White 1982), or
cluster-robust by unit; ``cov_type="nonrobust"`` gives ``s^2 (X'P_Z X)^-1``, what
statsmodels' IV2SLS reports. The first stage's partial F of the excluded instruments
(nonrobust, and HC1/cluster-robust Wald / r) is in the diagnostics, with a warning below
10 (Staiger & Stock 1997; Stock & Yogo 2005).

With an absorbed fixed effect (``ModelRoles.fixed_effects``) 2SLS runs on the within Gram of
``(1, d, w, z, y)`` (:mod:`causal_core.estimators.absorb`): one intercept per level in both
stages, the coefficients of 2SLS with G level dummies among the exogenous regressors; the
second pass reads the within columns by level code, and every small-sample factor and the
first-stage F count the G - 1 absorbed intercepts (a cluster-robust one not, when the fixed
effect is nested in the clusters).
"""

from __future__ import annotations

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.absorb import absorbed_k, check_within, within_pass
from causal_core.estimators.base import BootstrapOptions, ModelRoles, Estimator, register
from causal_core.estimators.inference import fit_replicates, check_options, coefficient_row, summarize
from causal_core.estimators.linear import (
    GramPass, batched_solve, check_regressors, cluster_factor, column_gram, hc1_factor, n_clusters, sandwich,
    score_meat,
)
from causal_core.estimators.moment_batch import unpack_symmetric
from causal_core.moments.expr import linear

COV_TYPES = ("HC1", "nonrobust")
WEAK_F = 10.0


class _Index:
    """Positions in the Gram of ``(1, d, w_1..w_p, z_1..z_r, y)``."""

    def __init__(self, design: ModelRoles) -> None:
        p, r = len(design.covariates), len(design.instruments)
        self.columns = [design.treatment, *design.covariates, *design.instruments, design.outcome]
        w = list(range(2, 2 + p))
        self.z_excluded = list(range(2 + p, 2 + p + r))
        self.x = np.array([0, 1, *w])
        self.z = np.array([0, *self.z_excluded, *w])
        self.excluded = np.arange(1, 1 + r)  # positions of excluded instruments within z
        self.y = 2 + p + r


def partial_f(g: np.ndarray, ix: _Index, absorbed: int = 0) -> float:
    """Nonrobust first-stage F of the excluded instruments: the F-test of ``b_z = 0`` in
    ``d ~ Z`` from the moments (Wooldridge 2010, §5.2.1); ``absorbed`` intercepts of a within
    Gram count as regressors."""
    n, kz, ex = g[0, 0], len(ix.z) + absorbed, ix.excluded
    zz_inv = np.linalg.inv(g[np.ix_(ix.z, ix.z)])
    fs = zz_inv @ g[ix.z, 1]
    sigma2 = (g[1, 1] - fs @ g[ix.z, 1]) / (n - kz) if n > kz else float("nan")
    b = fs[ex]
    return float(b @ np.linalg.solve(zz_inv[np.ix_(ex, ex)], b) / len(ex) / sigma2)


def two_sls(g: np.ndarray, ix: _Index) -> tuple[np.ndarray, np.ndarray]:
    """``(B, kx)`` 2SLS coefficients and ``(B, kz, kx)`` first-stage coefficients
    ``Pi = (Z'Z)^-1 Z'X`` from ``(B, m, m)`` Gram matrices."""
    zz = g[:, ix.z][:, :, ix.z]
    zx = g[:, ix.z][:, :, ix.x]
    pi = batched_solve(zz, zx)
    xhx = np.einsum("bki,bkj->bij", zx, pi)
    xhy = np.einsum("bki,bk->bi", pi, g[:, ix.z, ix.y])
    return batched_solve(xhx, xhy), pi


@register
class IV(Estimator):
    """2SLS / Wald; see the module docstring."""

    name = "iv"
    targets = frozenset({"ate", "late"})
    binary_treatment = False
    absorbs_fixed_effects = True

    def __init__(self, *, cov_type: str = "HC1", bootstrap: BootstrapOptions = BootstrapOptions(),
                 level: float | None = None, ci_method: str | None = None) -> None:
        self.cov_type = cov_type
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method

    def _check(self, design: ModelRoles) -> None:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        if self.cov_type not in COV_TYPES:
            raise EstimationError(f"iv: cov_type {self.cov_type!r} is unknown; expected one of {COV_TYPES}")
        if self.cov_type == "nonrobust" and design.clustered:
            raise EstimationError("iv: cov_type='nonrobust' cannot be used with a clustered (unit id) design")
        if not design.instruments:
            raise EstimationError("iv: the design names no instruments")
        overlap = set(design.instruments) & ({design.treatment, design.outcome} | set(design.covariates))
        if overlap:
            raise EstimationError(f"iv: instruments {sorted(map(design.label, overlap))} are also the treatment, "
                                  "outcome or a covariate")

    def fit(self, engine, design: ModelRoles) -> IV:
        self._check(design)
        ix = _Index(design)
        gp = column_gram(engine, ix.columns)
        lab = design.label
        x_names = ["const", lab(design.treatment), *map(lab, design.covariates)]
        z_names = ["const", *map(lab, design.instruments), *map(lab, design.covariates)]
        roles = ({x_names[1]: "treatment"}, {z: "instrument" for z in z_names[1:1 + len(design.instruments)]})
        self.within_ = None
        if design.fixed_effects:
            gp = self._absorb(engine, design, gp, ix, (x_names, z_names), roles)
        g = gp.gram()
        check_regressors(g[np.ix_(ix.x, ix.x)], x_names, role=roles[0])
        check_regressors(g[np.ix_(ix.z, ix.z)], z_names, role=roles[1])

        f_plain = partial_f(g, ix, self._absorbed())
        if not (np.isfinite(f_plain) and f_plain > 1e-12):
            raise EstimationError(f"iv: instruments {[lab(z) for z in design.instruments]} do not predict the "
                                  f"treatment {lab(design.treatment)!r} beyond the covariates (first-stage F = 0)")

        def statistic(totals: np.ndarray) -> np.ndarray:
            return two_sls(unpack_symmetric(totals, len(gp.terms)), ix)[0][:, 1]

        beta, pi = two_sls(g[None], ix)
        diagnostics, se, m_vv = self._analytic(engine, design, gp, ix, g, beta[0], pi[0])
        diagnostics.update(self._first_stage(engine, design, ix, g, pi[0][:, 1], f_plain, m_vv))
        reps = fit_replicates(self, engine, gp.exprs, gp.moments, statistic, self.bootstrap)
        diagnostics["recentred"] = bool(gp.shift)
        if self.within_ is not None:
            diagnostics["fixed_effects"] = {"variable": self.within_.label, "levels": self.within_.groups,
                                            "absorbed": self.within_.absorbed, "nested_in_buckets": self.within_.nested}
        self.result_ = summarize(self.name, design, estimate=float(beta[0, 1]), analytic_se=se,
                                 n=int(round(g[0, 0])), replicates=reps, bootstrap=self.bootstrap,
                                 ci_method=self.ci_method, level=self.level, diagnostics=diagnostics)
        return self

    def _absorb(self, engine, design: ModelRoles, gp: GramPass, ix: _Index, names: tuple, roles: tuple) -> GramPass:
        """The within form of pass 1: per-bucket within Grams, and row terms less their level
        means (for the second pass and the exact row-level bootstrap)."""
        m = len(gp.terms)
        self.within_ = within = within_pass(engine, gp.terms, design, unpack_symmetric(gp.moments, m), "iv: ")
        raw = gp.gram()
        for cols, labels, role in zip((ix.x, ix.z), names, roles):
            cut = np.ix_(cols, cols)
            check_within(within.total()[cut], raw[cut], labels, within.label, "iv: ", role=role)
        terms = tuple(within.within_terms(gp.terms))
        return GramPass(terms, tuple(within.within_gram_exprs(gp.terms, range(m))), within.flat(range(m)),
                        gp.shift)

    def _absorbed(self, clustered: bool = False) -> int:
        """Absorbed intercepts a degrees-of-freedom count adds (module docstring)."""
        return 0 if self.within_ is None else absorbed_k(self.within_, 0, clustered=clustered)

    def _factor(self, engine, n: float, k: int, clustered: bool) -> float:
        """HC1's or the cluster-robust small-sample factor, absorbed intercepts counted."""
        if clustered:
            return cluster_factor(n, k + self._absorbed(True), n_clusters(engine))
        return hc1_factor(n, k + self._absorbed())

    def _analytic(self, engine, design: ModelRoles, gp, ix: _Index, g: np.ndarray, beta: np.ndarray,
                  pi: np.ndarray) -> tuple[dict, float, np.ndarray]:
        """Second pass: the structural and first-stage score meats in one; the effect's
        SE, and the first-stage meat for the robust F."""
        n, kx, kz = g[0, 0], len(ix.x), len(ix.z)
        x_terms = [gp.terms[i] for i in ix.x]
        z_terms = [gp.terms[i] for i in ix.z]
        fs = pi[:, 1]  # first stage: d on Z
        e = gp.terms[ix.y] - linear(beta, x_terms)
        v = gp.terms[1] - linear(fs, z_terms)
        meat = score_meat(engine, [z * e for z in z_terms] + [z * v for z in z_terms], clustered=design.clustered)
        m_ee, m_vv = meat[:kz, :kz], meat[kz:, kz:]
        xhx_inv = np.linalg.inv(g[np.ix_(ix.x, ix.z)] @ pi)
        if self.cov_type == "nonrobust":
            v_beta = m_ee[0, 0] / (n - kx - self._absorbed()) * xhx_inv
        else:
            h = xhx_inv @ pi.T
            v_beta = self._factor(engine, n, kx, design.clustered) * sandwich(h, m_ee)
        diagnostics = {"n": int(round(n)), "cov_type": "cluster" if design.clustered else self.cov_type,
                       "n_instruments": len(design.instruments),
                       "wald_ratio": len(design.instruments) == 1 and not design.covariates,
                       "treatment_coef": coefficient_row(beta[1], float(np.sqrt(v_beta[1, 1])))}
        if design.clustered:
            diagnostics["n_clusters"] = n_clusters(engine)
        return diagnostics, float(np.sqrt(v_beta[1, 1])), m_vv

    def _first_stage(self, engine, design: ModelRoles, ix: _Index, g: np.ndarray, fs: np.ndarray, f_plain: float,
                     m_vv: np.ndarray) -> dict:
        """The first-stage F: nonrobust (:func:`partial_f`) and the robust Wald statistic
        over r (Wooldridge 2010, §4.2.3), with a weak-instrument warning."""
        n, kz, r, ex = g[0, 0], len(ix.z), len(ix.excluded), ix.excluded
        b = fs[ex]
        zz_inv = np.linalg.inv(g[np.ix_(ix.z, ix.z)])
        v_fs = self._factor(engine, n, kz, design.clustered) * sandwich(zz_inv, m_vv)
        f_robust = float(b @ np.linalg.solve(v_fs[np.ix_(ex, ex)], b) / r)
        out = {"first_stage_f": f_plain, "first_stage_f_robust": f_robust,
               "first_stage_coefs": {design.label(z): float(c) for z, c in zip(design.instruments, b)}}
        f_used = f_plain if self.cov_type == "nonrobust" else min(f_plain, f_robust)
        if f_used < WEAK_F:
            out["warnings"] = [f"weak instruments: first-stage F = {f_used:.3g} < {WEAK_F:g} "
                               "(Stock & Yogo 2005); the 2SLS estimate and its interval are unreliable"]
        return out
