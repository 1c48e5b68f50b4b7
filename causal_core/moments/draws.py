"""Random draws keyed on a row: the one definition every engine and the demo data share.

A draw is a function of a key (a unit's canonical text, or a row id), a seed and a
stream (a replicate, a column of simulated data), never of row order or partitioning
(DESIGN.md, Determinism)::

    h = xxhash64(key, seed, stream)         Spark's chained XXH64, starting from seed 42
    u = (h >>> 11) * 2^-53                  the top 53 bits: a uniform on [0, 1)
    w = #{k : F(k) <= u},  F the Poisson(1) CDF      an inverse-CDF Poisson(1) weight

Spark's ``xxhash64(a, b, c)`` hashes ``a`` with seed 42, then ``b`` with that hash as
seed, then ``c``; strings are hashed as their UTF-8 bytes, longs as 8 little-endian bytes,
ints (and bytes, shorts, booleans as 1 / 0) as 4 bytes, doubles as the 8 bytes of their
bits (-0.0 as 0.0, every NaN as the canonical one), and a NULL leaves the hash unchanged.
Seeds and streams are integer literals: 4 bytes when they fit in an int, else 8 bytes,
as Spark types a literal. ``jobs.spark.compiler`` builds the same formula as Column
expressions from this module's constants; the functions here compute it with numpy.

XXH64 itself is Collet's xxHash, 64-bit variant (xxHash specification, "XXH64 algorithm
description", v0.1.1, 2018), vectorised here over keys of equal byte length.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

SPARK_SEED = 42  # the seed Spark's xxhash64 expression starts its chain from
DROPPED_BITS = 11  # 64 - 53: the uniform keeps the top 53 bits, a double's precision
UNIT_SCALE = 2.0 ** -53
POISSON_KMAX = 20  # P(N > 20) < 1e-19 for N ~ Poisson(1): beyond any 53-bit uniform

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)
_INT32 = range(-2 ** 31, 2 ** 31)
_INT64 = range(-2 ** 63, 2 ** 63)
_NAN64 = np.uint64(0x7FF8000000000000)  # Java's Double.doubleToLongBits(NaN)
_NAN32 = np.uint32(0x7FC00000)  # Java's Float.floatToIntBits(NaN)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def _round(acc: np.ndarray, lane: np.ndarray) -> np.ndarray:
    return _rotl(acc + lane * _P2, 31) * _P1


def _merge(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (h ^ _round(np.zeros_like(v), v)) * _P1 + _P4


def _avalanche(h: np.ndarray) -> np.ndarray:
    h = (h ^ (h >> np.uint64(33))) * _P2
    h = (h ^ (h >> np.uint64(29))) * _P3
    return h ^ (h >> np.uint64(32))


def _lanes(data: np.ndarray, offset: int, width: int) -> np.ndarray:
    """Little-endian unsigned integers of ``width`` bytes at ``offset`` of every row."""
    chunk = np.ascontiguousarray(data[:, offset:offset + width])
    return chunk.view(f"<u{width}").reshape(len(data)).astype(np.uint64)


def xxh64_rows(data: np.ndarray, seed: int | np.ndarray = 0) -> np.ndarray:
    """XXH64 of every row of an (n, L) uint8 array, with one seed or one seed per row.

    The xxHash specification's XXH64, step by step: four accumulators over 32-byte
    stripes when L >= 32, then 8-byte lanes, one 4-byte lane, single bytes, avalanche."""
    data = np.asarray(data, dtype=np.uint8)
    n, length = data.shape
    seed = np.array(np.broadcast_to(np.asarray(seed).astype(np.uint64), (n,)))
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2^64 by design
        offset = 0
        if length >= 32:
            acc = [seed + _P1 + _P2, seed + _P2, seed.copy(), seed - _P1]
            while offset + 32 <= length:
                acc = [_round(a, _lanes(data, offset + 8 * i, 8)) for i, a in enumerate(acc)]
                offset += 32
            h = _rotl(acc[0], 1) + _rotl(acc[1], 7) + _rotl(acc[2], 12) + _rotl(acc[3], 18)
            for a in acc:
                h = _merge(h, a)
        else:
            h = seed + _P5
        h = h + np.uint64(length)
        while offset + 8 <= length:
            h = _rotl(h ^ _round(np.zeros_like(h), _lanes(data, offset, 8)), 27) * _P1 + _P4
            offset += 8
        if offset + 4 <= length:
            h = _rotl(h ^ (_lanes(data, offset, 4) * _P1), 23) * _P2 + _P3
            offset += 4
        while offset < length:
            h = _rotl(h ^ (data[:, offset].astype(np.uint64) * _P5), 11) * _P1
            offset += 1
        return _avalanche(h)


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of one byte string (the reference function; :func:`xxh64_rows` for arrays)."""
    return int(xxh64_rows(np.frombuffer(data, dtype=np.uint8).reshape(1, len(data)), seed)[0])


