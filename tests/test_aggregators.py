"""Aggregators through a real CollectorRegistry: the exact text Prometheus would scrape."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from prometheus_client.utils import floatToGoString

from igcore.metrics.aggregators import CounterAggregator, GaugeAggregator, HistogramAggregator, TraceAggregator
from igcore.metrics.lifecycle import EVICTED
from tests.fixtures.aggregation import bound, exposition, samples


BLANK = {"comm": "", "pid": 0, "k8s.namespace": "", "k8s.pod": "", "lat": 0, "ok": False}


def rows(*items: dict) -> list[dict]:
    return [{**BLANK, **item} for item in items]


# --- counters ------------------------------------------------------------------------------------


def test_counter_three_labels_with_selector_full_exposition():
    agg = CounterAggregator(bound("execs", "counter", ["k8s.namespace", "k8s.pod", "comm"],
                                  predicate=lambda r: r["comm"] == "cat"))
    agg.ingest(rows({"comm": "cat", "k8s.namespace": "ns", "k8s.pod": "a"},
                    {"comm": "cat", "k8s.namespace": "ns", "k8s.pod": "a"},
                    {"comm": "sh", "k8s.namespace": "ns", "k8s.pod": "a"},
                    {"comm": "cat"}))
    agg.ingest(rows({"comm": "cat", "k8s.namespace": "ns", "k8s.pod": "a"}, {"comm": "ls"}))
    assert exposition(agg.collect) == (
        "# HELP execs_total help for execs\n"
        "# TYPE execs_total counter\n"
        'execs_total{comm="cat",k8s_namespace="ns",k8s_pod="a"} 3.0\n'
        'execs_total{comm="cat",k8s_namespace="",k8s_pod=""} 1.0\n'
    )
    assert agg.series_count == 2 and agg.series_dropped == 0


def test_counter_one_label_and_no_label():
    one = CounterAggregator(bound("by_comm", "counter", ["comm"]))
    none = CounterAggregator(bound("all", "counter", predicate=lambda r: r["pid"] > 1))
    batch = rows({"comm": "cat", "pid": 5}, {"comm": "cat", "pid": 1}, {"comm": "ls", "pid": 7})
    for agg in (one, none):
        agg.ingest(batch)
        agg.ingest(batch[:1])
    assert samples(exposition(one.collect)) == ['by_comm_total{comm="cat"} 3.0', 'by_comm_total{comm="ls"} 1.0']
    assert samples(exposition(none.collect)) == ["all_total 3.0"]


def test_counter_without_any_match_has_no_series():
    agg = CounterAggregator(bound("none", "counter", ["comm"], predicate=lambda r: False))
    agg.ingest(rows({"comm": "cat"}))
    agg.ingest([])
    assert samples(exposition(agg.collect)) == []
    assert agg.series_count == 0


def test_counter_with_int_field_stays_int():
    agg = CounterAggregator(bound("bytes", "counter", ["comm"], field="lat"))
    agg.ingest(rows({"comm": "cat", "lat": 5}, {"comm": "cat", "lat": 7}, {"comm": "ls", "lat": 1}))
    agg.ingest(rows({"comm": "cat", "lat": 2**53}, {"comm": "cat", "lat": 1}))
    # exactly 2**53 + 13; a float accumulator would have lost the odd 1s
    ((key, state), _) = agg._series.items()
    integer, parts = state.integer, state.parts
    assert key == "cat" and integer == 2**53 + 13 and type(integer) is int and parts == ()
    assert f'bytes_total{{comm="cat"}} {floatToGoString(2**53 + 13)}' in exposition(agg.collect)


def test_counter_with_float_field_is_exact_across_batches():
    agg = CounterAggregator(bound("secs", "counter", field="lat"))
    for _ in range(10):
        agg.ingest(rows({"lat": 0.1}))  # a running float sum would end at 0.9999999999999999
    assert samples(exposition(agg.collect)) == ["secs_total 1.0"]


def test_counter_with_mixed_int_and_float_field():
    agg = CounterAggregator(bound("mixed", "counter", field="lat"))
    agg.ingest(rows({"lat": 2**53}, {"lat": 0.5}, {"lat": 0.5}, {"lat": 1}))
    assert samples(exposition(agg.collect)) == [f"mixed_total {floatToGoString(2**53 + 2)}"]


def test_label_values_are_decimal_text_bools_and_empty():
    agg = CounterAggregator(bound("n", "counter", ["pid", "ok", "comm", "lat"]))
    agg.ingest(rows({"pid": 42, "ok": True, "comm": "", "lat": 0.25}, {"pid": -1, "ok": False, "comm": "a b"}))
    assert samples(exposition(agg.collect)) == [
        'n_total{comm="",lat="0.25",ok="true",pid="42"} 1.0',
        'n_total{comm="a b",lat="0",ok="false",pid="-1"} 1.0',
    ]


def test_family_name_is_used_as_given():
    agg = CounterAggregator(bound("x.y_total", "counter", family="x_y"))
    agg.ingest(rows({}))
    assert "# TYPE x_y_total counter\nx_y_total 1.0\n" in exposition(agg.collect)


# --- the series cap ------------------------------------------------------------------------------


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "igcore.metrics" and r.levelno == logging.WARNING]


def test_series_cap_evicts_the_series_updated_least_recently_and_warns_once(caplog):
    agg = CounterAggregator(bound("capped", "counter", ["pid"]), max_series=3)
    with caplog.at_level(logging.WARNING, logger="igcore.metrics"):
        agg.ingest(rows({"pid": 1}, {"pid": 2}, {"pid": 3}))   # least recently updated first: 1 2 3
        agg.ingest(rows({"pid": 1}))                           # 2 3 1
        agg.ingest(rows({"pid": 4}, {"pid": 4}))               # 4 evicts 2: 3 1 4
        # a batch's kept series are updated before its new ones get a place: 3 stays, 1 goes
        agg.ingest(rows({"pid": 5}, {"pid": 3}))               # 4 3 5
    assert samples(exposition(agg.collect)) == [
        'capped_total{pid="3"} 2.0', 'capped_total{pid="4"} 2.0', 'capped_total{pid="5"} 1.0']
    assert agg.series_expired[EVICTED] == 2
    assert agg.series_dropped == 0 and agg.series_count == 3
    messages = warnings_of(caplog)
    assert len(messages) == 1 and "capped" in messages[0] and "evicts" in messages[0]

    # an evicted label set that comes back is a new series: it starts from 0 (a counter reset)
    agg.ingest(rows({"pid": 2}))   # evicts 4
    assert samples(exposition(agg.collect)) == [
        'capped_total{pid="3"} 2.0', 'capped_total{pid="5"} 1.0', 'capped_total{pid="2"} 1.0']
    assert agg.series_expired[EVICTED] == 3


def test_series_cap_more_new_label_sets_in_one_batch_than_the_cap():
    agg = CounterAggregator(bound("capped", "counter", ["pid"]), max_series=2)
    agg.ingest(rows({"pid": 1}, {"pid": 2}, {"pid": 3}, {"pid": 3}, {"pid": 4}))
    assert samples(exposition(agg.collect)) == ['capped_total{pid="3"} 2.0', 'capped_total{pid="4"} 1.0']
    assert agg.series_expired[EVICTED] == 2 and agg.series_count == 2


def test_histogram_series_cap_evicts(caplog):
    agg = HistogramAggregator(bound("h", "histogram", ["comm"], field="lat", bounds=(10.0,)), max_series=2)
    with caplog.at_level(logging.WARNING, logger="igcore.metrics"):
        agg.ingest(rows({"comm": "a", "lat": 1}, {"comm": "b", "lat": 2}, {"comm": "b", "lat": 3}))
        agg.ingest(rows({"comm": "a", "lat": 20}))
        agg.ingest(rows({"comm": "c", "lat": 2}))   # b moved least recently
    text = exposition(agg.collect)
    assert 'comm="b"' not in text
    assert 'h_count{comm="a"} 2.0' in text and 'h_sum{comm="a"} 21.0' in text
    assert 'h_bucket{comm="c",le="10.0"} 1.0' in text and 'h_sum{comm="c"} 2.0' in text
    assert agg.series_expired[EVICTED] == 1 and agg.series_dropped == 0 and len(warnings_of(caplog)) == 1


def test_gauge_series_cap_per_snapshot(caplog):
    agg = GaugeAggregator(bound("g", "gauge", ["comm"]), max_series=1)
    snapshot = rows({"comm": "a"}, {"comm": "b"}, {"comm": "b"})
    with caplog.at_level(logging.WARNING, logger="igcore.metrics"):
        first = samples(exposition(lambda: agg.collect_from(snapshot)))
        second = samples(exposition(lambda: agg.collect_from(snapshot)))
    assert first == second == ['g{comm="a"} 1.0']
    assert agg.series_dropped == 4 and agg.series_count == 1 and len(warnings_of(caplog)) == 1


# --- histograms ----------------------------------------------------------------------------------


def test_histogram_buckets_upper_inclusive_cumulative_full_exposition():
    agg = HistogramAggregator(bound("lat_nanoseconds", "histogram", ["comm"], field="lat",
                                    bounds=(100000.0, 200000.0, 400000.0)))
    agg.ingest(rows(*({"comm": "a", "lat": v} for v in (0, 100000, 100001, 200000, 400000, 400001))))
    agg.ingest(rows({"comm": "a", "lat": 10**12}, {"comm": "b", "lat": 150000}))
    assert exposition(agg.collect) == (
        "# HELP lat_nanoseconds help for lat_nanoseconds\n"
        "# TYPE lat_nanoseconds histogram\n"
        'lat_nanoseconds_bucket{comm="a",le="100000.0"} 2.0\n'
        'lat_nanoseconds_bucket{comm="a",le="200000.0"} 4.0\n'
        'lat_nanoseconds_bucket{comm="a",le="400000.0"} 5.0\n'
        'lat_nanoseconds_bucket{comm="a",le="+Inf"} 7.0\n'
        'lat_nanoseconds_count{comm="a"} 7.0\n'
        'lat_nanoseconds_sum{comm="a"} 1.000001200002e+12\n'
        'lat_nanoseconds_bucket{comm="b",le="100000.0"} 0.0\n'
        'lat_nanoseconds_bucket{comm="b",le="200000.0"} 1.0\n'
        'lat_nanoseconds_bucket{comm="b",le="400000.0"} 1.0\n'
        'lat_nanoseconds_bucket{comm="b",le="+Inf"} 1.0\n'
        'lat_nanoseconds_count{comm="b"} 1.0\n'
        'lat_nanoseconds_sum{comm="b"} 150000.0\n'
    )


def test_histogram_go_style_le_for_large_bounds():
    bounds = tuple(float(2**i * 100000) for i in range(15))
    agg = HistogramAggregator(bound("h", "histogram", field="lat", bounds=bounds))
    agg.ingest(rows({"lat": 1_638_400_000}, {"lat": 1_638_400_001}))
    lines = samples(exposition(agg.collect))
    assert lines[0] == 'h_bucket{le="100000.0"} 0.0'
    assert lines[14] == 'h_bucket{le="1.6384e+09"} 1.0'
    assert lines[15:] == ['h_bucket{le="+Inf"} 2.0', "h_count 2.0", "h_sum 3.276800001e+09"]


def test_histogram_float_values_small_bounds_and_selector():
    agg = HistogramAggregator(bound("h", "histogram", ["k8s.pod"], field="lat", bounds=(0.0001, 0.0002, 0.0004),
                                    predicate=lambda r: r["ok"]))
    agg.ingest(rows({"k8s.pod": "p", "lat": 0.0002, "ok": True}, {"k8s.pod": "p", "lat": 0.0003, "ok": True},
                    {"k8s.pod": "p", "lat": 0.00001, "ok": False}))
    assert samples(exposition(agg.collect)) == [
        'h_bucket{k8s_pod="p",le="0.0001"} 0.0',
        'h_bucket{k8s_pod="p",le="0.0002"} 1.0',
        'h_bucket{k8s_pod="p",le="0.0004"} 2.0',
        'h_bucket{k8s_pod="p",le="+Inf"} 2.0',
        'h_count{k8s_pod="p"} 2.0',
        'h_sum{k8s_pod="p"} 0.0005',
    ]


def test_histogram_sum_is_exact():
    ints = HistogramAggregator(bound("i", "histogram", field="lat", bounds=(1.0,)))
    ints.ingest(rows({"lat": 2**53}, {"lat": 1}, {"lat": 1}))  # float accumulation: 2**53
    floats = HistogramAggregator(bound("f", "histogram", field="lat", bounds=(1.0,)))
    for _ in range(10):
        floats.ingest(rows({"lat": 0.1}))
    floats.ingest(rows({"lat": 1e100}, {"lat": 1.0}, {"lat": -1e100}))  # parts far apart cancel exactly
    assert f"i_sum {floatToGoString(2**53 + 2)}" in samples(exposition(ints.collect))
    assert "f_sum 2.0" in samples(exposition(floats.collect))


# --- gauges --------------------------------------------------------------------------------------


def test_gauge_counts_or_sums_matching_rows_of_each_snapshot():
    count = GaugeAggregator(bound("procs", "gauge", ["comm"], predicate=lambda r: r["comm"] != "init"))
    total = GaugeAggregator(bound("threads", "gauge", field="pid"))
    none = GaugeAggregator(bound("nothing", "gauge", ["comm"], predicate=lambda r: False))
    snapshot = rows({"comm": "sh", "pid": 3}, {"comm": "sh", "pid": 4}, {"comm": "init", "pid": 1},
                    {"comm": "ls", "pid": 10})
    text = exposition(lambda: count.collect_from(snapshot) + total.collect_from(snapshot) + none.collect_from(snapshot))
    assert text == (
        "# HELP procs help for procs\n"
        "# TYPE procs gauge\n"
        'procs{comm="sh"} 2.0\n'
        'procs{comm="ls"} 1.0\n'
        "# HELP threads help for threads\n"
        "# TYPE threads gauge\n"
        "threads 18.0\n"
        "# HELP nothing help for nothing\n"
        "# TYPE nothing gauge\n"
    )
    # series follow the latest snapshot only
    assert samples(exposition(lambda: count.collect_from(rows({"comm": "cat"})))) == ['procs{comm="cat"} 1.0']
    assert samples(exposition(lambda: total.collect_from([]))) == []
    assert not hasattr(count, "ingest")  # the engine feeds trace aggregators by that name


def test_gauge_sum_of_field_per_label_set():
    agg = GaugeAggregator(bound("threads", "gauge", ["comm", "ok"], field="lat"))
    snapshot = rows({"comm": "a", "lat": 2}, {"comm": "a", "lat": 3}, {"comm": "a", "lat": 4, "ok": True})
    assert samples(exposition(lambda: agg.collect_from(snapshot))) == [
        'threads{comm="a",ok="false"} 5.0', 'threads{comm="a",ok="true"} 4.0']


# --- threads -------------------------------------------------------------------------------------


@pytest.fixture
def tiny_switch_interval():
    """Threads switch every microsecond: an unlocked read-modify-write of the state then races."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("kind", ["counter", "histogram"])
