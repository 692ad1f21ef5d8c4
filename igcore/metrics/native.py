"""Native histograms in user space (docs/config.md, "Native histograms"): a batch's values placed in
their buckets with the per-value work in C, and the family that carries both encodings.

`bisect_left` over a table of upper bounds gives the smallest bucket whose bound is not below the
value: Prometheus' definition of the bucket index, with the bounds of `nativehist.upper_bound` (the
format's own table). The table covers (ZERO_THRESHOLD, 2**128]; the rest (the zero bucket,
negative values, NaN, and values beyond 2**128, which no eBPF field times a unit reaches in
practice) is placed by `NativeCounts.observe`, one Python call per such value.

A batch of ints (most eBPF fields) skips the multiplication and the float comparisons: the value
`float(raw) * multiplier` only grows with `raw`, so each bucket holds the ints up to a largest
one, and `bisect_left` over those thresholds (1 to 2**64 raw: about 64 * 2**schema of them, not
256 * 2**schema) places the raw int itself, with int comparisons. The same exact placement.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from functools import cache, partial
from itertools import repeat
from operator import mul
from typing import Callable, Iterator, cast

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import NativeHistogram
from prometheus_client.utils import floatToGoString

from ..nativehist import (
    ZERO_THRESHOLD, NativeBucketing, NativeCounts, bucket_index, classic_buckets, last_true, native_sample_value,
    upper_bound)

# The table's top: 2**128 (64 Ki bounds at schema 8, 256 at schema 0).
_TOP = 2.0 ** 128
# The int thresholds' top: the largest eBPF field (u64); beyond, ints take the float table's path.
_RAW_TOP = 2 ** 64


@cache
def _bounds(schema: int) -> tuple[int, tuple[float, ...]]:
    """(index of the zero threshold's bucket, upper bounds of it and of every bucket up to 2**128)."""
    first, last = bucket_index(ZERO_THRESHOLD, schema), bucket_index(_TOP, schema)
    return first, tuple(upper_bound(i, schema) for i in range(first, last + 1))


@cache
def _raw_thresholds(schema: int, scale: float) -> tuple[int, tuple[int, ...]] | None:
    """(the bucket of raw 1 minus 1, thresholds): 0, then per bucket from raw 1's to raw 2**64's
    the largest raw int in it (the last: 2**64). None when raw 1 is in the zero bucket or 2**64
    beyond the float table (a multiplier below 2**-128 or above 2**64)."""
    if not ZERO_THRESHOLD < scale or not float(_RAW_TOP) * scale <= _TOP:
        return None
    first, last = bucket_index(scale, schema), bucket_index(float(_RAW_TOP) * scale, schema)
    largest = [_largest_raw(upper_bound(i, schema), scale) for i in range(first, last)]
    return first - 1, (0, *largest, _RAW_TOP)


def _largest_raw(bound: float, scale: float) -> int:
    """The largest int r >= 0 with float(r) * scale <= bound, searched from the quotient (within a
    few of the float's rounding steps of it)."""
    return last_true(lambda r: float(r) * scale <= bound, 0, _RAW_TOP, int(bound / scale))


class NativePlacer:
    """A batch of one series' field values -> its NativeCounts (count and buckets; the sum is kept
    exactly by the aggregator, from the field's values)."""

    def __init__(self, bucketing: NativeBucketing) -> None:
        self.schema = bucketing.schema
        self._scale = float(bucketing.multiplier)
        self._first, table = _bounds(bucketing.schema)
        self._beyond = len(table)
        self._place = partial(bisect_left, table)
        raw_table = _raw_thresholds(bucketing.schema, self._scale)
        self._place_raw = None if raw_table is None else partial(bisect_left, raw_table[1])
        self._raw_first, self._beyond_raw = (0, 0) if raw_table is None else (raw_table[0], len(raw_table[1]))

    def counts(self, raw: list) -> NativeCounts:
        if self._place_raw is not None and set(map(type, raw)) == {int}:   # a column has one kind
            return self._int_counts(raw)
        try:
            positions = Counter(map(self._place, self._values(raw)))
        except OverflowError:   # an int beyond any float (an int column has no bound): observed as ±inf
            raw = list(map(_as_float, raw))
            positions = Counter(map(self._place, self._values(raw)))
        counts = NativeCounts(count=len(raw))
        first, beyond = self._first, self._beyond
        # Position p (0 < p < beyond) is bucket first + p: ZERO_THRESHOLD is bucket `first`'s bound.
        counts.positive = {first + p: n for p, n in positions.items() if 0 < p < beyond}
        if 0 in positions or beyond in positions:
            self._outside(raw, counts)
        return counts

    def _int_counts(self, raw: list[int]) -> NativeCounts:
        """`counts` of ints, by the raw thresholds."""
        positions = Counter(map(cast(Callable[[int], int], self._place_raw), raw))
        # Position 0: zero or negative; beyond the last threshold: more than 2**64.
        outside = positions.pop(0, 0) + positions.pop(self._beyond_raw, 0)
        counts = NativeCounts(count=len(raw))
        first = self._raw_first
        counts.positive = {first + p: n for p, n in positions.items()}
        if outside:
            scale = self._scale
            self._merge([_as_float(r) * scale for r in raw if not 0 < r <= _RAW_TOP], counts)
        return counts

    def _values(self, raw: list) -> Iterator[float]:
        """`NativeBucketing.value` of each, in C: int * float is float(int) * float."""
        return map(mul, raw, repeat(self._scale))

    def _outside(self, raw: list, counts: NativeCounts) -> None:
        """The values the table does not place (position 0: zero, negative or NaN; or beyond it)."""
        low, high = ZERO_THRESHOLD, _TOP
        self._merge([value for value in self._values(raw) if not low < value <= high], counts)

    def _merge(self, values: list[float], counts: NativeCounts) -> None:
        """Observe `values` (the few the tables do not place) into `counts`, whose count has them."""
        rest = NativeCounts()
        for value in values:
            rest.observe(value, self.schema)
        counts.zero = rest.zero
        counts.negative = rest.negative
        for index, hits in rest.positive.items():
            counts.positive[index] = counts.positive.get(index, 0) + hits


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class NativeHistogramFamily(HistogramMetricFamily):
    """A native histogram's family: its samples are the classic buckets the text formats show
    (`nativehist.classic_buckets`), and `native` holds each series' NativeHistogram for the
    protobuf format (igcore.promproto), so each encoder takes what its format can say."""

    def __init__(self, name: str, documentation: str, labels: list[str] | tuple[str, ...]) -> None:
        super().__init__(name, documentation, labels=list(labels))
        self.native: list[tuple[dict[str, str], NativeHistogram]] = []

    def add_series(self, label_values: list[str], counts: NativeCounts, bucketing: NativeBucketing) -> None:
        rows = classic_buckets(counts, bucketing.schema, bucketing.classic_max)
        self.add_metric(label_values, [(floatToGoString(bound), n) for bound, n in rows], counts.sum)
        self.native.append((dict(zip(self._labelnames, label_values)),
                            native_sample_value(counts, bucketing.schema)))
