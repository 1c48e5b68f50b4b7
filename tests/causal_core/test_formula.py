"""Tests for the probability-expression AST: construction, printing, dicts, evaluation."""

from __future__ import annotations

import itertools
import json
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causal_core.errors import IdentificationError
from causal_core.formulas.formula import Formula, Fraction, Prob, Product, Sum

# Σ_z P(y | x, z) P(z), the back-door formula (Pearl 2009, eq. 3.19)
BACKDOOR = Sum(("z",), Product((Prob(("y",), ("x", "z")), Prob(("z",)))))
# Σ_m P(m | x) Σ_x' P(x') P(y | x', m), the front-door formula (Pearl 2009, eq. 3.42)
FRONTDOOR = Sum(
    ("m",),
    Product((Prob(("m",), ("x",)), Sum(("x",), Product((Prob(("x",)), Prob(("y",), ("x", "m"))))))),
)


def random_joint(rng: np.random.Generator, cards: dict[str, int], zeros: float = 0.0) -> pd.DataFrame:
    names = list(cards)
    rows = list(itertools.product(*[range(k) for k in cards.values()]))
    p = rng.random(len(rows)) * (rng.random(len(rows)) >= zeros)
    if p.sum() == 0:
        p[0] = 1.0
    frame = pd.DataFrame(rows, columns=names)
    frame["p"] = p / p.sum()
    return frame


