"""Plug-in estimation of an identified effect on discrete variables, from cell counts.

The identification formula — adjustment, front-door, or the general ID expression
(Pearl 2009, thm 3.3.2 and 3.3.4; Shpitser & Pearl 2006) — is a function of the
observed joint distribution. One pass counts the rows in every cell of the needed
variables (each cell an indicator product, per bucket); the empirical joint ``p = N / n``
goes into ``design.expression.evaluate`` and gives ``P(y | do(x))``, hence the contrast

    E[Y | do(x1)] - E[Y | do(x0)]      (or P(Y = v | do(x1)) - P(Y = v | do(x0)))

Levels: ``levels`` (a mapping variable -> values, which the Spark adapter can fill from
the table), else ``engine.distinct_values(column, limit)`` when the engine offers it,
else one counting pass over the integer codes ``0 .. max_levels - 1`` (the prepared frame
is numeric; other codes need ``levels``). A string variable reaches the engine coded as
0, 1, ... (the Spark preparation and the pandas engine both code it), and
``engine.level_labels(column)`` gives the value behind each code: all its codes are its
levels, treatment values and ``levels`` are matched by their text, and the diagnostics
and the joint name the values, not the codes.

Uncertainty: the bucket bootstrap reweights the per-bucket cell counts and re-evaluates
the formula (milliseconds each; 200 replicates by default). The analytic SE is the
multinomial delta method (Agresti 2013, sec. 16.1): with ``d_c`` the derivative of the
contrast along ``e_c - p`` (a finite difference that stays on the simplex), the variance
is ``(sum_c p_c d_c^2 - (sum_c p_c d_c)^2) / n`` — per unit when clustered.
"""

from __future__ import annotations

import itertools
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from causal_core.errors import EstimationError
from causal_core.estimators.base import BootstrapOptions, ModelRoles, Estimator, register
from causal_core.estimators.inference import fit_replicates, check_options, summarize
from causal_core.estimators.linear import score_meat
from causal_core.estimators.moment_batch import MomentBatch
from causal_core.formulas.formula import Formula
from causal_core.formulas.evaluate import evaluate_batch, joint_tensor
from causal_core.moments.expr import Expr, col, lit

FD_STEP = 1e-7


def needed_variables(design: ModelRoles) -> tuple[str, ...]:
    """Frame columns of the joint: ``design.variables``; else the variables the expression
    mentions (mapped back from user names through ``design.labels``); else treatment,
    outcome, covariates and mediators."""
    expr = getattr(design.expression, "expression", design.expression)  # an Estimand or its Formula
    if design.variables:
        cols = design.variables
    elif hasattr(expr, "mentioned_variables"):
        column_of = {label: column for column, label in design.labels}
        cols = (design.treatment, design.outcome, *sorted(column_of.get(v, v) for v in expr.mentioned_variables()))
    else:
        cols = (design.treatment, design.outcome, *design.covariates, *design.mediators)
    return tuple(dict.fromkeys(cols))