def test_ingest_while_collecting_loses_nothing(kind, tiny_switch_interval):
    # A float field: its exact sum is merged in several steps, which only the lock keeps whole.
    if kind == "counter":
        agg: TraceAggregator = CounterAggregator(bound("c", "counter", ["pid"], field="lat"))
    else:
        agg = HistogramAggregator(bound("c", "histogram", ["pid"], field="lat", bounds=(1.0, 2.0)))
    batch = rows(*({"pid": i % 10, "lat": (i % 3) + 0.5} for i in range(100)))
    stop = threading.Event()
    scrapes = []

    def scrape():
        while not stop.is_set():
            scrapes.append(exposition(agg.collect))

    feeders = [threading.Thread(target=lambda: [agg.ingest(batch) for _ in range(300)]) for _ in range(4)]
    scraper = threading.Thread(target=scrape)
    scraper.start()
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    stop.set()
    scraper.join()
    assert scrapes
    text = exposition(agg.collect)
    per_pid = [sum((i % 3) + 0.5 for i in range(pid, 100, 10)) * 1200 for pid in range(10)]
    for pid in range(10):
        if kind == "counter":
            assert f'c_total{{pid="{pid}"}} {per_pid[pid]}' in text, text
        else:
            assert f'c_count{{pid="{pid}"}} 12000.0' in text, text
            assert f'c_sum{{pid="{pid}"}} {per_pid[pid]}' in text, text


def test_a_label_value_that_is_not_utf8_does_not_fail_the_scrape():
    # A plugin's or a runtime's JSON can decode to a lone surrogate, which UTF-8 cannot encode:
    # the scrape carries it as `?` rather than failing for every series.
    agg = CounterAggregator(bound("by_comm", "counter", ["comm"]))
    agg.ingest(rows({"comm": "a\ud800b"}, {"comm": "ok"}))
    assert samples(exposition(agg.collect)) == ['by_comm_total{comm="a?b"} 1.0', 'by_comm_total{comm="ok"} 1.0']