def dense(joint: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The joint as an array indexed by the integer levels of ``names`` (an independent path)."""
    shape = [int(joint[n].max()) + 1 for n in names]
    out = np.zeros(shape)
    for row in joint.itertuples(index=False):
        out[tuple(getattr(row, n) for n in names)] += row.p
    return out


def lookup(result: pd.DataFrame, **values) -> float:
    mask = np.ones(len(result), dtype=bool)
    for k, v in values.items():
        mask &= (result[k] == v).to_numpy()
    assert mask.sum() == 1
    return float(result.loc[mask, "p"].iloc[0])


# ---------------------------------------------------------------- construction
def test_constructors_store_tuples_and_accept_a_single_name():
    p = Prob("y", ["x", "z"])
    assert p.variables == ("y",) and p.given == ("x", "z")
    assert Sum(["z"], p).over == ("z",)
    assert Product([p, p]).factors == (p, p)
    assert hash(BACKDOOR) == hash(Sum(("z",), Product((Prob(("y",), ("x", "z")), Prob(("z",))))))


@pytest.mark.parametrize(
    "build, fragment",
    [
        (lambda: Prob(()), "at least one variable"),
        (lambda: Prob(("y",), ("y",)), "both before and after"),
        (lambda: Prob(("y", "y")), "repeated"),
        (lambda: Prob(("y", 3)), "non-empty variable names"),
        (lambda: Sum(("z",), "P(z)"), "Sum.body"),
        (lambda: Product((Prob("y"), 1)), "Product.factors"),
        (lambda: Fraction(Prob("y"), None), "Fraction.denominator"),
    ],
)
def test_invalid_expressions_are_rejected(build, fragment):
    with pytest.raises(IdentificationError, match=fragment):
        build()


def test_free_variables_respect_binding():
    assert BACKDOOR.free_variables() == {"x", "y"}
    assert FRONTDOOR.free_variables() == {"x", "y"}
    assert FRONTDOOR.mentioned_variables() == {"m", "x", "y"}
    assert Fraction(Prob("a", "b"), Prob("b")).free_variables() == {"a", "b"}


# ---------------------------------------------------------------- printing
def test_backdoor_text_and_latex():
    assert BACKDOOR.to_text() == "Σ_{z} P(y | x, z) P(z)"
    assert BACKDOOR.to_latex() == r"\sum_{z} P(y \mid x, z) P(z)"
    assert str(BACKDOOR) == BACKDOOR.to_text()


def test_frontdoor_primes_the_shadowed_summation_variable():
    assert FRONTDOOR.to_text() == "Σ_{m} P(m | x) Σ_{x'} P(x') P(y | x', m)"
    assert FRONTDOOR.to_latex() == r"\sum_{m} P(m \mid x) \sum_{x'} P(x') P(y \mid x', m)"


def test_fraction_and_grouping_are_unambiguous():
    napkin = Fraction(
        Sum(("W1",), Product((Prob(("X", "Y"), ("W1", "W2")), Prob(("W1",))))),
        Sum(("W1",), Product((Prob(("X",), ("W1", "W2")), Prob(("W1",))))),
    )
    assert napkin.to_text() == "[Σ_{W1} P(X, Y | W1, W2) P(W1)] / [Σ_{W1} P(X | W1, W2) P(W1)]"
    assert napkin.to_latex() == (
        r"\frac{\sum_{W_{1}} P(X, Y \mid W_{1}, W_{2}) P(W_{1})}{\sum_{W_{1}} P(X \mid W_{1}, W_{2}) P(W_{1})}"
    )
    inner_sum_first = Product((Sum(("a",), Prob(("a", "b"))), Prob("c")))
    assert inner_sum_first.to_text() == "[Σ_{a} P(a, b)] P(c)"
    assert Product(()).to_text() == "1"


def test_latex_escapes_long_names():
    expr = Prob(("click_rate",), ("arm",))
    assert expr.to_latex() == r"P(\mathrm{click\_rate} \mid \mathrm{arm})"


# ---------------------------------------------------------------- dicts
def test_dict_round_trip_is_exact_and_json_safe():
    for expr in (BACKDOOR, FRONTDOOR, Fraction(Prob("a", "b"), Product(()))):
        data = json.loads(json.dumps(expr.to_dict()))
        back = Formula.from_dict(data)
        assert back == expr
        assert type(back) is type(expr)


names = st.sampled_from(["a", "b", "c", "d"])


def _prob():
    return st.builds(
        lambda vs, gs: Prob(tuple(vs), tuple(g for g in gs if g not in vs)),
        st.lists(names, min_size=1, max_size=2, unique=True),
        st.lists(names, max_size=2, unique=True),
    )


expressions = st.recursive(
    _prob(),
    lambda inner: st.one_of(
        st.builds(lambda o, b: Sum(tuple(o), b), st.lists(names, max_size=2, unique=True), inner),
        st.builds(lambda fs: Product(tuple(fs)), st.lists(inner, max_size=3)),
        st.builds(Fraction, inner, inner),
    ),
    max_leaves=6,
)


@given(expressions)
@settings(max_examples=150, deadline=None)
def test_dict_round_trip_property(expr):
    assert Formula.from_dict(json.loads(json.dumps(expr.to_dict()))) == expr


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"kind": "integral"}, "unknown kind"),
        ({"kind": "prob", "variables": ["y"]}, "missing the field 'given'"),
        ({"kind": "prob", "variables": "y", "given": []}, "must be a list"),
        ([1, 2], "expected a dict"),
    ],
)
def test_from_dict_rejects_malformed_input(data, fragment):
    with pytest.raises(IdentificationError, match=fragment):
        Formula.from_dict(data)


# ---------------------------------------------------------------- evaluation
def test_backdoor_matches_an_independent_numpy_computation():
    rng = np.random.default_rng(7)
    joint = random_joint(rng, {"x": 2, "y": 3, "z": 3, "w": 2})
    pj = dense(joint, ["x", "y", "z", "w"]).sum(axis=3)  # p[x, y, z]
    pz = pj.sum(axis=(0, 1))
    expected = {}
    for x, y in itertools.product(range(2), range(3)):
        expected[x, y] = sum(pj[x, y, z] / pj[x, :, z].sum() * pz[z] for z in range(3))
    result = BACKDOOR.evaluate(joint)
    assert list(result.columns) == ["x", "y", "p"]
    assert len(result) == 6
    for (x, y), value in expected.items():
        assert lookup(result, x=x, y=y) == pytest.approx(value, abs=1e-14)


def test_frontdoor_scopes_the_inner_sum_over_x():
    rng = np.random.default_rng(11)
    joint = random_joint(rng, {"x": 3, "m": 2, "y": 2})
    p = dense(joint, ["x", "m", "y"])
    px = p.sum(axis=(1, 2))
    for x, y in itertools.product(range(3), range(2)):
        expected = 0.0
        for m in range(2):
            p_m_given_x = p[x, m, :].sum() / p[x].sum()
            inner = sum(px[x2] * p[x2, m, y] / p[x2, m, :].sum() for x2 in range(3))
            expected += p_m_given_x * inner
        assert lookup(FRONTDOOR.evaluate(joint), x=x, y=y) == pytest.approx(expected, abs=1e-14)


def test_levels_of_any_hashable_type_and_missing_rows():
    joint = pd.DataFrame(
        {"arm": ["treat", "treat", "ctrl", "treat"], "won": [True, False, True, True], "p": [0.2, 0.3, 0.4, 0.1]}
    )
    result = Prob(("won",), ("arm",)).evaluate(joint)
    assert lookup(result, arm="treat", won=True) == pytest.approx(0.3 / 0.6)
    assert lookup(result, arm="ctrl", won=False) == 0.0  # absent row: probability 0
    assert lookup(result, arm="ctrl", won=True) == pytest.approx(1.0)


def test_positivity_violations_give_zero_not_nan():
    joint = pd.DataFrame({"x": [0, 0], "y": [0, 1], "p": [0.5, 0.5]})
    joint = pd.concat([joint, pd.DataFrame({"x": [1], "y": [0], "p": [0.0]})])
    result = Prob(("y",), ("x",)).evaluate(joint)
    assert lookup(result, x=1, y=0) == 0.0
    assert not result["p"].isna().any()


def test_duplicate_rows_are_added_and_extra_columns_marginalised():
    joint = pd.DataFrame({"x": [0, 0, 1], "u": [0, 1, 0], "p": [0.25, 0.25, 0.5]})
    result = Prob(("x",)).evaluate(joint)
    assert lookup(result, x=0) == pytest.approx(0.5)


def test_sum_over_a_variable_the_body_ignores_counts_its_levels():
    joint = random_joint(np.random.default_rng(1), {"x": 2, "z": 3})
    result = Sum(("z",), Prob(("x",))).evaluate(joint)
    assert result["p"].sum() == pytest.approx(3.0)


def test_closed_expression_gives_one_row():
    joint = random_joint(np.random.default_rng(2), {"x": 2, "y": 2})
    result = Sum(("x", "y"), Prob(("x", "y"))).evaluate(joint)
    assert list(result.columns) == ["p"] and result["p"].iloc[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda j: j.drop(columns=["p"]), "no probability column 'p'"),
        (lambda j: j.drop(columns=["z"]), r"needs column\(s\) \['z'\]"),
        (lambda j: j.assign(p=j["p"] * 2), "sum to"),
        (lambda j: j.assign(p=np.where(j.index == 0, -0.01, j["p"] + 0.01 / (len(j) - 1))), "negative"),
        (lambda j: j.assign(z=j["z"].where(j.index != 0)), "column 'z' has missing values"),
        (lambda j: j.assign(p=j["p"].astype(str) + "x"), "must be numeric"),
        (lambda j: j.to_dict(), "expected a pandas DataFrame"),
    ],
)
def test_bad_joints_are_rejected(mutate, fragment):
    joint = random_joint(np.random.default_rng(3), {"x": 2, "y": 2, "z": 2})
    with pytest.raises(IdentificationError, match=fragment):
        BACKDOOR.evaluate(mutate(joint))


def test_twelve_ternary_variables_evaluate_fast_and_exactly():
    rng = np.random.default_rng(5)
    cards = {f"v{i:02d}": 3 for i in range(12)}
    joint = random_joint(rng, cards)
    covariates = tuple(f"v{i:02d}" for i in range(2, 12))
    expr = Sum(covariates, Product((Prob(("v01",), ("v00",) + covariates), Prob(covariates))))
    start = time.perf_counter()
    result = expr.evaluate(joint)
    elapsed = time.perf_counter() - start
    assert len(result) == 9
    totals = result.groupby("v00")["p"].sum()
    assert np.allclose(totals, 1.0, atol=1e-12)
    assert elapsed < 5.0


# ---------------------------------------------------------------- simplification
def test_simplify_rules():
    assert Sum(("z",), Prob(("y", "z"), ("x",))).simplify() == Prob(("y",), ("x",))
    assert Fraction(Prob(("y", "z"), ("x",)), Prob(("z",), ("x",))).simplify() == Prob(("y",), ("x", "z"))
    assert Product((Prob(("y",), ("x", "z")), Prob(("z",), ("x",)))).simplify() == Prob(("z", "y"), ("x",))
    pulled = Sum(("z",), Product((Prob(("a",)), Prob(("y",), ("x", "z")), Prob(("z",))))).simplify()
    assert pulled == Product((Prob(("a",)), BACKDOOR))
    # chain rule, then marginalisation: Σ_z P(y | z) P(z) = Σ_z P(z, y) = P(y)
    assert Sum(("z",), Product((Prob(("y",), ("z",)), Prob(("z",))))).simplify() == Prob(("y",))
    # Σ_z P(z | x) = 1 only where P(x) > 0: not an identity, so it is left alone
    assert Sum(("z",), Prob(("z",), ("x",))).simplify() == Sum(("z",), Prob(("z",), ("x",)))
    assert BACKDOOR.simplify() == BACKDOOR


@given(expressions, st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_simplify_never_changes_the_value_even_without_positivity(expr, seed):
    joint = random_joint(np.random.default_rng(seed), {"a": 2, "b": 3, "c": 2, "d": 2}, zeros=0.3)
    before = expr.evaluate(joint)
    after = expr.simplify().evaluate(joint)
    free = sorted(expr.free_variables())
    merged = before.merge(after, on=free, suffixes=("_0", "_1")) if free else pd.concat(
        [before.add_suffix("_0"), after.add_suffix("_1")], axis=1
    )
    assert len(merged) == len(before)
    assert np.allclose(merged["p_0"], merged["p_1"], rtol=1e-9, atol=1e-12)
