"""Native histograms in user space (docs/config.md, "Native histograms"): each series' buckets equal
a reference computed here from Prometheus' definition (metrics bound on the synthetic gadget's
columns), the text formats show the classic buckets, and eviction and the series cap work as for
classic histograms."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from functools import cache

import yaml

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from ig_gadget_synthetic.plugin import TRACE_SCHEMA
from igcore.config import load_config
from igcore.gadgets import Category, GadgetSpec
from igcore.metrics.aggregators import HistogramAggregator
from igcore.metrics.lifecycle import EVICTED
from igcore.nativehist import (
    SCHEMAS, ZERO_THRESHOLD, NativeBucketing, bucket_index, classic_buckets, upper_bound)
from igcore.plugins import GadgetCatalog
from tests.fixtures.aggregation import bound, exposition

MULTIPLIERS = [Decimal(1), Decimal("0.000000001"), Decimal("0.001"), Decimal(3), Decimal("1000")]


def reference_index(value: float, schema: int) -> int:
    """Prometheus' definition: the smallest i with |value| <= upper bound of i, found by search from
    an estimate (not by nativehist.bucket_index)."""
    magnitude = abs(value)
    i = math.floor(math.log2(magnitude) * 2 ** schema)
    while upper_bound(i, schema) < magnitude:
        i += 1
    while upper_bound(i - 1, schema) >= magnitude:
        i -= 1
    return i


def reference(values: list, multiplier: Decimal, schema: int) -> tuple[dict, dict, int]:
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    zero = 0
    for raw in values:
        value = float(raw) * float(multiplier)
        if abs(value) <= ZERO_THRESHOLD:
            zero += 1
            continue
        side = positive if value > 0 else negative
        index = reference_index(value, schema)
        side[index] = side.get(index, 0) + 1
    return positive, negative, zero


@cache
def synth_metric(schema: int, multiplier: Decimal, field: str):
    """A native histogram of the synthetic gadget's `field` (latency: ints; ratio: floats), bound by
    the real config loader against the gadget's schema."""
    spec = GadgetSpec(Category.TRACE, "synth", "trace synth", TRACE_SCHEMA, lambda ctx: None)
    config = {"metrics_name": "t", "metrics": [{
        "name": "observed", "type": "histogram", "category": "trace", "gadget": "synth", "field": field,
        "labels": ["comm"], "bucket": {"type": "native", "schema": schema, "multiplier": str(multiplier)}}]}
    [metric] = load_config(yaml.safe_dump(config), GadgetCatalog({spec.key: spec})).metrics
    return metric


def native_metric(schema: int, multiplier: Decimal = Decimal(1), labels=("comm",), classic_max: int = 40):
    return bound("lat", "histogram", list(labels), field="lat",
                 native=NativeBucketing(schema, multiplier, classic_max), family="lat_seconds")


ints = st.integers(min_value=-(2 ** 63), max_value=2 ** 64 - 1)
floats = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)   # beyond 2**128 too


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(st.just("latency"), st.lists(st.lists(st.one_of(ints, st.just(0)), max_size=40),
                                                         min_size=1, max_size=4)),
                 st.tuples(st.just("ratio"), st.lists(st.lists(st.one_of(floats, st.just(0.0)), max_size=40),
                                                       min_size=1, max_size=4))),
       st.sampled_from(SCHEMAS), st.sampled_from(MULTIPLIERS))
def test_each_series_buckets_equal_prometheus_definition(drawn, schema, multiplier):
    field, batches = drawn
    aggregator = HistogramAggregator(synth_metric(schema, multiplier, field))
    row = TRACE_SCHEMA.defaults()
    for batch in batches:   # one series per batch's parity, in several batches: merges are exercised
        aggregator.ingest([{**row, "comm": f"c{i % 2}", field: v} for i, v in enumerate(batch)])
    state = {key: s.native for key, s in aggregator._series.items()}
    for comm in ("c0", "c1"):
        values = [v for batch in batches for i, v in enumerate(batch) if i % 2 == int(comm[1])]
        if not values:
            assert comm not in state
            continue
        counts = state[comm]
        assert (counts.positive, counts.negative, counts.zero) == reference(values, multiplier, schema)
        assert counts.count == len(values)
        [family] = aggregator.collect()
        [(_, native)] = [(labels, h) for labels, h in family.native if labels == {"comm": comm}]
        # `_sum`: the field's exact sum times the multiplier, rounded once when the sum is an int
        # (float values: their exact sum rounded, then multiplied)
        exact, total = sum(map(Fraction, values)), NativeBucketing(schema, multiplier).total
        if all(type(v) is int for v in values):
            assert native.sum_value == total(int(exact))
        else:
            assert native.sum_value in {total(float(exact)), total(int(exact)) if exact.denominator == 1 else None}
        assert native.count_value == len(values)


