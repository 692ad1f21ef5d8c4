"""Prometheus names, label values and histogram bucket bounds."""

from __future__ import annotations

import enum
from decimal import Decimal

import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from igcore.buckets import bucket_bounds
from igcore.metrictypes import METRIC_TYPES
from igcore.naming import family_name, label_value, sanitize_label_name, sanitize_metric_name


class Proto(enum.IntEnum):
    TCP = 6


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("executed_processes", "executed_processes"),
        ("ns:sub_system", "ns:sub_system"),
        ("dns-latency.p99", "dns_latency_p99"),
        ("héllo world", "h_llo_world"),
        ("9lives", "_9lives"),
        ("a9", "a9"),
    ],
)
def test_sanitize_metric_name(name, expected):
    assert sanitize_metric_name(name) == expected


@pytest.mark.parametrize(
    "column, expected",
    [
        ("k8s.namespace", "k8s_namespace"),
        ("runtime.containerImageName", "runtime_containerImageName"),
        ("src.addr", "src_addr"),
        ("a:b", "a_b"),  # ':' is allowed in metric names, not in label names
        ("comm", "comm"),
        ("4tuple", "_4tuple"),
    ],
)
def test_sanitize_label_name(column, expected):
    assert sanitize_label_name(column) == expected


@pytest.mark.parametrize(
    "name, type, unit, expected",
    [
        ("executed_processes", "counter", None, "executed_processes"),
        ("executed_processes_total", "counter", None, "executed_processes"),
        ("a.b_total", "counter", None, "a_b"),
        ("total", "counter", None, "total"),
        ("processes", "gauge", None, "processes"),
        ("processes_total", "gauge", None, "processes_total"),
        ("dns_latency", "histogram", "ns", "dns_latency_nanoseconds"),
        ("dns_latency", "histogram", "us", "dns_latency_microseconds"),
        ("dns_latency", "histogram", "ms", "dns_latency_milliseconds"),
        ("dns_latency", "histogram", "s", "dns_latency_seconds"),
        ("size", "histogram", "By", "size_bytes"),
        ("size", "histogram", None, "size"),
        ("latency_seconds", "histogram", "s", "latency_seconds"),
        ("latency_nanoseconds", "histogram", "ns", "latency_nanoseconds"),
        ("latency_seconds", "histogram", "ms", "latency_seconds_milliseconds"),
        ("dns.latency", "histogram", "ns", "dns_latency_nanoseconds"),
    ],
)
def test_family_name(name, type, unit, expected):
    assert family_name(name, METRIC_TYPES[type], unit) == expected


def test_family_name_rejects_unknown_unit():
    with pytest.raises(ValueError, match="unknown unit"):
        family_name("x", METRIC_TYPES["histogram"], "hours")


def test_family_names_work_with_prometheus_client():
    # The library appends _total to counters itself: no doubling either way.
    counter = CounterMetricFamily(family_name("x_total", METRIC_TYPES["counter"]), "h", value=1)
    assert [s.name for s in counter.samples] == ["x_total"]
    gauge = GaugeMetricFamily(family_name("g", METRIC_TYPES["gauge"]), "h", value=1)
    assert [s.name for s in gauge.samples] == ["g"]
    hist = HistogramMetricFamily(family_name("lat", METRIC_TYPES["histogram"], "ns"), "h", buckets=[("+Inf", 1)],
                                 sum_value=2)
    assert {s.name for s in hist.samples} == {"lat_nanoseconds_bucket", "lat_nanoseconds_count", "lat_nanoseconds_sum"}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("default", "default"),
        ("", ""),
        (None, ""),
        (0, "0"),
        (-12, "-12"),
        (2**64 - 1, "18446744073709551615"),
        (True, "true"),
        (False, "false"),
        (1.5, "1.5"),
        (1e-05, "0.00001"),
        (1e20, "100000000000000000000"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
        (b"caf\xc3\xa9", "café"),
        (bytearray(b"\xff"), "\ufffd"),   # bytes that are not UTF-8 read as U+FFFD
        (Proto.TCP, "6"),                 # an int subclass: the number, not the member's name
    ],
)
def test_label_value(value, expected):
    assert label_value(value) == expected


# --- buckets -----------------------------------------------------------------------------------


def test_exp2_small_multiplier_is_exact():
    assert bucket_bounds("exp2", 0, 10, 0.0001) == [
        0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128, 0.0256, 0.0512,
    ]  # fmt: skip


def test_exp2_grafana_example():
    bounds = bucket_bounds("exp2", 0, 15, 100000)
    assert len(bounds) == 15
    assert bounds[0] == 1e5
    assert bounds[-1] == 1.6384e9
    assert bounds == [100000.0 * 2**i for i in range(15)]


def test_linear_is_exact():
    assert bucket_bounds("linear", 1, 6, 0.0001) == [0.0001, 0.0002, 0.0003, 0.0004, 0.0005]
    assert 3 * 0.0001 != 0.0003  # what plain float arithmetic would have produced
    assert bucket_bounds("linear", 0, 4, 0.1) == [0.0, 0.1, 0.2, 0.3]


def test_linear_from_zero_has_a_zero_bound():
    assert bucket_bounds("linear", 0, 3) == [0.0, 1.0, 2.0]


def test_multiplier_defaults_to_one_and_accepts_written_forms():
    assert bucket_bounds("exp2", 0, 4) == [1.0, 2.0, 4.0, 8.0]
    assert bucket_bounds("exp2", 2, 4, "1e3") == [4000.0, 8000.0]
    assert bucket_bounds("linear", 1, 3, Decimal("0.25")) == [0.25, 0.5]


def test_min_is_included_max_excluded():
    assert bucket_bounds("exp2", 3, 5) == [8.0, 16.0]
    assert bucket_bounds("linear", 3, 4, 10) == [30.0]


@pytest.mark.parametrize(
    "args, phrase",
    [
        (("log", 0, 10), "bucket type 'log' is not exp2 or linear"),
        (("exp2", 5, 5), "bucket max (5) must be greater than min (5)"),
        (("linear", 5, 2), "bucket max (2) must be greater than min (5)"),
        (("exp2", 0, 10, 0), "multiplier must be a positive number"),
        (("exp2", 0, 10, -1), "multiplier must be a positive number"),
        (("exp2", 0, 10, "abc"), "multiplier must be a number"),
        (("exp2", 0, 10, True), "multiplier must be a number"),
        (("exp2", 0, 2000), "exceed the range of a float"),
        (("linear", 0, 10**9), "more than 10000 buckets"),
    ],
)
def test_bucket_errors(args, phrase):
    with pytest.raises(ValueError) as info:
        bucket_bounds(*args)
    assert phrase in str(info.value)
