"""Exact, order-independent sums: limbs reassemble the exact total, and the Spark-side and
driver-side reassembly give the same double."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causal_core.moments import col
from jobs.spark.exact_sums import LIMB_EXPONENTS, LIMBS, REST, combine_limbs, with_total
from jobs.spark.engine import SparkMomentEngine

LIMB = st.integers(min_value=-(2 ** 61), max_value=2 ** 61)


def exact_value(limbs) -> Fraction:
    return sum((Fraction(int(v)) * Fraction(2) ** e for v, e in zip(limbs, LIMB_EXPONENTS)), Fraction(0))


@settings(max_examples=300, deadline=None)
@given(st.lists(LIMB, min_size=len(LIMBS), max_size=len(LIMBS)))
def test_combined_limbs_are_within_a_few_ulps_of_the_exact_sum(limbs):
    got = combine_limbs(np.array([limbs], dtype=np.int64), np.zeros(1))[0]
    want = float(exact_value(limbs))
    assert abs(got - want) <= 4 * math.ulp(want)


@pytest.mark.spark
def test_spark_and_driver_reassembly_agree_bit_for_bit(spark):
    rng = np.random.default_rng(0)
    limbs = rng.integers(-(2 ** 40), 2 ** 40, size=(500, len(LIMBS)))
    limbs[::7, 0] = 0  # small totals, where the sign comes from a lower digit
    limbs[::5] = -limbs[::5]
    rest = np.where(np.arange(500) % 3 == 0, rng.normal(size=500) * 1e-20, 0.0)
    rows = [(i, *map(int, row), float(r)) for i, (row, r) in enumerate(zip(limbs, rest))]
    sdf = spark.createDataFrame(rows, ["i", *LIMBS, REST])
    got = with_total(sdf, ["i"], "total").orderBy("i").toPandas()["total"].to_numpy()
    np.testing.assert_array_equal(got, combine_limbs(limbs, rest))


@pytest.mark.spark
def test_bucket_sums_are_exact_where_float_addition_cancels(spark):
    values = [1e20, 1.0, -1e20, 3.5e-15, -7.25, 2.0 ** 78, -(2.0 ** 78), 1e-17, 0.1, 0.2, -0.3]
    sdf = spark.createDataFrame([(v, 0) for v in values], "x double, __bucket int")
    got = SparkMomentEngine(sdf, n_buckets=1).bucket_sums([col("x")])[0, 0]
    exact = math.fsum(values)
    assert sum(values) != exact  # plain float addition gets this wrong
    assert abs(got - exact) <= math.ulp(exact)
