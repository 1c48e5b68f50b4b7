"""Tests for the ID algorithm (Shpitser & Pearl 2006).

Evidence of three kinds (STYLE.md §11):
* simulated truth — random discrete SCMs solved exactly; every identified formula must
  reproduce P(y | do(x)) to 1e-9, and every refusal must come with a hedge that is
  checked against the definition (a proof of non-identifiability);
* an independent criterion — Tian & Pearl (2002), Theorem 3, for P(v | do(x));
* published results — Pearl (2009), Causality 2nd ed., sec. 3.4-3.5: the formulas
  (3.42), (3.47), (3.48), (3.49) evaluated on the graphs they were derived for, and the
  napkin formula of Pearl & Mackenzie (2018, p. 240).
"""

from __future__ import annotations

import numpy as np
import pytest

from causal_core.errors import GraphError, IdentificationError
from causal_core.formulas.formula import Formula, Fraction, Prob, Product, Sum
from causal_core.graph.causal_graph import CausalGraph
from causal_core.identification.id_algorithm import NotIdentifiable, identify_effect, is_identifiable
from tests.causal_core.discrete_scm import TooLarge, random_admg, random_scm

P = Prob


def assert_identifies(graph: CausalGraph, xs, ys, seeds=(0, 1), formula: Formula | None = None) -> Formula:
    """ID's formula equals the truth in random SCMs for ``graph``; so does ``formula``, a
    published one, which may name extra variables (it must then hold for each of their
    values, e.g. w2 in the napkin formula)."""
    expr = identify_effect(graph, xs, ys)
    free = expr.free_variables()
    assert set(ys) <= free <= set(xs) | set(ys), f"free variables {sorted(free)} for {xs} -> {ys}"
    for seed in seeds:
        scm = random_scm(graph, np.random.default_rng(seed))
        joint, truth = scm.observed_joint(), scm.interventional(xs, ys)
        for candidate in (expr,) if formula is None else (expr, formula):
            value = candidate.evaluate(joint)
            on = sorted(candidate.free_variables() & (set(xs) | set(ys)))
            merged = truth.merge(value, on=on, suffixes=("_true", "_id"))
            assert len(merged) == len(truth) * len(value) // len(value.drop_duplicates(on))
            error = np.abs(merged["p_true"] - merged["p_id"]).max()
            assert error < 1e-9, f"{candidate} is off by {error} on {graph}"
    return expr


def assert_hedge(graph: CausalGraph, xs, ys) -> tuple[frozenset[str], frozenset[str]]:
    """ID refuses, and its (F, F') is a hedge for P(y | do(x)) (Shpitser & Pearl 2006, Def. 5)."""
    with pytest.raises(NotIdentifiable) as info:
        identify_effect(graph, xs, ys)
    f, f_prime = info.value.hedge
    g = graph.projection()
    assert f_prime < f
    assert f & set(xs) and not f_prime & set(xs)
    assert len(g.districts(f)) == 1 and len(g.districts(f_prime)) == 1, "F and F' must be c-components"
    roots = {v for v in f_prime if not g.children(v) & f_prime}

    def reaches_roots(nodes: frozenset[str]) -> bool:
        reached, frontier = set(roots), list(roots)
        while frontier:
            for parent in g.parents(frontier.pop()) & nodes:
                if parent not in reached:
                    reached.add(parent)
                    frontier.append(parent)
        return reached >= nodes

    # both contain a spanning forest (each node keeps one child towards R) rooted in R
    assert reaches_roots(f) and reaches_roots(f_prime)
    assert roots <= g.without_incoming(xs).ancestors(ys), "the root set must lie in An(Y) of G with X cut"
    named = "hedge F={%s}, F'={%s}" % (", ".join(g.topological_order(f)), ", ".join(g.topological_order(f_prime)))
    assert "is not identifiable: " + named in str(info.value)
    return f, f_prime


def test_the_simulated_truth_detects_a_wrong_formula():
    """The check has teeth: in the front-door model the naive P(y | x) and the back-door
    formula with a mediator are off by far more than the 1e-9 tolerance."""
    graph = CausalGraph.parse("X -> M -> Y; X <-> Y")
    for seed in (0, 1):
        scm = random_scm(graph, np.random.default_rng(seed))
        joint, truth = scm.observed_joint(), scm.interventional(["X"], ["Y"])
        for wrong in (P(("Y",), ("X",)), Sum(("M",), Product((P(("Y",), ("X", "M")), P(("M",)))))):
            merged = truth.merge(wrong.evaluate(joint), on=["X", "Y"], suffixes=("_true", "_wrong"))
            assert np.abs(merged["p_true"] - merged["p_wrong"]).max() > 1e-3


