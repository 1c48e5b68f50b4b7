"""The one draw: XXH64 against the reference vectors, Spark's hashing rules, the uniform
and the Poisson(1) weight made from a hash."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from causal_core.moments import PandasMomentEngine, col, draws
from causal_core.moments.expr import RowPoisson
from causal_core.moments.pandas_engine import row_hashes

# XXH64 of (data, seed): the first two from the xxHash sanity tests, the rest computed
# with the reference implementation (python-xxhash 4.1.0, the C library's binding). The
# lengths reach every branch: empty, single bytes, a 4-byte lane, 8-byte lanes, one and
# several 32-byte stripes with every kind of tail.
VECTORS = [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"", 2654435761, 0xAC75FDA2929B17EF),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"u12345", 42, 0xF541C4190B113847),
    ((7).to_bytes(4, "little"), 42, 0x26ACCD7F28005477),
    ((7).to_bytes(8, "little"), 42, 0xD84046C3CF69AAF1),
    (b"0123456789abcdef0123456789abcdef", 0, 0x642A94958E71E6C5),
    (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
    (bytes(range(101)), 42, 0x5199593EB8B7A194),
]


@pytest.mark.parametrize("data, seed, want", VECTORS)
def test_xxh64_matches_the_reference_vectors(data, seed, want):
    assert draws.xxh64(data, seed) == want


def test_keys_hashed_together_equal_keys_hashed_one_by_one():
    """Grouping by byte length is only a speed-up: each key's hash is its own XXH64."""
    texts = ["u1", "", None, "é漢字" * 9, "u12345", "u2", None, "a" * 64]
    got = draws.hash_texts(texts)
    want = [draws.SPARK_SEED if t is None else draws.xxh64(t.encode("utf-8"), draws.SPARK_SEED) for t in texts]
    assert got.tolist() == want
    seeds = np.arange(len(texts), dtype=np.uint64) * np.uint64(977)
    chained = draws.hash_texts(texts, seeds)
    assert chained.tolist() == [int(s) if t is None else draws.xxh64(t.encode(), int(s)) for t, s in zip(texts, seeds)]


def test_numbers_are_hashed_as_spark_hashes_them():
    assert draws.hash_longs([7]).tolist() == [0xD84046C3CF69AAF1]
    assert draws.hash_ints([7]).tolist() == [0x26ACCD7F28005477]
    # doubles are their bits as a long; -0.0 is 0.0 and every NaN the canonical one
    assert draws.hash_doubles([1.5]).tolist() == draws.hash_longs(np.array([1.5]).view(np.int64)).tolist()
    assert draws.hash_doubles([-0.0])[0] == draws.hash_doubles([0.0])[0] == draws.hash_longs([0])[0]
    other_nan = np.array([0x7FF0000000000001], dtype=np.uint64).view(np.float64)
    assert draws.hash_doubles(other_nan)[0] == draws.hash_longs([0x7FF8000000000000])[0]
    assert draws.hash_floats([-0.0])[0] == draws.hash_ints([0])[0]


def test_seeds_and_streams_are_ints_when_they_fit_else_longs():
    start = np.array([123456789], dtype=np.uint64)
    assert draws.literal_type(2 ** 31 - 1) == "int" and draws.literal_type(-2 ** 31) == "int"
    assert draws.literal_type(2 ** 31) == "bigint"
    assert draws.hash_integer(start, 5)[0] == draws.hash_ints([5], start)[0]
    assert draws.hash_integer(start, 2 ** 40)[0] == draws.hash_longs([2 ** 40], start)[0]
    with pytest.raises(ValueError, match="64 bits"):
        draws.hash_integer(start, 2 ** 63)


def test_the_uniform_is_the_top_53_bits():
    h = np.array([0, 2 ** 11 - 1, 2 ** 11, 2 ** 63, 2 ** 64 - 1], dtype=np.uint64)
    np.testing.assert_array_equal(draws.to_uniform(h), [0.0, 0.0, 2.0 ** -53, 0.5, 1.0 - 2.0 ** -53])
    key = draws.hash_texts([f"unit{i}" for i in range(50_000)])
    u = draws.uniforms(key, seed=3, stream=0)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    other = draws.uniforms(key, seed=3, stream=1)
    assert abs(np.corrcoef(u, other)[0, 1]) < 4 / np.sqrt(len(u))  # streams are independent


def test_the_weight_is_poisson_one_by_inverse_cdf():
    cdf = draws.poisson1_cdf()
    assert draws.poisson1(np.array([0.0, cdf[0] - 1e-12, cdf[0], cdf[1], 1 - 2.0 ** -53])).tolist() == \
        [0.0, 0.0, 1.0, 2.0, float(np.searchsorted(cdf, 1 - 2.0 ** -53, side="right"))]
    w = draws.poisson1(draws.uniforms(draws.hash_longs(np.arange(200_000)), seed=9, stream=4))
    counts = np.bincount(w.astype(int), minlength=7)[:7]
    expected = stats.poisson.pmf(np.arange(7), 1.0) * len(w)
    assert stats.chisquare(counts, expected * counts.sum() / expected.sum()).pvalue > 1e-3


def test_row_hashes_chain_the_columns_in_order_and_skip_missing_values():
    frame = pd.DataFrame({"g": np.array([3, 4], dtype=np.int64), "f": [1.5, np.nan], "s": ["a", None],
                          "b": [True, False], "i": np.array([2, -1], dtype=np.int32)})
    got = row_hashes(frame)
    first = draws.hash_ints([1], draws.hash_texts(["a"], draws.hash_doubles([1.5], draws.hash_longs([3]))))
    assert got[0] == draws.hash_ints([2], first)[0]
    second = draws.hash_ints([0], draws.hash_longs([4]))  # NaN and None leave the hash as it was
    assert got[1] == draws.hash_ints([-1], second)[0]
    assert row_hashes(frame[["s", "g", "f", "b", "i"]])[0] != got[0]
    with pytest.raises(TypeError, match="column 'when'"):
        row_hashes(pd.DataFrame({"when": pd.to_datetime(["2026-01-01"])}))


def test_the_pandas_engine_draws_from_the_unit_text():
    """RowPoisson weights are draws.poisson1 of draws.uniforms keyed on the unit text, one
    row per bucket here so bucket sums are the rows' weights."""
    units = pd.Series(["b7", "a1", "b7", "zz", "a1"])
    frame = pd.DataFrame({"__unit": units, "__bucket": np.arange(5), "x": np.ones(5)})
    engine = PandasMomentEngine(frame, n_buckets=5)
    got = engine.bucket_sums([RowPoisson(2, 11), RowPoisson(2, 11) * col("x")])
    want = draws.poisson1(draws.uniforms(draws.hash_texts(units.tolist()), seed=11, stream=2))
    np.testing.assert_array_equal(got[:, 0], want)
    np.testing.assert_array_equal(got[:, 1], want)
    assert got[0, 0] == got[2, 0] and got[1, 0] == got[4, 0]  # a unit's rows share the draw
    reordered = PandasMomentEngine(frame.iloc[::-1].assign(__bucket=np.arange(5)), n_buckets=5)
    np.testing.assert_array_equal(reordered.bucket_sums([RowPoisson(2, 11)])[:, 0], want[::-1])