def level_labels(engine, variables: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The values behind the integer codes of the variables the engine coded (string
    columns: code k stands for ``labels[k]``); empty for engines that code nothing."""
    if not hasattr(engine, "level_labels"):
        return {}
    found = {v: engine.level_labels(v) for v in variables}
    return {v: tuple(labels) for v, labels in found.items() if labels is not None}


def _coded_levels(design: ModelRoles, variable: str, labels: tuple[str, ...], given: Sequence | None,
                  max_levels: int) -> tuple[float, ...]:
    """The codes of a coded variable: all of them, or those of the ``given`` values."""
    if len(labels) > max_levels:
        raise EstimationError(f"id_plugin: variable {design.label(variable)!r} has {len(labels)} levels, more than "
                              f"max_levels={max_levels}; coarsen it or raise max_levels")
    if given is None:
        return tuple(float(k) for k in range(len(labels)))
    code = {text: float(k) for k, text in enumerate(labels)}
    unknown = [g for g in given if str(g) not in code]
    if unknown:
        raise EstimationError(f"id_plugin: levels {unknown} of {design.label(variable)!r} do not occur in the data "
                              f"(its values: {list(labels)})")
    return tuple(sorted(code[str(g)] for g in given))


def resolve_levels(engine, design: ModelRoles, variables: Sequence[str], given: Mapping[str, Sequence] | None,
                   max_levels: int, labels: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, tuple]:
    """Levels per variable: codes of a coded variable (``labels``), given, from the engine,
    or discovered as integer codes."""
    given = dict(given or {})
    labels = dict(labels or {})
    out: dict[str, tuple] = {}
    probe = []
    for v in variables:
        lv = given.get(v, given.get(design.label(v)))
        if v in labels:
            out[v] = _coded_levels(design, v, labels[v], lv, max_levels)
            continue
        if lv is None and hasattr(engine, "distinct_values"):
            lv = engine.distinct_values(v, max_levels)
        if lv is None:
            probe.append(v)
        else:
            out[v] = tuple(sorted(lv))
    if probe:
        out.update(_probe_integer_levels(engine, design, probe, max_levels))
    return {v: out[v] for v in variables}


def _probe_integer_levels(engine, design: ModelRoles, variables: Sequence[str], max_levels: int) -> dict[str, tuple]:
    batch = MomentBatch()
    batch.add("n", lit(1.0))
    for v in variables:
        batch.add(v, [col(v).eq(float(k)) for k in range(max_levels)])
    sums = batch.run(engine)
    n, out = sums.total("n"), {}
    for v in variables:
        counts = np.atleast_1d(sums.total_vector(v))
        if counts.sum() != n:
            raise EstimationError(
                f"id_plugin: variable {design.label(v)!r} has {int(n - counts.sum())} rows outside the integer "
                f"codes 0..{max_levels - 1}; pass its values in the 'levels' option")
        out[v] = tuple(float(k) for k in np.flatnonzero(counts))
    return out


def cell_exprs(variables: Sequence[str], levels: Mapping[str, tuple]) -> tuple[list[tuple], list[Expr]]:
    """Every combination of levels and its indicator product ``prod_v 1[v == level]``."""
    cells = list(itertools.product(*(levels[v] for v in variables)))
    exprs = []
    for cell in cells:
        e: Expr = col(variables[0]).eq(float(cell[0]))
        for v, value in zip(variables[1:], cell[1:]):
            e = e * col(v).eq(float(value))
        exprs.append(e)
    return cells, exprs


class Contrast:
    """The map from cell probabilities to E[Y | do(x1)] - E[Y | do(x0)] (or probabilities).

    ``labels`` (variable -> values behind its codes) turns the treatment values into
    codes and names the codes in :meth:`show` and :meth:`with_labels`."""

    def __init__(self, design: ModelRoles, variables: Sequence[str], cells: Sequence[tuple],
                 outcome_level: float | None, labels: Mapping[str, tuple[str, ...]] | None = None) -> None:
        self.expression = design.expression
        self.names = [design.label(v) for v in variables]
        self.frame = pd.DataFrame(cells, columns=self.names)
        self.labels = {design.label(v): tuple(texts) for v, texts in (labels or {}).items() if v in variables}
        self.x, self.y = design.label(design.treatment), design.label(design.outcome)
        self.x1, self.x0 = self._code(design.treated_value), self._code(design.control_value)
        self.outcome_level = outcome_level
        for value, given in ((self.x1, design.treated_value), (self.x0, design.control_value)):
            if value not in set(self.frame[self.x]):
                shown = f"{given:g}" if isinstance(given, numbers.Real) else repr(given)
                raise EstimationError(f"id_plugin: treatment value {shown} of {self.x!r} does not occur in the data")

    def _code(self, value: Any) -> float:
        """A treatment value as the frame holds it: its code when the treatment is coded
        (NaN for a value that does not occur), else its number."""
        texts = self.labels.get(self.x)
        if texts is None:
            return float(value)
        return float(texts.index(str(value))) if str(value) in texts else float("nan")

    def show(self, name: str, value: float) -> str:
        """A value of variable ``name`` as the user knows it: the text behind a code, or the number."""
        texts = self.labels.get(name)
        return texts[int(value)] if texts is not None else f"{value:g}"

    def with_labels(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` (columns named like the joint's) with codes replaced by their values."""
        return frame.assign(**{name: [texts[int(c)] for c in frame[name]]
                               for name, texts in self.labels.items() if name in frame.columns})

    def do_means(self, p: np.ndarray) -> tuple[float, float]:
        """(E or P)[Y | do(x1)] and [Y | do(x0)] on the joint with cell probabilities p."""
        joint = self.frame.assign(p=p / p.sum())
        out = self.expression.evaluate(joint)
        missing = [c for c in (self.x, self.y) if c not in out.columns]
        if missing:
            raise EstimationError(f"id_plugin: the estimand's evaluation has no column(s) {missing}")
        yv = out[self.y].to_numpy(dtype=float)
        value = yv if self.outcome_level is None else (yv == self.outcome_level).astype(float)
        means = []
        for x in (self.x1, self.x0):
            at = out[self.x].to_numpy(dtype=float) == x
            means.append(float(np.sum(value[at] * out["p"].to_numpy()[at])))
        return means[0], means[1]

    def __call__(self, p: np.ndarray) -> float:
        m1, m0 = self.do_means(p)
        return m1 - m0

    def _batch_layout(self) -> tuple:
        """Where each cell lands in the joint tensor over the expression's variables, and
        the contrast weights on the flattened free cells (computed once)."""
        if not hasattr(self, "_layout"):
            expr = self.expression if isinstance(self.expression, Formula) else \
                getattr(self.expression, "expression", None)
            if not isinstance(expr, Formula) or not {self.x, self.y} <= set(expr.free_variables()):
                self._layout = None  # (an estimand that broadcasts a dropped treatment: row by row)
                return self._layout
            names = tuple(sorted(expr.mentioned_variables()))
            _, levels = joint_tensor(self.frame.assign(p=1.0 / len(self.frame)), names)
            codes = [levels[n].get_indexer(self.frame[n]) for n in names]
            shape = tuple(len(levels[n]) for n in names)
            flat = np.ravel_multi_index(tuple(codes), shape) if names else np.zeros(len(self.frame), dtype=np.int64)
            free = sorted(expr.free_variables())
            grid = pd.MultiIndex.from_product([levels[v] for v in free], names=free).to_frame(index=False)
            yv = grid[self.y].to_numpy(dtype=float)
            value = yv if self.outcome_level is None else (yv == self.outcome_level).astype(float)
            xv = grid[self.x].to_numpy(dtype=float)
            weights = np.stack([value * (xv == x) for x in (self.x1, self.x0)], axis=1)  # (free cells, 2)
            self._layout = (expr, names, levels, shape, flat, weights)
        return self._layout

    def batch(self, probs: np.ndarray) -> np.ndarray:
        """The contrast for each row of ``probs`` (B, cells) — cell counts or probabilities —
        in one batched evaluation (:func:`evaluate_batch`); NaN for an all-zero row.
        Equal to calling the contrast row by row (tested to 1e-12)."""
        probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
        total = probs.sum(axis=1)
        ok = total > 0
        layout = self._batch_layout()
        if layout is None:
            return np.array([self(row) if good else np.nan for row, good in zip(probs, ok)])
        expr, names, levels, shape, flat, weights = layout
        tensors = np.zeros((probs.shape[0], int(np.prod(shape))))
        np.add.at(tensors.T, flat, (probs / np.where(ok, total, 1.0)[:, None]).T)  # zero rows stay zero
        values = evaluate_batch(expr, tensors.reshape((probs.shape[0], *shape)), names, levels)
        means = values.reshape(probs.shape[0], -1) @ weights
        out = means[:, 0] - means[:, 1]
        out[~ok] = np.nan
        return out

    def simplex_gradient(self, p: np.ndarray) -> np.ndarray:
        """d_c = d/dh f((1 - h) p + h e_c) at h = 0 (forward differences); 0 where p_c = 0."""
        base, grad = self(p), np.zeros(len(p))
        support = np.flatnonzero(p > 0)
        moved = np.tile((1.0 - FD_STEP) * p, (len(support), 1))
        moved[np.arange(len(support)), support] += FD_STEP
        grad[support] = (self.batch(moved) - base) / FD_STEP
        return grad


@register
class IdPlugin(Estimator):
    """Plug-in estimate of an identification formula on discrete variables (module docstring).

    Options: ``levels`` (variable -> numeric codes, or the values of a string variable),
    ``outcome_level`` (report P(Y = v | do(x)) contrasts instead of means), ``max_levels``
    (most levels a variable may have; the bound of level discovery), ``max_cells`` (the
    cell count is the product of the level counts; each cell is a moment column).
    """

    name = "id_plugin"
    targets = frozenset({"ate"})
    binary_treatment = False
    uses_raw_variables = True

    def __init__(self, *, levels: Mapping[str, Sequence[Any]] | None = None, outcome_level: float | None = None,
                 max_levels: int = 50, max_cells: int = 4096,
                 bootstrap: BootstrapOptions = BootstrapOptions(replicates=200), level: float | None = None,
                 ci_method: str | None = None) -> None:
        self.levels = levels
        self.outcome_level = outcome_level
        self.max_levels = max_levels
        self.max_cells = max_cells
        self.bootstrap = bootstrap
        self.level = level
        self.ci_method = ci_method

    def fit(self, engine, design: ModelRoles) -> IdPlugin:
        self.check_design(design)
        check_options(self.bootstrap, self.ci_method, self.level)
        if design.expression is None or not hasattr(design.expression, "evaluate"):
            raise EstimationError("id_plugin needs the estimand expression (design.expression) to evaluate")
        variables = needed_variables(design)
        labels = level_labels(engine, variables)
        levels = resolve_levels(engine, design, variables, self.levels, self.max_levels, labels)
        n_cells = int(np.prod([len(levels[v]) for v in variables]))
        if n_cells > self.max_cells:
            sizes = ", ".join(f"{design.label(v)}: {len(levels[v])}" for v in variables)
            raise EstimationError(f"id_plugin: {n_cells} cells ({sizes} levels) exceed max_cells={self.max_cells}; "
                                  "coarsen the variables")
        cells, exprs = cell_exprs(variables, levels)
        batch = MomentBatch()
        batch.add("cells", exprs)
        batch.add("n", lit(1.0))
        sums = batch.run(engine)
        counts, n = np.atleast_1d(sums.total_vector("cells")), sums.total("n")
        if counts.sum() != n:
            raise EstimationError(f"id_plugin: {int(n - counts.sum())} of {int(n)} rows have values outside the "
                                  f"given levels of {[design.label(v) for v in variables]}")
        contrast = Contrast(design, variables, cells, self.outcome_level, labels)
        p = counts / n
        estimate = contrast(p)
        grad = contrast.simplex_gradient(p)
        se = self._delta_se(engine, design, exprs, p, grad, n)
        reps = fit_replicates(self, engine, exprs, sums.buckets("cells"),
                                    contrast.batch, self.bootstrap)
        m1, m0 = contrast.do_means(p)
        per_bucket = sums.buckets("n")[:, 0]
        x1, x0 = contrast.show(contrast.x, contrast.x1), contrast.show(contrast.x, contrast.x0)
        diag = {
            "warnings": bucket_warnings(per_bucket),
            "do_means": {f"{contrast.x}={x1}": m1, f"{contrast.x}={x0}": m0},
            "levels": {design.label(v): [labels[v][int(c)] for c in levels[v]] if v in labels else list(levels[v])
                       for v in variables},
            "n_cells": n_cells, "empty_cells": int(np.sum(counts == 0)),
            "quantity": "mean" if self.outcome_level is None else f"P({contrast.y}={self.outcome_level:g})",
        }
        self.levels_, self.joint_ = levels, contrast.with_labels(contrast.frame.assign(p=p))
        self.result_ = summarize(self.name, design, estimate=estimate, analytic_se=se, n=int(n), replicates=reps,
                                 bootstrap=self.bootstrap, ci_method=self.ci_method, level=self.level,
                                 diagnostics=diag,
                                 contrast=f"do({contrast.x}={x1}) - do({contrast.x}={x0})")
        return self

    @staticmethod
    def _delta_se(engine, design: ModelRoles, exprs: Sequence[Expr], p: np.ndarray, grad: np.ndarray, n: float) -> float:
        centred = grad - float(p @ grad)
        if design.clustered:
            psi = balanced_sum([lit(float(centred[c] / n)) * exprs[c] for c in np.flatnonzero(p > 0)])
            return float(np.sqrt(max(score_meat(engine, [psi], clustered=True)[0, 0], 0.0)))
        return float(np.sqrt(max(float(p @ centred ** 2), 0.0) / n))


def bucket_warnings(rows_per_bucket: np.ndarray) -> list[str]:
    """Warn when rows crowd into few buckets: without a unit id the buckets hash the row's
    values, so identical discrete rows share a bucket and the bucket bootstrap resamples
    whole cells — its intervals are then far too wide."""
    n, k = float(rows_per_bucket.sum()), len(rows_per_bucket)
    if rows_per_bucket.max() > 5.0 * n / k + 10.0:
        msg = (f"{int(np.sum(rows_per_bucket > 0))} of {k} buckets hold all {int(n)} rows (largest "
               f"{int(rows_per_bucket.max())}): identical rows share a bucket; give the data a unit id so the "
               "bucket bootstrap resamples units, or use the analytic (delta-method) interval")
        warnings.warn(msg, UserWarning, stacklevel=3)
        return [msg]
    return []


def balanced_sum(terms: Sequence[Expr]) -> Expr:
    """A sum as a balanced tree, so a long sum stays shallow for the engines' compilers."""
    terms = list(terms) or [lit(0.0)]
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]