# ---------------------------------------------------------------- random ADMGs
def _random_queries(seed: int, cases: int, max_nodes: int) -> tuple[int, int, int]:
    """Random queries on random ADMGs; returns (identified, refused, too dense to solve)."""
    rng = np.random.default_rng(seed)
    identified = refused = too_dense = 0
    for _ in range(cases):
        n = int(rng.integers(3, max_nodes + 1))
        graph = random_admg(rng, n, p_directed=rng.uniform(0.2, 0.6), p_bidirected=rng.uniform(0.05, 0.5))
        nodes = [str(v) for v in rng.permutation(graph.observed)]
        n_x = int(rng.integers(1, min(3, n - 1) + 1))
        n_y = int(rng.integers(1, min(2, n - n_x) + 1))
        xs, ys = nodes[:n_x], nodes[n_x : n_x + n_y]
        if is_identifiable(graph, xs, ys):
            try:
                assert_identifies(graph, xs, ys, seeds=(int(rng.integers(1 << 30)),))
            except TooLarge:
                too_dense += 1
                continue
            identified += 1
        else:
            assert_hedge(graph, xs, ys)
            refused += 1
    return identified, refused, too_dense


def test_random_admgs_are_identified_exactly_or_refused_with_a_hedge():
    identified, refused, too_dense = _random_queries(seed=20060716, cases=260, max_nodes=8)
    assert identified >= 120 and refused >= 40 and too_dense == 0, (identified, refused, too_dense)


@pytest.mark.slow
def test_many_larger_random_admgs():
    identified, refused, too_dense = _random_queries(seed=1995, cases=1000, max_nodes=10)
    assert identified >= 400 and refused >= 120 and too_dense <= 40, (identified, refused, too_dense)


def test_tian_pearl_criterion_for_the_effect_on_all_other_variables():
    """P(v \\ x | do(x)) is identifiable iff no child of X shares X's district
    (Tian & Pearl 2002, 'A general identification condition for causal effects', Thm. 3)."""
    rng = np.random.default_rng(2002)
    for _ in range(150):
        graph = random_admg(rng, int(rng.integers(3, 8)), rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.5))
        x = str(rng.choice(graph.observed))
        rest = [v for v in graph.observed if v != x]
        district = next(d for d in graph.districts() if x in d)
        expected = not (graph.children(x) & district)
        assert is_identifiable(graph, [x], rest) == expected, (str(graph), x)


# ---------------------------------------------------------------- published examples
def test_bow_arc_is_not_identifiable():
    """The bow pattern (Pearl 2009, Fig. 3.7(a) = 3.9(a)); the simplest hedge (Shpitser & Pearl 2006)."""
    graph = CausalGraph.parse("X -> Y; X <-> Y")
    assert assert_hedge(graph, ["X"], ["Y"]) == (frozenset({"X", "Y"}), frozenset({"Y"}))
    with pytest.raises(NotIdentifiable, match=r"P\(Y \| do\(X\)\) is not identifiable: hedge F=\{X, Y\}, F'=\{Y\}"):
        identify_effect(graph, "X", "Y")
    assert not is_identifiable(graph, "X", "Y")
    assert isinstance(NotIdentifiable("m", (frozenset(), frozenset())), IdentificationError)


def test_bow_with_an_instrument_is_not_identifiable():
    """Pearl 2009, Fig. 3.7(b): an instrument Z -> X does not help non-parametrically."""
    assert_hedge(CausalGraph.parse("Z -> X -> Y; X <-> Y"), ["X"], ["Y"])


def test_confounded_child_of_x_is_not_identifiable():
    """Pearl 2009, sec. 3.5.2 note 2 (the pattern of Fig. 3.9(b)): an arc between X and its
    child on the path to Y."""
    f, f_prime = assert_hedge(CausalGraph.parse("X -> Z -> Y; X <-> Z"), ["X"], ["Y"])
    assert (f, f_prime) == (frozenset({"X", "Z"}), frozenset({"Z"}))


def test_pearl_fig_3_7c_joint_effect_differs_from_its_marginals():
    """Pearl 2009, Fig. 3.7(c) = 3.9(g), as described in sec. 3.5: P(z1 | x̂) and P(z2 | x̂)
    are identifiable, P(z1, z2 | x̂) and P(y | x̂) are not, P(y | x̂, ẑ2) is eq. (3.47)."""
    graph = CausalGraph.parse("X -> Z1 -> Y; Z2 -> Y; X <-> Z2; Z1 <-> Z2")
    assert identify_effect(graph, "X", "Z1") == P(("Z1",), ("X",))
    assert identify_effect(graph, "X", "Z2") == P(("Z2",))
    assert_identifies(graph, ["X"], ["Z1"])
    assert_identifies(graph, ["X"], ["Z2"])
    assert_hedge(graph, ["X"], ["Z1", "Z2"])
    assert_hedge(graph, ["X"], ["Y"])
    eq_3_47 = Sum(("Z1",), Product((P(("Y",), ("Z1", "X", "Z2")), P(("Z1",), ("X",)))))
    assert_identifies(graph, ["X", "Z2"], ["Y"], formula=eq_3_47)
    assert_identifies(graph, ["X", "Z1"], ["Y"])


