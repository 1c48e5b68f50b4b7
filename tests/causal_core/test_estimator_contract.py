"""The contract every registered estimator keeps (STYLE.md §4 and §11), run over the registry.

Each estimator is fitted on a small simulated data set of every strategy kind the
admissibility table lets it run on: a confounded discrete back-door model, Pearl's
front-door model with a latent confounder (which also has the general ID formula), and
the linear IV model of :mod:`causal_core.datasets`. The discrete models serve the
plug-in estimator as well as the regression-type ones, so every pair is one data set.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
import pytest

from causal_core.datasets import linear_iv
from causal_core.errors import EstimationError
from causal_core.estimators import ESTIMATORS, BootstrapOptions, ModelRoles, get_estimator
from causal_core.estimators.base import TARGETS
from causal_core.estimators.results import EstimateResult
from causal_core.identification.estimand import KINDS
from causal_core.identification.plan import identify
from causal_core.moments import PandasMomentEngine
from causal_core.moments.bootstrap import BOOTSTRAP_KINDS

N, BUCKETS = 2_000, 50
BOOT = BootstrapOptions(replicates=40, seed=11)


def _backdoor_frame(rng: np.random.Generator) -> pd.DataFrame:
    """Z (3 levels) and W (binary) confound X -> Y; P(X = 1 | z, w) in [0.2, 0.8]."""
    z = rng.choice(3, size=N, p=(0.5, 0.3, 0.2))
    w = rng.binomial(1, 0.4, N)
    x = rng.binomial(1, 0.2 + 0.25 * z + 0.1 * w)
    y = rng.binomial(2, 0.1 + 0.2 * x + 0.1 * z + 0.1 * w)
    return pd.DataFrame({"Z": z, "W": w, "X": x, "Y": y}).astype(float)


def _frontdoor_frame(rng: np.random.Generator) -> pd.DataFrame:
    """A latent U confounds X and Y; X acts on Y only through M (3 levels)."""
    u = rng.binomial(1, 0.5, N)
    x = rng.binomial(1, np.where(u == 1, 0.8, 0.2))
    m = rng.binomial(2, np.where(x == 1, 0.7, 0.3))
    y = rng.binomial(1, 0.1 + 0.25 * m + 0.3 * u)
    return pd.DataFrame({"X": x, "M": m, "Y": y}).astype(float)


GRAPHS = {"backdoor": ("Z -> X; W -> X; Z -> Y; W -> Y; X -> Y", _backdoor_frame),
          "frontdoor": ("X <-> Y; X -> M -> Y", _frontdoor_frame),
          "id": ("X <-> Y; X -> M -> Y", _frontdoor_frame)}


def case(kind: str, target: str = "ate") -> tuple[pd.DataFrame, ModelRoles]:
    """A simulated frame (with a unit id) and the design of the plan's ``kind`` strategy."""
    if kind == "iv":
        sim = linear_iv(N, np.random.default_rng(3))
        return sim.frame.assign(__unit=np.arange(N)), sim.make_design(target)
    graph, simulate = GRAPHS[kind]
    frame = simulate(np.random.default_rng(7))
    estimand = next(s for s in identify(graph, "X", "Y").strategies if s.kind == kind)
    design = ModelRoles(treatment="X", outcome="Y", covariates=estimand.adjustment, mediators=estimand.mediators,
                    target=target, strategy=kind, variables=tuple(frame.columns),
                    expression=estimand.expression)
    return frame.assign(__unit=np.arange(N)), design


def engine(frame: pd.DataFrame) -> PandasMomentEngine:
    return PandasMomentEngine(frame, n_buckets=BUCKETS)


PAIRS = [(name, kind) for name in sorted(ESTIMATORS)
         for kind in sorted(ESTIMATORS[name].admitted_kinds())]


def params(est) -> dict:
    """scikit-learn's ``get_params``: the ``__init__`` arguments, read back as attributes."""
    names = [p for p in inspect.signature(type(est).__init__).parameters if p != "self"]
    return {p: getattr(est, p) for p in names}


def clone(est):
    """scikit-learn's ``clone``: a new, unfitted estimator with the same parameters."""
    return type(est)(**params(est))