def test_text_formats_show_the_classic_buckets_count_and_sum():
    aggregator = HistogramAggregator(native_metric(3, Decimal("0.000000001"), labels=()))
    latencies = [0, 1_500_000, 1_600_000, 20_000_000, 20_000_001, 7_000_000_000]
    aggregator.ingest([{"lat": v} for v in latencies])
    [family] = text_string_to_metric_families(exposition(aggregator.collect))
    buckets = [(float(s.labels["le"]), s.value) for s in family.samples if s.name == "lat_seconds_bucket"]
    counts = aggregator._series[()].native
    assert buckets == [(b, n) for b, n in classic_buckets(counts, 3, 40)]
    values = {s.name: s.value for s in family.samples if s.name != "lat_seconds_bucket"}
    assert values == {"lat_seconds_count": 6, "lat_seconds_sum": float(Fraction(sum(latencies), 10 ** 9))}
    assert buckets[-1] == (math.inf, 6) and (ZERO_THRESHOLD, 1) in buckets


def test_classic_max_bounds_the_text_formats_buckets():
    aggregator = HistogramAggregator(native_metric(8, labels=(), classic_max=10))
    aggregator.ingest([{"lat": 1000 + 7 * i} for i in range(200)])   # 1000 to 2393: 1.3 powers of two
    [family] = text_string_to_metric_families(exposition(aggregator.collect))
    assert len([s for s in family.samples if s.name == "lat_seconds_bucket"]) <= 11
    [(_, native)] = aggregator.collect()[0].native
    assert native.schema == 8 and sum(s.length for s in native.pos_spans) > 100   # protobuf keeps them all


def test_the_series_cap_evicts_the_least_recently_updated_native_series():
    aggregator = HistogramAggregator(native_metric(3), max_series=2)
    aggregator.ingest([{"comm": "a", "lat": 5}, {"comm": "b", "lat": 6}])
    aggregator.ingest([{"comm": "a", "lat": 7}])
    aggregator.ingest([{"comm": "c", "lat": 8}])   # b moved least recently: it goes
    assert sorted(aggregator._series) == ["a", "c"]
    assert aggregator.series_expired[EVICTED] == 1
    native = dict((labels["comm"], h) for labels, h in aggregator.collect()[0].native)
    assert native["a"].count_value == 2 and native["c"].count_value == 1 and "b" not in native
    removed = aggregator.expire(aggregator.last_moved(), "container_gone")
    assert removed == 2 and aggregator.collect()[0].native == []


def test_an_int_beyond_any_float_is_observed_as_infinite():
    aggregator = HistogramAggregator(native_metric(3, labels=()))
    aggregator.ingest([{"lat": 10 ** 400}, {"lat": -(10 ** 400)}, {"lat": 5}])
    counts = aggregator._series[()].native
    assert counts.count == 3 and sum(counts.positive.values()) == 2 and sum(counts.negative.values()) == 1
    assert max(counts.positive) == bucket_index(math.inf, 3) == max(counts.negative)
    [(_, native)] = aggregator.collect()[0].native
    assert native.sum_value == 5   # the exact sum


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEMAS), st.sampled_from(MULTIPLIERS), st.data())
def test_ints_at_the_edges_of_each_bucket_are_placed_as_prometheus_defines(schema, multiplier, data):
    # Ints are placed by each bucket's largest int (docs/config.md, "Native histograms"): the ints
    # next to a bucket's bound times 1/multiplier, and those a float rounding step away, against
    # the reference.
    scale = float(multiplier)
    index = data.draw(st.integers(bucket_index(scale, schema) - 1, bucket_index(2.0 ** 64 * scale, schema) + 1))
    edge = upper_bound(index, schema) / scale
    nearby = {int(edge) + d for d in range(-2, 3)} | {int(math.nextafter(edge, side)) for side in (0, math.inf)}
    values = sorted(v for v in nearby | {2 ** 64, 2 ** 64 + 1, 1, 0} if v >= 0)
    aggregator = HistogramAggregator(native_metric(schema, multiplier, labels=()))
    aggregator.ingest([{"lat": v} for v in values])
    counts = aggregator._series[()].native
    assert (counts.positive, counts.negative, counts.zero) == reference(values, multiplier, schema)
