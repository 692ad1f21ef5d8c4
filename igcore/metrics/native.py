"""Native histograms in user space (docs/config.md, "Native histograms"): a batch's values placed in
their buckets with the per-value work in C, and the family that carries both encodings.

`bisect_left` over a table of upper bounds gives the smallest bucket whose bound is not below the
value: Prometheus' definition of the bucket index, with the bounds of `nativehist.upper_bound` (the
format's own table). The table covers (ZERO_THRESHOLD, 2**128]; the rest (the zero bucket,
negative values, NaN, and values beyond 2**128, which no eBPF field times a unit reaches in
practice) is placed by `NativeCounts.observe`, one Python call per such value.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from functools import cache, partial
from itertools import repeat
from operator import mul
from typing import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import NativeHistogram
from prometheus_client.utils import floatToGoString

from ..nativehist import (
    ZERO_THRESHOLD, NativeBucketing, NativeCounts, bucket_index, classic_buckets, native_sample_value, upper_bound)

# The table's top: 2**128 (64 Ki bounds at schema 8, 256 at schema 0).
_TOP = 2.0 ** 128


@cache
def _bounds(schema: int) -> tuple[int, tuple[float, ...]]:
    """(index of the zero threshold's bucket, upper bounds of it and of every bucket up to 2**128)."""
    first, last = bucket_index(ZERO_THRESHOLD, schema), bucket_index(_TOP, schema)
    return first, tuple(upper_bound(i, schema) for i in range(first, last + 1))


class NativePlacer:
    """A batch of one series' field values -> its NativeCounts (count and buckets; the sum is kept
    exactly by the aggregator, from the field's values)."""

    def __init__(self, bucketing: NativeBucketing) -> None:
        self.schema = bucketing.schema
        self._scale = float(bucketing.multiplier)
        self._first, table = _bounds(bucketing.schema)
        self._beyond = len(table)
        self._place = partial(bisect_left, table)

    def counts(self, raw: list) -> NativeCounts:
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

    def _values(self, raw: list) -> Iterator[float]:
        """`NativeBucketing.value` of each, in C: int * float is float(int) * float."""
        return map(mul, raw, repeat(self._scale))

    def _outside(self, raw: list, counts: NativeCounts) -> None:
        """The values the table does not place (position 0: zero, negative or NaN; or beyond it)."""
        rest = NativeCounts()
        low, high = ZERO_THRESHOLD, _TOP
        for value in self._values(raw):
            if not low < value <= high:
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
