"""The raw integers at which a native histogram's bucket index changes, so that the kernel places a
field's value by integer comparisons only (docs/architecture.md, "Native histograms in the kernel").

An observation is `value(raw) = float(raw) * float(multiplier)` (igcore.nativehist.NativeBucketing),
and its bucket depends on `|raw|` alone (the float product of a negative raw is the negated product
of its magnitude). With `a = |raw|`:

- `a <= zero_max`: the zero bucket (|value| <= ZERO_THRESHOLD);
- otherwise, with `k` the bit position of `a` (2**k <= a < 2**(k+1)), the index is
  `rows[k].base + #{t in rows[k].thresholds : t < a}`, where each threshold is the largest `a` of
  that power of two whose index is at most one of the indices the power of two reaches.

A power of two of raws spans less than a factor 2 of values, so at most 2**schema thresholds lie in
a row: the kernel finds the count by a bounded binary search of `schema` steps. Each threshold is
found by a search over raw against `bucket_index` (monotonic in raw), so the table is exact by
construction: the kernel and the user path (which calls `bucket_index`) agree on every raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from fractions import Fraction

from ..nativehist import ZERO_THRESHOLD, NativeBucketing, bucket_index, last_true, upper_bound

ROWS = 64   # bit positions of a u64 magnitude


@dataclass(frozen=True)
class Row:
    """The raws `2**k .. 2**(k+1)-1` above the zero bucket: the index of the lowest, and the
    thresholds (ascending) at which the index grows by one."""

    base: int
    thresholds: tuple[int, ...]


@dataclass(frozen=True)
class Thresholds:
    schema: int
    zero_max: int                   # the largest magnitude in the zero bucket
    rows: tuple[Row | None, ...]    # per bit position; None where every raw is in the zero bucket or out of range

    def index(self, magnitude: int) -> int | None:
        """The bucket index of `magnitude` (None: the zero bucket), found as the kernel finds it."""
        if magnitude <= self.zero_max:
            return None
        row = self.rows[magnitude.bit_length() - 1]
        assert row is not None
        padded = row.thresholds + (U64_MAX,) * ((1 << self.schema) - len(row.thresholds))
        return row.base + count_below(padded, magnitude)


U64_MAX = (1 << 64) - 1


def count_below(padded: tuple[int, ...], magnitude: int) -> int:
    """How many of `padded` (ascending, 2**schema of them) are below `magnitude`: the binary
    search the generated C makes (codegen), step by step."""
    low, step = 0, len(padded) >> 1
    while step:
        if padded[low + step - 1] < magnitude:
            low += step
        step >>= 1
    return low + (padded[low] < magnitude)


def max_magnitude(ctype: str) -> int:
    """The largest |raw| of a kernel C type (u8..u64, s8..s64)."""
    bits = int(ctype[1:])
    return (1 << bits) - 1 if ctype[0] == "u" else 1 << (bits - 1)


# Reloads regenerate every program, and two metrics may share a bucketing: a table (up to 0.17 s at
# schema 8) is computed once; bounded, since a ConfigMap may change its multipliers at will.
@lru_cache(maxsize=64)
def thresholds(native: NativeBucketing, ctype: str) -> Thresholds:
    """The table of a field of C type `ctype` observed with `native`."""
    top = max_magnitude(ctype)
    multiplier = float(native.multiplier)

    def index(a: int) -> int:
        return bucket_index(float(a) * multiplier, native.schema)

    zero_max = last_true(lambda a: float(a) * multiplier <= ZERO_THRESHOLD, 0, top,
                          _guess(ZERO_THRESHOLD, multiplier, top))
    rows: list[Row | None] = []
    for k in range(ROWS):
        low, high = max(1 << k, zero_max + 1), min((1 << (k + 1)) - 1, top)
        if low > high:
            rows.append(None)
            continue
        base, last = index(low), index(high)
        found: list[int] = []
        start = low
        for i in range(base, last):
            # the bound of bucket i in raw: the largest raw at most its value, then searched exactly
            t = last_true(lambda a, i=i: index(a) <= i, start, high,
                           _guess(upper_bound(i, native.schema), multiplier, high))
            found.append(t)
            start = t
        assert len(found) <= 1 << native.schema, "a power of two spans at most 2**schema bucket bounds"
        rows.append(Row(base, tuple(found)))
    return Thresholds(native.schema, zero_max, tuple(rows))


def _guess(bound: float, multiplier: float, top: int) -> int:
    """Where the raw at `bound` should lie: the exact quotient (the search corrects rounding)."""
    if math.isinf(bound):
        return top
    return int(Fraction(bound) / Fraction(multiplier))


# How the kernel's map key names a bucket: the zero bucket 0, else the side (POSITIVE, NEGATIVE)
# above the index's low 32 bits (an index stays within ±2**31 at every schema).
POSITIVE, NEGATIVE = 1, 2


def bucket_word(native: NativeBucketing, raw: int) -> int:
    """The bucket of `raw` as the kernel keys it (the user space fallback keys it the same)."""
    value = native.value(raw)
    if -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
        return 0
    side = POSITIVE if value > 0 else NEGATIVE
    return side << 32 | (bucket_index(value, native.schema) & 0xFFFFFFFF)


def parse_word(word: int) -> tuple[int, int]:
    """(side, index) of a bucket word; side 0 is the zero bucket."""
    index = word & 0xFFFFFFFF
    return word >> 32, index - (1 << 32) if index >> 31 else index
