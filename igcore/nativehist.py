"""Prometheus native histograms: which bucket an observation falls in, the bounds of a bucket, and
the sparse encoding (spans and deltas) Prometheus reads (docs/config.md, "Native histograms").

Bucket `i` at schema `s` holds the values in `(base**(i-1), base**i]`, `base = 2**(2**-s)`, for
`value > ZERO_THRESHOLD`; negative values go to the negative buckets by `|value|`, and values within
the threshold of zero to the zero bucket. The index is computed as Prometheus' clients compute it
(frexp, then a search of the fractions' table), from the same table of fractions: the one of the
native histogram format, `data/native_bounds.json`. Those numbers are not all the correctly rounded
`2**(j/2**s - 1)` (178 of schema 8's 256 differ by an ulp), so they are read, not recomputed: a value
near a bound then lands where Prometheus says it does.

Both of ig's paths (user space, and the thresholds the kernel compares with, igcore.kernel.native)
place values with `bucket_index`; tests compare them with a reference written from the definition.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

from prometheus_client.samples import BucketSpan, NativeHistogram

SCHEMAS = range(0, 9)
DEFAULT_SCHEMA = 3
# Prometheus' clients' default zero bucket, 2**-128: a bucket bound at every schema.
ZERO_THRESHOLD = 2.0 ** -128
# How many classic buckets the text formats show at most (docs/config.md, "Native histograms").
DEFAULT_CLASSIC_MAX = 40


def _fractions() -> tuple[tuple[float, ...], ...]:
    text = resources.files("igcore").joinpath("data/native_bounds.json").read_text()
    table = tuple(tuple(float(f) for f in row) for row in json.loads(text))
    assert [len(row) for row in table] == [2 ** s for s in SCHEMAS]
    return table


FRACTIONS = _fractions()


@dataclass(frozen=True)
class NativeBucketing:
    """A config's `bucket: {type: native, ...}`: each observation is `field * multiplier`."""

    schema: int = DEFAULT_SCHEMA
    multiplier: Decimal = Decimal(1)
    classic_max: int = DEFAULT_CLASSIC_MAX

    def value(self, raw: int | float) -> float:
        """The observed value of a field's value: one float multiplication, as the kernel's
        thresholds assume (igcore.kernel.native)."""
        return float(raw) * float(self.multiplier)

    def total(self, raw_sum: int | float) -> float:
        """`_sum` from the exact sum of the field: multiplied exactly, rounded once."""
        if isinstance(raw_sum, int):
            return float(Decimal(raw_sum) * self.multiplier)
        return raw_sum * float(self.multiplier)


def bucket_index(value: float, schema: int) -> int:
    """The index of the bucket `|value|` falls in (`value` beyond the zero bucket, not NaN)."""
    if math.isinf(value):
        return bucket_index(math.ldexp(1.0, 1024 - 1) * (2 - 2 ** -52), schema) + 1
    frac, exp = math.frexp(abs(value))
    if schema > 0:
        fractions = FRACTIONS[schema]
        return bisect_left(fractions, frac) + (exp - 1) * len(fractions)
    return exp - 1 if frac == 0.5 else exp


def upper_bound(index: int, schema: int) -> float:
    """The largest value of bucket `index` (`base**index`)."""
    fractions = FRACTIONS[schema]
    frac = fractions[index & (len(fractions) - 1)]
    exp = (index >> schema) + 1
    if frac == 0.5 and exp == 1025:
        return math.inf
    try:
        return math.ldexp(frac, exp)
    except OverflowError:
        return math.inf


@dataclass
class NativeCounts:
    """One series' native histogram: counts per bucket index, the zero bucket, count and sum."""

    positive: dict[int, int] = field(default_factory=dict)
    negative: dict[int, int] = field(default_factory=dict)
    zero: int = 0
    count: int = 0
    sum: float = 0.0

    def observe(self, value: float, schema: int) -> None:
        self.count += 1
        self.sum += value
        if math.isnan(value):
            return   # counted and summed, in no bucket (as Prometheus' clients do)
        if -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD:
            self.zero += 1
            return
        buckets = self.positive if value > 0 else self.negative
        index = bucket_index(value, schema)
        buckets[index] = buckets.get(index, 0) + 1

    def copy(self) -> NativeCounts:
        return NativeCounts(dict(self.positive), dict(self.negative), self.zero, self.count, self.sum)


