"""The expression tree's traversals: children, fold, nodes, substitute, and the
numpy compiler as one mapping from node type to handler."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from causal_core.moments import col, exp, linear, lit, sigmoid
from causal_core.moments.expr import (
    NODE_TYPES, NUMPY_HANDLERS, BinOp, Col, Compare, Expr, Func, Lit, RowPoisson, columns_of, evaluate_numpy, fold,
    nodes, substitute, tree_size,
)


def test_nodes_name_their_children_and_rebuild_over_others():
    a, b = col("a"), col("b")
    e = (a + b) * exp(a)
    assert e.children() == (a + b, exp(a))
    assert Func("log", a).children() == (a,) and a.children() == () and RowPoisson(0, 1).children() == ()
    swapped = e.with_children(e.children()[::-1])
    assert swapped == exp(a) * (a + b) and swapped.op == "*"
    assert e.with_children(e.children()) is e
    assert Compare("<", a, b).with_children((b, a)) == b.lt(a)
    with pytest.raises(ValueError, match="BinOp has 2 children, got 1"):
        e.with_children((a,))


def test_every_node_type_is_listed_and_has_a_numpy_handler():
    assert set(Expr.__subclasses__()) == set(NODE_TYPES)
    assert set(NUMPY_HANDLERS) == set(NODE_TYPES)


def test_fold_runs_children_first_and_shared_objects_once():
    shared = col("x") * col("y")
    e = shared + shared * lit(2.0)
    calls: list[str] = []

    def record(name):
        def handler(node, *kids):
            calls.append(f"{name}:{node.name if isinstance(node, Col) else ''}")
            return 1 + sum(kids)
        return handler

    handlers = {Col: record("col"), Lit: record("lit"), BinOp: record("op")}
    assert fold(e, handlers) == tree_size(e) == 9  # the shared product counted where it occurs
    assert calls == ["col:x", "col:y", "op:", "lit:", "op:", "op:"]  # x * y evaluated once
    with pytest.raises(TypeError, match="no handler for Func"):
        fold(exp(col("x")), handlers)


def test_nodes_lists_each_object_once_children_first():
    shared = sigmoid(col("x"))
    e = shared * shared
    other = exp(shared)
    assert [id(n) for n in nodes(e, other)] == [id(shared.arg), id(shared), id(e), id(other)]
    assert tree_size(e) == 5 and tree_size(other) == 3  # a shared subtree counts where it occurs
    assert columns_of(linear([1.0, 2.0], [lit(1.0), col("z")]) * col("w").gt(RowPoisson(0, 1))) == {"z", "w"}


def test_substitute_replaces_outermost_matches_and_keeps_the_rest():
    inner = col("a") * col("b")
    e = exp(inner) + inner * col("c")
    out = substitute(e, lambda n: Col("ab") if n == inner else None)
    assert out == exp(col("ab")) + col("ab") * col("c")
    untouched = substitute(e, lambda n: None)
    assert untouched is e  # nothing replaced: the very same objects


def test_evaluate_numpy_follows_ieee_and_deep_sums_do_not_recurse():
    columns = {"a": np.array([1.0, -1.0, 0.0, np.nan]), "b": np.array([0.0, 0.0, 0.0, 1.0])}
    got = evaluate_numpy(col("a") / col("b"), columns)
    np.testing.assert_array_equal(got, [np.inf, -np.inf, np.nan, np.nan])
    np.testing.assert_array_equal(evaluate_numpy(col("a").ne(col("a")), columns), [0.0, 0.0, 0.0, 1.0])
    assert evaluate_numpy(lit(2.0) * lit(3.0), columns) == 6.0
    deep = linear([1.0] * 5000, [col("b")] * 5000)  # left-deep: 10 000 levels
    np.testing.assert_array_equal(evaluate_numpy(deep, columns), 5000 * columns["b"])
    with pytest.raises(KeyError, match="column 'nope'"):
        evaluate_numpy(col("nope"), columns)
    with pytest.raises(ValueError, match="per-unit uniforms"):
        evaluate_numpy(RowPoisson(0, 1), columns)


def test_hashes_are_structural_and_not_pickled():
    e = sigmoid(linear([0.5, -1.0], [lit(1.0), col("x")])) * col("d")
    assert hash(e) == hash(sigmoid(linear([0.5, -1.0], [lit(1.0), col("x")])) * col("d"))
    assert "_hash" in e.__dict__  # computed once, kept on the node
    state = e.__getstate__()
    assert "_hash" not in state and pickle.loads(pickle.dumps(e)) == e