def _seeds(seed: int | np.ndarray, n: int) -> np.ndarray:
    return np.array(np.broadcast_to(np.asarray(seed).astype(np.uint64), (n,)))


def hash_longs(values: np.ndarray, seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of long values (8 little-endian bytes), one link of the chain."""
    values = np.asarray(values, dtype="<i8")
    return xxh64_rows(values.view(np.uint8).reshape(len(values), 8), seed)


def hash_ints(values: np.ndarray, seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of int values (4 little-endian bytes): ints, shorts, bytes, booleans."""
    values = np.asarray(values, dtype="<i4")
    return xxh64_rows(values.view(np.uint8).reshape(len(values), 4), seed)


def hash_doubles(values: np.ndarray, seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of doubles: their bits as a long, -0.0 as 0.0, NaN canonical."""
    values = np.where(np.asarray(values, dtype=np.float64) == 0.0, 0.0, values)
    bits = values.view(np.uint64).copy()
    bits[np.isnan(values)] = _NAN64
    return hash_longs(bits.view(np.int64), seed)


def hash_floats(values: np.ndarray, seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of floats: their 32 bits as an int, -0.0 as 0.0, NaN canonical."""
    values = np.where(np.asarray(values, dtype=np.float32) == 0.0, np.float32(0.0), values).astype(np.float32)
    bits = values.view(np.uint32).copy()
    bits[np.isnan(values)] = _NAN32
    return hash_ints(bits.view(np.int32), seed)


def hash_bytes(values: Sequence[bytes | None], seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of binary (or UTF-8 string) values; a None leaves the seed unchanged.

    Keys of one byte length are hashed together, so the Python-level work is one join
    per distinct length."""
    n = len(values)
    out = _seeds(seed, n)
    lengths = np.fromiter((-1 if v is None else len(v) for v in values), dtype=np.int64, count=n)
    for length in np.unique(lengths[lengths >= 0]):
        rows = np.flatnonzero(lengths == length)
        joined = b"".join(values[i] for i in rows)
        data = np.frombuffer(joined, dtype=np.uint8).reshape(len(rows), int(length)) if length else \
            np.zeros((len(rows), 0), dtype=np.uint8)
        out[rows] = xxh64_rows(data, out[rows])
    return out


def hash_texts(values: Sequence[str | None], seed: int | np.ndarray = SPARK_SEED) -> np.ndarray:
    """Spark's hash of strings: their UTF-8 bytes; a None (NULL) leaves the seed unchanged."""
    return hash_bytes([None if v is None else v.encode("utf-8") for v in values], seed)


def hash_integer(seed_hash: np.ndarray, value: int) -> np.ndarray:
    """The next link of the chain for an integer literal (a seed, a stream): 4 bytes when
    it fits in an int, else 8 bytes, as Spark types ``lit(value)``."""
    value = int(value)
    if value not in _INT64:
        raise ValueError(f"a draw's seed or stream must fit in 64 bits, got {value}")
    n = len(seed_hash)
    if value in _INT32:
        return hash_ints(np.full(n, value, dtype=np.int32), seed_hash)
    return hash_longs(np.full(n, value, dtype=np.int64), seed_hash)


def literal_type(value: int) -> str:
    """The Spark type a seed or stream literal is hashed as (what :func:`hash_integer` does)."""
    if int(value) not in _INT64:
        raise ValueError(f"a draw's seed or stream must fit in 64 bits, got {value}")
    return "int" if int(value) in _INT32 else "bigint"


def to_uniform(h: np.ndarray) -> np.ndarray:
    """``(h >>> 11) * 2^-53``: the top 53 bits of a 64-bit hash as a uniform on [0, 1)."""
    return (np.asarray(h, dtype=np.uint64) >> np.uint64(DROPPED_BITS)).astype(np.float64) * UNIT_SCALE


def uniforms(key_hash: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """The uniform of each key for (seed, stream); ``key_hash`` is the first link of the
    chain, the key hashed with seed 42 (:func:`hash_texts`, :func:`hash_longs`, ...)."""
    return to_uniform(hash_integer(hash_integer(np.asarray(key_hash, dtype=np.uint64), seed), stream))


@functools.cache
def _cdf(kmax: int) -> np.ndarray:
    from scipy.stats import poisson

    out = poisson.cdf(np.arange(kmax + 1), 1.0)
    out.setflags(write=False)
    return out


def poisson1_cdf(kmax: int = POISSON_KMAX) -> np.ndarray:
    """Cumulative probabilities P(N <= k), k = 0..kmax, of N ~ Poisson(1): the thresholds
    of the inverse-CDF draw (Devroye 1986, "Non-Uniform Random Variate Generation",
    section X.3.3, sequential search)."""
    return _cdf(int(kmax))


def poisson1(u: np.ndarray) -> np.ndarray:
    """Poisson(1) by inverse CDF: the number of thresholds at or below ``u``."""
    return np.searchsorted(poisson1_cdf(), u, side="right").astype(np.float64)