def numbers(result: EstimateResult) -> tuple:
    return (result.to_dict(), result.replicates)


def test_every_registered_estimator_runs_on_a_case():
    assert {name for name, _ in PAIRS} == set(ESTIMATORS)
    assert {kind for _, kind in PAIRS} == set(KINDS)  # every kind of strategy is exercised


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_init_is_keyword_only_and_only_stores(name):
    cls = ESTIMATORS[name]
    signature = inspect.signature(cls.__init__).parameters
    kinds = {p: par.kind for p, par in signature.items() if p != "self"}
    assert kinds and set(kinds.values()) == {inspect.Parameter.KEYWORD_ONLY}, kinds
    # Sentinels would fail any validation or conversion: __init__ must store them untouched.
    given = {p: object() for p in kinds}
    est = cls(**given)
    assert vars(est).keys() == given.keys()
    assert all(getattr(est, p) is v for p, v in given.items())
    copy = clone(est)
    assert copy is not est and all(params(copy)[p] is v for p, v in given.items())
    with pytest.raises(TypeError):
        cls(not_an_option=1)
    with pytest.raises(TypeError):
        cls(BOOT)  # positional


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_fit_returns_self_with_a_finite_result_for_every_target(name, kind):
    cls = ESTIMATORS[name]
    for target in sorted(cls.targets):
        frame, design = case(kind, target)
        est = cls(bootstrap=BOOT)
        assert est.fit(engine(frame), design) is est
        res = est.result_
        assert isinstance(res, EstimateResult)
        assert (res.estimator, res.strategy, res.target, res.n) == (name, kind, target, N)
        assert all(math.isfinite(v) for v in (res.estimate, res.se, res.ci_low, res.ci_high)), res
        assert res.se > 0 and res.ci_low <= res.estimate <= res.ci_high
        assert len(res.replicates) == BOOT.replicates and res.diagnostics["bootstrap_kind"] == BOOT.kind
        assert isinstance(res.diagnostics["warnings"], list)
        assert all(isinstance(w, str) for w in res.diagnostics["warnings"])
        learned = set(vars(est)) - set(params(est))
        assert "result_" in learned and all(a.endswith("_") for a in learned), learned
        assert res.to_dict()["estimate"] == res.estimate  # JSON-safe


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_the_same_seed_gives_the_same_numbers(name, kind):
    frame, design = case(kind)
    first = get_estimator(name)(bootstrap=BOOT).fit(engine(frame), design)
    again = clone(first)
    assert not hasattr(again, "result_")
    assert numbers(again.fit(engine(frame), design).result_) == numbers(first.result_)
    # Parameters are plain attributes (scikit-learn's set_params), read when fitting.
    other = BootstrapOptions(replicates=BOOT.replicates, seed=BOOT.seed + 1)
    again.bootstrap = other
    moved = again.fit(engine(frame), design).result_
    assert moved.estimate == first.result_.estimate and moved.replicates != first.result_.replicates
    assert numbers(moved) == numbers(get_estimator(name)(bootstrap=other).fit(engine(frame), design).result_)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_strategies_targets_and_options_are_checked_before_any_pass(name):
    """``engine=None``: each refusal comes before the estimator reads the data."""
    cls = ESTIMATORS[name]
    kind = sorted(cls.admitted_kinds())[0]
    _, design = case(kind)
    for other in sorted(set(KINDS) - cls.admitted_kinds()):
        with pytest.raises(EstimationError, match=f"does not support the '{other}' strategy"):
            cls().fit(None, ModelRoles(treatment="X", outcome="Y", strategy=other))
    for target in sorted(set(TARGETS) - cls.targets):
        with pytest.raises(EstimationError, match=f"does not estimate the {target.upper()}"):
            cls().fit(None, ModelRoles(treatment="X", outcome="Y", strategy=kind, target=target))
    with pytest.raises(EstimationError, match=r"bootstrap.kind 'bogus' is unknown; expected one of") as err:
        cls(bootstrap=BootstrapOptions(kind="bogus")).fit(None, design)
    assert all(k in str(err.value) for k in BOOTSTRAP_KINDS)