def spans_and_deltas(buckets: dict[int, int]) -> tuple[list[BucketSpan], list[int]]:
    """Prometheus' sparse encoding: runs of consecutive indices (each span's offset is the gap
    after the previous one, the first's is its index) and each count as a difference from the
    previous bucket's."""
    spans: list[BucketSpan] = []
    deltas: list[int] = []
    previous_index, previous_count, start, length = None, 0, 0, 0
    for index in sorted(i for i, n in buckets.items() if n):
        if previous_index is None or index != previous_index + 1:
            if previous_index is not None:
                spans.append(BucketSpan(start, length))
            start = index if previous_index is None else index - previous_index - 1
            length = 0
        length += 1
        deltas.append(buckets[index] - previous_count)
        previous_index, previous_count = index, buckets[index]
    if previous_index is not None:
        spans.append(BucketSpan(start, length))
    return spans, deltas


def native_sample_value(counts: NativeCounts, schema: int) -> NativeHistogram:
    """prometheus_client's NativeHistogram of a series (the encoders read it)."""
    pos_spans, pos_deltas = spans_and_deltas(counts.positive)
    neg_spans, neg_deltas = spans_and_deltas(counts.negative)
    return NativeHistogram(counts.count, counts.sum, schema, ZERO_THRESHOLD, counts.zero,
                           pos_spans, neg_spans, pos_deltas, neg_deltas)


def classic_buckets(counts: NativeCounts, schema: int, most: int) -> list[tuple[float, int]]:
    """(upper bound, cumulative count) for the text formats: both bounds of each non-empty native
    bucket (negative ones, the zero bucket, positive ones), so a classic bucket that counts
    anything is one native bucket and `histogram_quantile` interpolates within its width, at the
    finest schema not above `schema` that needs at most `most` of them, then +Inf. Merging two
    buckets of schema s gives one of schema s-1 exactly, so every count stays exact at its bound; a
    bucket once shown stays shown until the resolution has to drop."""
    positive, negative = dict(counts.positive), dict(counts.negative)
    while schema > 0 and _bounds_needed(positive) + _bounds_needed(negative) + 1 > most:
        positive, negative, schema = _coarser(positive), _coarser(negative), schema - 1
    rows: list[tuple[float, int]] = []
    total = 0
    for index in sorted(negative, reverse=True):   # negative bucket i: [-base**i, -base**(i-1))
        if index + 1 not in negative:
            rows.append((-upper_bound(index, schema), total))
        total += negative[index]
        rows.append((-upper_bound(index - 1, schema), total))
    total += counts.zero
    rows.append((ZERO_THRESHOLD, total))
    for index in sorted(positive):
        lower = upper_bound(index - 1, schema)
        if index - 1 not in positive and lower > ZERO_THRESHOLD:
            rows.append((lower, total))
        total += positive[index]
        rows.append((upper_bound(index, schema), total))
    rows.append((math.inf, counts.count))
    return rows


def _bounds_needed(buckets: dict[int, int]) -> int:
    """Classic bounds for these buckets: each one's upper bound, and the lower one of each run."""
    return len(buckets) + sum(1 for index in buckets if index - 1 not in buckets)


def _coarser(buckets: dict[int, int]) -> dict[int, int]:
    """The same counts at schema - 1: bucket i of schema s lies in bucket ceil(i/2) of s - 1."""
    merged: dict[int, int] = {}
    for index, n in buckets.items():
        target = (index + 1) >> 1
        merged[target] = merged.get(target, 0) + n
    return merged


def last_true(holds, low: int, high: int, guess: int) -> int:
    """The largest `a` in [low, high] for which `holds` (true up to some point, then false) is true;
    `holds(low)` is true. Gallops out from `guess`, then bisects: exact whatever the guess."""
    guess = min(max(guess, low), high)
    step = 1
    if holds(guess):
        below = guess   # holds
        while below < high:
            probe = min(high, below + step)
            if not holds(probe):
                above = probe
                break
            below, step = probe, step * 2
        else:
            return high
    else:
        above = guess   # does not hold
        while True:
            probe = max(low, above - step)
            if holds(probe):
                below = probe
                break
            above, step = probe, step * 2
    while above - below > 1:
        middle = (below + above) // 2
        if holds(middle):
            below = middle
        else:
            above = middle
    return below
