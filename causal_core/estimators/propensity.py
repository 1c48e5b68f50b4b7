"""Logistic propensity model fitted by distributed Newton-Raphson (IRLS) on moments.

Each Newton iteration is ONE ``engine.totals`` pass computing the score
``sum (d - sigma(x'b)) x`` and the information ``sum sigma(1 - sigma) x x'`` at the
current ``b`` (which enters the expressions as literals through :func:`linear`); the
driver solves the p x p system (McCullagh & Nelder 1989, sec. 4.4; Agresti 2013, sec.
5.4). Newton steps need totals only, never per-bucket sums. An estimator whose bootstrap
refits the propensity adds :meth:`LogisticFit.score_exprs` (score and information at the
fitted ``coef``) to its own per-bucket pass and refits every replicate by a one-step
Newton update ``b*_r = b + H_r^{-1} g_r``, ``H_r = sum_k w_rk H_k``, ``g_r = sum_k w_rk g_k``
(the one-step estimator, Lehmann & Casella 1998, sec. 6.4; used for the weighted
bootstrap of M-estimators by Hu & Kalbfleisch 2000), at microseconds per replicate;
``ipw`` uses the influence function instead.

Before any Newton step the first pass's per-arm Gram matrices are checked for covariate
levels with rows in one arm only (:func:`~causal_core.estimators.linear.support_gaps`):
the logistic MLE does not exist there, and the error names the level rather than the
separation it causes. On request (``overlap=True``) the fit also reports the overlap of
the arms — per arm the range of the fitted linear predictor and the rows beyond the
propensity bounds 0.05 / 0.95 and 0.1 / 0.9 (:class:`ArmOverlap`) — summed on the last
Newton pass when that pass can be foreseen, so it usually costs no pass of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from causal_core.errors import EstimationError
from causal_core.estimators.discriminant import discriminant
from causal_core.estimators.linear import (
    ARM_LEVELS, arm_gram_sums, arm_key, batched_solve, check_regressors, positivity_message, support_gaps,
)
from causal_core.estimators.moment_batch import BucketMoments, MomentBatch, gram_exprs, times, unpack_symmetric
from causal_core.estimators.score_quantiles import ARMS, ArmOverlap, overlap_batch
from causal_core.moments.expr import Expr, absolute, col, exp, linear, lit, log, sigmoid

INTERCEPT = "intercept"
# |x'b| beyond this means a fitted propensity within 1e-11 of 0 or 1: (quasi-)separation.
SEPARATION_ETA = 25.0


@dataclass(frozen=True, eq=False)
class LogisticFit:
    """A fitted logistic propensity model ``P(d = 1 | x) = sigma(x'coef)``.

    ``covariates`` are frame columns, ``names`` their labels (``intercept`` first).
    ``hessian`` is the information ``sum e (1 - e) x x'`` at ``eval_coef``, the last
    Newton point (within the tolerance of ``coef``). ``first`` holds the per-arm
    (control, treated) Gram matrices of ``(1, x[, y])`` from the first, coefficient-free
    pass, per bucket ``(K, 2, q, q)`` when the fit was asked for them
    (``first_by_bucket``), else summed ``(1, 2, q, q)``; :meth:`arm_gram` reads them.
    ``overlap`` (when the fit was asked for it) is the arms' overlap in the fitted
    propensity, evaluated at ``eval_coef``.
    """

    treatment: str
    covariates: tuple[str, ...]
    names: tuple[str, ...]
    coef: np.ndarray
    eval_coef: np.ndarray
    hessian: np.ndarray
    n: int
    n_treated: int
    n_iter: int
    first: np.ndarray | None = field(default=None, repr=False)
    start: str = "discriminant"  # or "zero-step" when the discriminant start was rejected
    first_by_bucket: bool = False
    overlap: ArmOverlap | None = field(default=None, repr=False)

    def arm_gram(self, arm: int, buckets: bool = False) -> np.ndarray:
        """Upper-triangle Gram sums of ``(1, x[, y])`` over the rows of ``arm`` (1 treated,
        0 control): totals ``(m,)``, or per bucket ``(K, m)`` with ``buckets``."""
        if buckets and not self.first_by_bucket:
            raise ValueError("arm_gram(buckets=True) needs fit_logistic(..., first_by_bucket=True)")
        g = self.first[:, arm]
        rows, cols = np.triu_indices(g.shape[-1])
        flat = g[:, rows, cols]
        return flat if buckets else flat.sum(axis=0)

    @property
    def p(self) -> int:
        return len(self.coef)

    @property
    def terms(self) -> tuple[Expr, ...]:
        return logistic_terms(self.covariates)

    def eta(self) -> Expr:
        """The fitted linear predictor x'coef as a moment expression."""
        return linear(self.coef, self.terms)

    def propensity(self) -> Expr:
        return sigmoid(self.eta())

    def score_exprs(self) -> list[Expr]:
        """The score ``(d - e) x`` (p) and the upper triangle of the information
        ``e (1 - e) x x'`` (p(p+1)/2) at ``coef``, as row expressions: summed per bucket
        by an estimator's own pass, they feed :meth:`shifts_from_totals`."""
        return _iteration_batch(self.treatment, self.terms, self.coef).exprs()[:self.n_scores]

    @property
    def n_scores(self) -> int:
        return self.p + self.p * (self.p + 1) // 2

    def shifts_from_totals(self, totals: np.ndarray) -> np.ndarray:
        """(B, p) one-step shifts ``b*_r - coef`` from (B, n_scores) replicate totals of
        :meth:`score_exprs` (reweighted buckets, or row-level Poisson sums).

        Replicates whose weighted information is singular come back as NaN rows.
        """
        g, h = totals[:, : self.p], unpack_symmetric(totals[:, self.p:], self.p)
        return batched_solve(h, g)


def logistic_terms(covariates: Sequence[str]) -> tuple[Expr, ...]:
    """The model terms: the constant 1 (intercept) and one column per covariate."""
    return (lit(1.0),) + tuple(col(c) for c in covariates)


def _iteration_batch(treatment: str, terms: Sequence[Expr], b: np.ndarray) -> MomentBatch:
    eta = linear(b, terms)
    e = sigmoid(eta)
    batch = MomentBatch()
    batch.add("grad", [times(col(treatment) - e, t) for t in terms])
    var = e * (lit(1.0) - e)
    batch.add("hess", [times(var, xx) for xx in gram_exprs(terms)])
    batch.add("extreme", eta.gt(SEPARATION_ETA) + eta.lt(-SEPARATION_ETA))
    return batch


def _first_pass(engine, treatment: str, terms: Sequence[Expr], outcome: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows per arm (control, treated, other) and the per-arm Gram matrices of
    ``(1, x[, y])`` ``(1, 3, q, q)``, from one ungrouped pass of the Gram of ``(1, x[, y])``
    over all rows and over the treated rows, and the count of rows that are neither 0 nor
    1 (when there are any the fit stops, so the control Gram need not exclude them) — or,
    when the engine already holds the arm-Gram pass of ``(1, d, x[, y])`` (OLS's opening
    pass, or one made while the frame was prepared), from that, with no pass."""
    base = _arm_base(treatment, terms, outcome)
    remembers = getattr(engine, "remembers_grouped", None)
    if remembers is not None and remembers(gram_exprs(base), arm_key(col(treatment)), ARM_LEVELS):
        grams = _arm_grams(engine, treatment, base).sum(axis=0)
        return grams[:, 0, 0].copy(), grams[None]
    rest = [*terms, *([col(outcome)] if outcome is not None else [])]
    d = col(treatment)
    gram, treated = gram_exprs(rest), d.eq(1.0)
    sums = engine.totals([*gram, *[times(treated, e) for e in gram], lit(1.0) - d.eq(0.0) - treated]).sums
    m = len(gram)
    everyone, ones, other = sums[:m], sums[m:2 * m], sums[-1]
    grams = unpack_symmetric(np.stack([everyone - ones, ones, np.zeros(m)])[None], len(rest))
    return np.array([everyone[0] - ones[0] - other, ones[0], other]), grams


def _first_by_bucket(engine, treatment: str, terms: Sequence[Expr], outcome: str | None) -> np.ndarray:
    """``(K, 2, q, q)`` per-bucket Gram matrices of ``(1, x, y)`` of the control and treated
    rows, from the arm-Gram pass over ``(1, d, x, y)`` that OLS opens with too (one pass
    when they share an engine)."""
    return _arm_grams(engine, treatment, _arm_base(treatment, terms, outcome))[:, :2]


def _arm_base(treatment: str, terms: Sequence[Expr], outcome: str | None) -> list[Expr]:
    """``(1, d, x[, y])``: the terms of the arm-Gram pass."""
    return [terms[0], col(treatment), *terms[1:], *([col(outcome)] if outcome is not None else [])]


def _arm_grams(engine, treatment: str, base: Sequence[Expr]) -> np.ndarray:
    """``(K, 3, q, q)`` per-bucket, per-arm Gram matrices of ``base`` without ``d`` (constant
    within an arm): ``(1, x[, y])``."""
    grams = unpack_symmetric(arm_gram_sums(engine, base, treatment), len(base))
    keep = [0, *range(2, len(base))]
    return grams[:, :, keep][:, :, :, keep]


def _first_pass_checks(treatment: str, names: Sequence[str], counts: np.ndarray, xx: np.ndarray) -> tuple[int, int]:
    zeros, ones = counts[0], counts[1]
    n = counts.sum()
    p = xx.shape[0]
    if n == 0:
        raise EstimationError("the propensity model got no rows (empty input or every row filtered out)")
    if ones + zeros != n:
        raise EstimationError(f"treatment {treatment!r} must be coded 0/1 for a propensity model; "
                              f"{int(n - ones - zeros)} of {int(n)} rows are neither")
    if ones == 0 or zeros == 0:
        raise EstimationError(f"treatment {treatment!r} is constant ({'all 1' if zeros == 0 else 'all 0'}); "
                              "a propensity model needs treated and control rows")
    if p > 1:
        try:
            check_regressors(xx, names)
        except EstimationError as err:
            raise EstimationError(f"propensity model: {err}") from None
    return int(n), int(ones)


def _starts(xx: np.ndarray, dxx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two starting points from the first pass: the linear discriminant
    (:func:`~causal_core.estimators.discriminant.discriminant`: normal covariates with a
    common covariance make the logistic model exact, with these coefficients; Efron
    1975), and one Newton step from b = 0, where the information is X'X / 4.

    Newton from the discriminant start usually needs two or three passes to the tolerance
    where b = 0 needs five to seven; the Newton-from-zero point is the fallback when the
    discriminant start fits worse than b = 0 (strongly non-normal covariates).
    """
    p = xx.shape[0]
    g0 = dxx[0] - 0.5 * xx[0]  # sum (d - 1/2) x
    zero_step = np.linalg.solve(0.25 * xx, g0)
    if p == 1:
        return zero_step, zero_step
    lda = discriminant(xx, dxx)
    return (lda if lda is not None else zero_step), zero_step


# The fused final pass is tried when quadratic convergence, |s_k+1| ~ C |s_k|^2 with C
# from the last two steps, predicts the next step below the tolerance by this factor.
FUSE_MARGIN = 10.0


@dataclass(frozen=True)
class FinalSums:
    """The totals of a caller's final batch (and min / max of its extremes), computed on
    the last Newton pass: see :func:`fit_logistic_with`."""

    sums: BucketMoments
    low: np.ndarray
    high: np.ndarray


FinalBatch = Callable[[LogisticFit], tuple[MomentBatch, Sequence[Expr]]]


def fit_logistic(engine, treatment: str, covariates: Sequence[str], *,
                 outcome: str | None = None, max_iter: int = 50, tol: float = 1e-10,
                 label: Callable[[str], str] = str, first_by_bucket: bool = False,
                 overlap: bool = False) -> LogisticFit:
    """Fit ``P(treatment = 1 | covariates)`` by Newton-Raphson, one engine pass per iteration.

    A first, coefficient-free pass checks the data and gives the starting point (see
    :func:`_starts`). Stops when the Newton step is below ``tol`` relative to the
    coefficients (``max|step| <= tol * max(1, max|b|)``). Raises :class:`EstimationError`
    for a non-binary or constant treatment, collinear covariates (named), a covariate
    level with rows in one arm only (positivity, named; :func:`support_gaps`), complete or
    quasi-complete separation (fitted propensities reaching 0 or 1; Albert & Anderson
    1984), or non-convergence. With ``outcome`` the first pass's Gram matrices include it
    (the per-arm outcome regressions of AIPW ride along). ``label`` maps frame columns
    to the names errors should use; ``first_by_bucket`` keeps the first pass's arm Grams
    per bucket (AIPW's bootstrap refits the outcome models from them). ``overlap`` fills
    :attr:`LogisticFit.overlap` (see :func:`fit_logistic_with`).
    """
    return fit_logistic_with(engine, treatment, covariates, outcome=outcome, max_iter=max_iter, tol=tol,
                             label=label, first_by_bucket=first_by_bucket, overlap=overlap)[0]


def fit_logistic_with(engine, treatment: str, covariates: Sequence[str], *, final: FinalBatch | None = None,
                      outcome: str | None = None, max_iter: int = 50, tol: float = 1e-10,
                      label: Callable[[str], str] = str, first_by_bucket: bool = False,
                      overlap: bool = False) -> tuple[LogisticFit, FinalSums | None]:
    """:func:`fit_logistic`, and the totals of the caller's post-fit pass riding on the
    last Newton pass when that can be foreseen.

    ``final(fit)`` gives the batch (and min / max expressions) the caller would sum at
    the fitted coefficients. When the last two steps predict, by Newton's quadratic
    convergence, that the next step will be below the tolerance, the next Newton pass
    also sums that batch at the current point b. If the step it yields is indeed below
    the tolerance, b is returned as the fit — within the tolerance of the MLE, as the
    usual b + step is — with the batch's totals at b: one pass fewer. Otherwise those
    totals are dropped and Newton goes on. Returns ``(fit, FinalSums or None)``.

    ``overlap`` rides :func:`overlap_batch` on the same foreseen-last pass (at b, the
    point where the returned ``hessian`` is evaluated too); only when convergence came
    unforeseen does it take one more totals pass, at the fitted coefficients.
    """
    covariates = tuple(covariates)
    terms = logistic_terms(covariates)
    names = (INTERCEPT, *(label(c) for c in covariates))
    p = len(terms)
    counts, first = _first_pass(engine, treatment, terms, outcome)
    arms = first.sum(axis=0)[:, :p, :p]  # (3, p, p): control, treated, other
    n, n_treated = _first_pass_checks(label(treatment), names, counts, arms.sum(axis=0))
    gaps = support_gaps(arms[:2], names[1:])
    if gaps:
        raise EstimationError(positivity_message(gaps, label(treatment)))
    first = _first_by_bucket(engine, treatment, terms, outcome) if first_by_bucket else first[:, :2]
    b, fallback = _starts(arms.sum(axis=0), arms[1])
    start = "discriminant" if fallback is not b else "zero-step"
    null_loglik = n_treated * np.log(n_treated / n) + (n - n_treated) * np.log(1.0 - n_treated / n)
    n_arm = (float(counts[1]), float(counts[0]))

    def fitted(coef: np.ndarray, at: np.ndarray, hessian: np.ndarray, it: int,
               arm_overlap: ArmOverlap | None = None) -> LogisticFit:
        return LogisticFit(treatment=treatment, covariates=covariates, names=names, coef=coef, eval_coef=at,
                           hessian=hessian, n=n, n_treated=n_treated, n_iter=it, first=first, start=start,
                           first_by_bucket=first_by_bucket, overlap=arm_overlap)

    steps: list[float] = []  # max |step| of the steps taken
    for it in range(1, max_iter + 1):
        batch = _iteration_batch(treatment, terms, b)
        if it == 1:
            batch.add("loglik", _loglik(treatment, linear(b, terms)))
        limit = tol * max(1.0, float(np.max(np.abs(b))))
        foreseen = _next_step_below(steps, limit / FUSE_MARGIN)
        fused = final(fitted(b, b, np.full((p, p), np.nan), it)) if final is not None and foreseen else None
        riding = overlap_batch(linear(b, terms), treatment) if overlap and foreseen else None
        sums, (done, rode) = _newton_pass(engine, batch, (fused, riding))
        if it == 1 and fallback is not b and not sums.total("loglik") >= null_loglik:
            b, start = fallback, "zero-step"  # fits worse than the intercept-only model
            continue
        # (a start may overshoot into rows with propensity near 0 or 1; separation is
        # judged from the Newton iterates, not the start)
        step = _newton_step(sums, b, names, p, check_extreme=it > 1)
        hessian = sums.symmetric("hess", p)
        if np.max(np.abs(step)) <= tol * max(1.0, float(np.max(np.abs(b + step)))):
            coef = b if done is not None else b + step
            arm_overlap = _arm_overlap(n_arm, rode) if rode is not None else \
                _overlap_pass(engine, treatment, linear(coef, terms), n_arm) if overlap else None
            return fitted(coef, b, hessian, it, arm_overlap), done
        steps.append(float(np.max(np.abs(step))))
        b = b + step
    raise EstimationError(
        f"the propensity model for {label(treatment)!r} did not converge in {max_iter} Newton iterations "
        f"(coefficients {_describe(names, b)}); large coefficients point to separation")


def _arm_overlap(n_arm: Sequence[float], sums: FinalSums) -> ArmOverlap:
    below = np.vstack([sums.sums.total_vector(f"below{a}") for a in ARMS])
    return ArmOverlap.from_sums(n_arm, below, sums.low, sums.high)


def _overlap_pass(engine, treatment: str, eta: Expr, n_arm: Sequence[float]) -> ArmOverlap:
    """The :func:`overlap_batch` of ``eta`` in a totals pass of its own."""
    batch, extremes = overlap_batch(eta, treatment)
    sums, low, high = batch.run_totals(engine, extremes)
    return _arm_overlap(n_arm, FinalSums(sums, low, high))


def _next_step_below(steps: Sequence[float], limit: float) -> bool:
    """Whether quadratic convergence from the last two steps predicts the next below ``limit``."""
    if len(steps) < 2 or steps[-2] <= 0.0:
        return False
    rate = steps[-1] / steps[-2] ** 2
    return rate * steps[-1] ** 2 <= limit


def _newton_pass(engine, batch: MomentBatch,
                 riders: Sequence[tuple[MomentBatch, Sequence[Expr]] | None]
                 ) -> tuple[BucketMoments, list[FinalSums | None]]:
    """One totals pass of the Newton batch and of every rider present (a batch and its
    min / max expressions); each rider's totals come back as :class:`FinalSums`."""
    present = [r for r in riders if r is not None]
    if not present:
        return batch.run_totals(engine)[0], [None] * len(riders)
    exprs, extremes = batch.exprs(), []
    for extra, ends in present:
        exprs += extra.exprs()
        extremes += list(ends)
    out = engine.totals(exprs, extremes)
    m, k, results = len(batch), 0, []
    for rider in riders:
        if rider is None:
            results.append(None)
            continue
        extra, ends = rider
        results.append(FinalSums(extra.moments(out.sums[None, m:m + len(extra)]), out.low[k:k + len(ends)],
                                 out.high[k:k + len(ends)]))
        m, k = m + len(extra), k + len(ends)
    return batch.moments(out.sums[None, :len(batch)]), results


def _loglik(treatment: str, eta: Expr) -> Expr:
    """The row's log-likelihood ``d eta - log(1 + e^eta)``, written without overflow as
    ``d eta - max(eta, 0) - log(1 + e^-|eta|)``."""
    a = absolute(eta)
    return col(treatment) * eta - (eta + a) * lit(0.5) - log(lit(1.0) + exp(-a))


def _newton_step(sums: BucketMoments, b: np.ndarray, names: Sequence[str], p: int, *,
                 check_extreme: bool = True) -> np.ndarray:
    extreme = sums.total("extreme")
    if check_extreme and extreme > 0:
        raise EstimationError(
            f"propensity model: (quasi-)complete separation — {int(extreme)} rows have fitted propensity "
            f"within 1e-11 of 0 or 1 (coefficients {_describe(names, b)}); some covariate combination "
            "predicts the treatment perfectly: coarsen or drop it, or restrict the population")
    g = sums.total_vector("grad")
    h = sums.symmetric("hess", p)
    try:
        step = np.linalg.solve(h, g)
    except np.linalg.LinAlgError:
        raise EstimationError(f"propensity model: singular information matrix at coefficients "
                              f"{_describe(names, b)} (separation or collinearity)") from None
    if not np.all(np.isfinite(step)):
        raise EstimationError(f"propensity model: non-finite Newton step at {_describe(names, b)}")
    return step


def _describe(names: Sequence[str], b: np.ndarray) -> str:
    return ", ".join(f"{n}={v:.4g}" for n, v in zip(names, b))