def test_front_door():
    """Pearl 2009, Fig. 3.8(e) / eq. (3.42): Σ_z P(z | x) Σ_x' P(y | x', z) P(x')."""
    graph = CausalGraph.parse("X -> Z -> Y; X <-> Y")
    eq_3_42 = Sum(("Z",), Product((P(("Z",), ("X",)), Sum(("X",), Product((P(("Y",), ("X", "Z")), P(("X",))))))))
    expr = assert_identifies(graph, ["X"], ["Y"], formula=eq_3_42)
    assert expr.to_text() == "Σ_{Z} P(Z | X) Σ_{X'} P(X') P(Y | X', Z)"
    assert expr.to_latex() == r"\sum_{Z} P(Z \mid X) \sum_{X'} P(X') P(Y \mid X', Z)"


def test_pearl_fig_3_8f():
    """Pearl 2009, Fig. 3.8(f) and its formula (3.48); the graph as read from the text
    (X -> Z1 -> Z2 with X <-> Z2, as in 3.8(e); Y with an unidentifiable parent Z1)."""
    graph = CausalGraph.parse("X -> Z1 -> Z2 -> Y; X -> Y; Z1 -> Y; X <-> Z2; Z1 <-> Y")
    eq_3_48 = Sum(
        ("Z1", "Z2"),
        Product(
            (
                P(("Y",), ("Z1", "Z2", "X")),
                P(("Z1",), ("X",)),
                Sum(("X",), Product((P(("Z2",), ("Z1", "X")), P(("X",))))),
            )
        ),
    )
    assert_identifies(graph, ["X"], ["Y"], formula=eq_3_48)


def test_pearl_fig_3_8g():
    """Pearl 2009, Fig. 3.8(g) and its formula (3.49), in which Z3 does not appear."""
    graph = CausalGraph.parse(
        "Z2 -> X; Z2 -> Z1; Z2 -> Z3; X -> Z1; Z3 -> Y; Z1 -> Y; Z2 <-> X; Z2 <-> Y; X <-> Z3; X <-> Y"
    )
    eq_3_49 = Sum(
        ("Z1", "Z2"),
        Product(
            (
                P(("Z1",), ("Z2", "X")),
                P(("Z2",)),
                Sum(("X",), Product((P(("Y",), ("Z1", "Z2", "X")), P(("X",), ("Z2",))))),
            )
        ),
    )
    assert_identifies(graph, ["X"], ["Y"], formula=eq_3_49)


def test_backdoor_and_unconfounded():
    """Pearl 2009, sec. 3.5.1 note 4: no back-door path gives P(y | x); covariates that
    block every back-door path give Σ_z P(y | x, z) P(z)."""
    assert identify_effect(CausalGraph.parse("X -> Y"), "X", "Y") == P(("Y",), ("X",))
    graph = CausalGraph.parse("Z -> X -> Y; Z -> Y")
    backdoor = Sum(("Z",), Product((P(("Y",), ("X", "Z")), P(("Z",)))))
    expr = assert_identifies(graph, ["X"], ["Y"], formula=backdoor)
    assert expr.to_text() == "Σ_{Z} P(Z) P(Y | Z, X)"


def test_napkin():
    """The napkin graph (Pearl & Mackenzie 2018, p. 240): identifiable although neither
    back-door nor front-door applies; P(y | do(x)) is a ratio of two adjusted terms."""
    graph = CausalGraph.parse("W1 -> W2 -> X -> Y; W1 <-> X; W1 <-> Y")
    published = Sum(("W1",), Product((P(("X", "Y"), ("W1", "W2")), P(("W1",)))))
    denominator = Sum(("W1",), Product((P(("X",), ("W1", "W2")), P(("W1",)))))
    expr = assert_identifies(graph, ["X"], ["Y"], formula=Fraction(published, denominator))
    # the published ratio holds for every w2; ID averages it over P(w2) (line 3 adds W2)
    assert expr.to_text() == "Σ_{W2} P(W2) ([Σ_{W1} P(W1) P(X, Y | W1, W2)] / [Σ_{W1} P(W1) P(X | W1, W2)])"


