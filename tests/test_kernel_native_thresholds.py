"""The kernel's native histogram thresholds (docs/architecture.md, "Native histograms in the kernel"):
for drawn raws over the whole range of every integer C type, drawn schemas and multipliers, the
index found by the kernel's search over the thresholds is the bucket of Prometheus' definition:
the smallest i with |value| <= upper_bound(i), found here by a search over the bounds. The kernel
aggregator keys the rows of a program that fell back to user space the same way."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from igcore.config import bind_config
from igcore.kernel import place
from igcore.kernel.native import max_magnitude, thresholds
from igcore.nativehist import SCHEMAS, NativeBucketing, upper_bound
from igcore.plugins import load_catalog
from tests.fixtures.native_reference import reference_counts, reference_index

CTYPES = [f"{sign}{bits}" for sign in "us" for bits in (8, 16, 32, 64)]
MULTIPLIERS = ["1", "10", "1000", "1000000000", "0.1", "0.001", "0.000000001", "0.37", "3", "7.25", "1e-40", "1e280"]   # values stay finite


_tables: dict = {}


def table(schema: int, multiplier: str, ctype: str):
    key = (schema, multiplier, ctype)
    if key not in _tables:
        _tables[key] = thresholds(NativeBucketing(schema, Decimal(multiplier)), ctype)
    return _tables[key]


@st.composite
def raw_of(draw, ctype: str) -> int:
    """A raw of the C type: anywhere in its range, at a power of two or next to one."""
    top = max_magnitude(ctype)
    signed = ctype[0] == "s"
    low = -top if signed else 0
    high = top - 1 if signed else top
    bits = draw(st.integers(0, int(ctype[1:]) - (1 if signed else 0)))
    near = draw(st.sampled_from([-1, 0, 1])) + (1 << bits) if bits else 0
    raw = draw(st.one_of(st.integers(low, high), st.just(near)))
    raw = -raw if signed and draw(st.booleans()) else raw
    return min(max(raw, low), high)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(SCHEMAS), st.sampled_from(MULTIPLIERS), st.sampled_from(CTYPES), st.data())
def test_the_thresholds_give_prometheus_bucket(schema, multiplier, ctype, data):
    raw = data.draw(raw_of(ctype))
    value = float(raw) * float(Decimal(multiplier))   # NativeBucketing.value
    assert table(schema, multiplier, ctype).index(abs(raw)) == reference_index(value, schema)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(SCHEMAS), st.sampled_from(MULTIPLIERS), st.sampled_from(CTYPES))
def test_every_threshold_is_the_last_raw_of_its_index(schema, multiplier, ctype):
    """Each threshold's raw is in a lower bucket than the raw after it: the index changes there."""
    found = table(schema, multiplier, ctype)
    m = float(Decimal(multiplier))
    assert reference_index(found.zero_max * m, schema) is None
    if found.zero_max < max_magnitude(ctype):
        assert reference_index((found.zero_max + 1) * m, schema) is not None
    for row in found.rows:
        if row is None:
            continue
        assert len(row.thresholds) <= 1 << schema
        for t in row.thresholds:
            assert reference_index(float(t) * m, schema) < reference_index(float(t + 1) * m, schema)


def test_multiplier_one_at_schema_zero_is_the_bit_position():
    found = table(0, "1", "u64")
    assert found.zero_max == 0
    for k in (0, 1, 17, 52, 53, 63):
        # 2**k is the top of bucket k; 2**k + 1 .. 2**(k+1) is bucket k + 1 (as far as floats tell)
        assert found.index(1 << k) == k
        if k < 53:
            assert found.index((1 << k) + 1) == k + 1
    assert not math.isinf(upper_bound(64, 0))


CATALOG = load_catalog()
SIGNAL = CATALOG.get("trace", "signal")


@pytest.mark.skipif(SIGNAL is None, reason="ig-gadget-signal is not installed")
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(SCHEMAS), st.sampled_from(MULTIPLIERS[:-1]),
       st.lists(st.integers(-(1 << 31), (1 << 31) - 1), min_size=1, max_size=40))
def test_a_kernel_aggregator_in_user_space_keeps_the_same_buckets(schema, multiplier, raws):
    """A native histogram whose program fell back to user space counts rows into the buckets the
    kernel keys (native.bucket_word): the reference's NativeCounts, sum included."""
    config = {"metrics_name": "t", "metrics": [
        {"name": "n", "type": "histogram", "category": "trace", "gadget": "signal", "field": "tpid",
         "bucket": {"type": "native", "schema": schema, "multiplier": multiplier}}]}
    (bound,) = bind_config(config, CATALOG).metrics
    aggregator = bound.metric_type.kernel(bound, place(bound), max_series=10)
    aggregator.fall_back("test")
    aggregator.ingest([{"tpid": raw} for raw in raws])
    ((_, counts),) = aggregator.native_counts()
    assert counts == reference_counts(raws, schema, multiplier)
