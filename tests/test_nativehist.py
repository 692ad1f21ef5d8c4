"""Native histogram buckets (docs/config.md, "Native histograms"): the index of a value against the
bucket bounds, the sparse encoding Prometheus decodes, and the classic buckets of the text formats."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.protobuf_scrape import decoded
from igcore.nativehist import (
    FRACTIONS, SCHEMAS, ZERO_THRESHOLD, NativeCounts, bucket_index, classic_buckets, native_sample_value,
    upper_bound)

finite = st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(finite, st.sampled_from(SCHEMAS))
def test_a_value_lies_between_its_buckets_bounds(value, schema):
    index = bucket_index(value, schema)
    assert upper_bound(index - 1, schema) < value <= upper_bound(index, schema)


@given(st.integers(min_value=-300, max_value=300), st.sampled_from(SCHEMAS))
def test_each_bound_is_the_top_of_its_own_bucket(index, schema):
    bound = upper_bound(index, schema)
    assert bucket_index(bound, schema) == index
    assert bucket_index(math.nextafter(bound, math.inf), schema) == index + 1


def test_the_fractions_are_the_formats_table():
    # Spot values of the format's table: not every one is the correctly rounded 2**(j/2**s - 1).
    assert FRACTIONS[1] == (0.5, 0.7071067811865475)
    assert FRACTIONS[3][7] == 0.9170040432046711
    assert FRACTIONS[8][255] == 0.9972960560854698
    assert all(FRACTIONS[s][::2] == FRACTIONS[s - 1] for s in SCHEMAS if s)


@given(st.lists(st.floats(allow_nan=False, min_value=-1e12, max_value=1e12)), st.sampled_from(SCHEMAS))
def test_the_encoding_decodes_to_the_counts(values, schema):
    counts = NativeCounts()
    for v in values:
        counts.observe(v, schema)
    sample = native_sample_value(counts, schema)
    assert decoded(sample.pos_spans, sample.pos_deltas) == counts.positive
    assert decoded(sample.neg_spans, sample.neg_deltas) == counts.negative
    assert sample.zero_count == sum(1 for v in values if abs(v) <= ZERO_THRESHOLD)
    assert sample.count_value == len(values)


@given(st.lists(st.integers(min_value=0, max_value=10**9)), st.sampled_from(SCHEMAS), st.integers(2, 50))
def test_classic_buckets_count_exactly_at_their_bounds(values, schema, most):
    counts = NativeCounts()
    for v in values:
        counts.observe(float(v), schema)
    rows = classic_buckets(counts, schema, most)
    assert rows[-1] == (math.inf, len(values))
    coarsest = NativeCounts()
    for v in values:
        coarsest.observe(float(v), 0)
    assert len(rows) <= max(most + 1, 2 * len(coarsest.positive) + 2)   # schema 0 is as coarse as it gets
    for bound, cumulative in rows:
        assert cumulative == sum(1 for v in values if v <= bound)


@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1), st.sampled_from(SCHEMAS))
def test_a_classic_bucket_that_counts_is_one_native_bucket(values, schema):
    # So histogram_quantile over the text formats' buckets interpolates within a native bucket's width.
    counts = NativeCounts()
    for v in values:
        counts.observe(float(v), schema)
    rows = classic_buckets(counts, schema, 10**6)
    for (lower, before), (upper, after) in zip(rows, rows[1:-1]):
        if after > before:
            assert lower == upper_bound(bucket_index(upper, schema) - 1, schema), (lower, upper)