def test_joint_outcomes_with_separate_confounding():
    """P(y1, y2 | do(x)) where the outcomes share a confounded ancestor W1: identifiable
    without W1 -> W2, a hedge with it (the joint then couples Y1 and Y2 through W1)."""
    base = "W1 -> X -> Y1; W2 -> Y2; W1 <-> Y1; W1 <-> Y2; W1 <-> W2; X <-> W2"
    assert_identifies(CausalGraph.parse(base), ["X"], ["Y1", "Y2"])
    assert_identifies(CausalGraph.parse(base + "; W1 -> W2"), ["X"], ["Y1"])
    assert_hedge(CausalGraph.parse(base + "; W1 -> W2"), ["X"], ["Y1", "Y2"])


def test_multiple_treatments():
    """A sequential plan (Pearl & Robins 1995; Pearl 2009, sec. 4.4): Z is affected by X1
    and confounded with Y, yet P(y | do(x1, x2)) = Σ_z P(y | z, x1, x2) P(z | x1)."""
    graph = CausalGraph.parse("X1 -> Z -> X2 -> Y; X1 -> X2; X1 -> Y; Z <-> Y")
    g_formula = Sum(("Z",), Product((P(("Y",), ("Z", "X1", "X2")), P(("Z",), ("X1",)))))
    assert_identifies(graph, ["X1", "X2"], ["Y"], formula=g_formula)
    assert_identifies(graph, ["X1", "X2"], ["Y", "Z"])
    # confounding X1 with Z as well is harmless once X2 is set (Z -> Y only through X2) ...
    assert_identifies(CausalGraph.parse("X1 -> Z -> X2 -> Y; X1 -> Y; Z <-> Y; X1 <-> Z"), ["X1", "X2"], ["Y"])
    # ... but Z -> Y directly makes Z a confounded child of X1 on the way to Y
    assert_hedge(CausalGraph.parse("X1 -> Z -> X2 -> Y; X1 -> Y; Z -> Y; Z <-> Y; X1 <-> Z"), ["X1", "X2"], ["Y"])


# ---------------------------------------------------------------- latent nodes, line 3, errors
def test_explicit_latent_nodes_give_the_same_answer_as_bidirected_edges():
    explicit = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> M -> Y")
    implicit = CausalGraph.parse("X -> M -> Y; X <-> Y")
    assert identify_effect(explicit, "X", "Y") == identify_effect(implicit, "X", "Y")
    # the truth is computed in the SCM with U explicit, not in its projection
    assert_identifies(explicit, ["X"], ["Y"], seeds=(3, 4, 5))


def test_latent_chains_and_latent_mediators_are_projected():
    graph = CausalGraph.parse("latent U1, U2, L\nU1 -> U2; U2 -> Z; U2 -> Y; Z -> X; X -> L -> Y")
    assert_identifies(graph, ["X"], ["Y"], seeds=(6, 7))
    bow = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> Y")
    f, f_prime = assert_hedge(bow, ["X"], ["Y"])
    assert "U" not in f


def test_line_3_variables_do_not_stay_free():
    """Line 3 intervenes on W ⊄ An(Y) in G_{\\bar X}; the answer is averaged over w with P(w)."""
    graph = CausalGraph.parse("B -> A -> D; B -> C -> E; B -> E; A <-> E; C <-> D")
    expr = assert_identifies(graph, ["A"], ["D"], seeds=(1, 2))
    assert expr.free_variables() == {"A", "D"}


def test_treatment_that_does_not_affect_the_outcome_drops_out():
    graph = CausalGraph.parse("Y -> X; Z -> Y")
    assert identify_effect(graph, "X", "Y") == P(("Y",))


def test_bad_queries_raise_graph_errors():
    graph = CausalGraph.parse("latent U\nU -> X; U -> Y; X -> Y")
    with pytest.raises(GraphError, match="treatment and outcome must differ"):
        identify_effect(graph, ["X"], ["X", "Y"])
    with pytest.raises(GraphError, match="unknown outcome 'Q'"):
        identify_effect(graph, "X", "Q")
    with pytest.raises(GraphError, match="latent node"):
        identify_effect(graph, "U", "Y")


def test_results_are_deterministic_and_round_trip():
    graph = CausalGraph.parse("Z2 -> Z1 -> X -> M -> Y; Z2 <-> X; Z2 <-> Y; M <-> Z1")
    first = identify_effect(graph, "X", "Y")
    again = identify_effect(CausalGraph.parse("Z2 -> Z1 -> X -> M -> Y; Z2 <-> X; Z2 <-> Y; M <-> Z1"), "X", "Y")
    assert first == again and first.to_text() == again.to_text()
    assert Formula.from_dict(first.to_dict()) == first
