"""Aggregators and the snapshot cache, through a real CollectorRegistry and the text exposition."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from prometheus_client import CollectorRegistry, generate_latest

from igcore.metrics.aggregators import CounterAggregator, GaugeAggregator, HistogramAggregator
from igcore.metrics.snapshots import SnapshotCache


@dataclass(frozen=True)
class Cfg:
    name: str
    type: str


@dataclass(frozen=True)
class Bound:
    config: Cfg
    label_columns: tuple = ()
    label_names: tuple = ()
    field_column: str | None = None
    predicate: Callable | None = None
    family_name: str = ""
    bounds: tuple | None = None
    description: str = "help"


def bound(name, type_, labels=(), **kw) -> Bound:
    return Bound(Cfg(name, type_), tuple(labels), tuple(l.replace(".", "_") for l in labels), family_name=name, **kw)


class Wrap:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families()


def exposition(families) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Wrap(families))
    return generate_latest(registry).decode()


def rows(*items):
    return [dict({"comm": "", "pid": 0, "k8s.pod": "", "lat": 0, "ok": False}, **i) for i in items]


def test_counter_counts_matching_rows_per_label_set():
    agg = CounterAggregator(bound("execs", "counter", ["comm", "k8s.pod"], predicate=lambda r: r["pid"] > 1))
    agg.ingest(rows({"comm": "cat", "pid": 2}, {"comm": "cat", "pid": 3}, {"comm": "cat", "pid": 1}, {"comm": "sh", "pid": 9}))
    agg.ingest(rows({"comm": "cat", "pid": 5, "k8s.pod": "web"}))
    text = exposition(agg.collect)
    assert 'execs_total{comm="cat",k8s_pod=""} 2.0' in text
    assert 'execs_total{comm="sh",k8s_pod=""} 1.0' in text
    assert 'execs_total{comm="cat",k8s_pod="web"} 1.0' in text


def test_counter_with_field_one_label_and_no_label():
    one = CounterAggregator(bound("lat", "counter", ["comm"], field_column="lat"))
    none = CounterAggregator(bound("all", "counter"))
    batch = rows({"comm": "cat", "lat": 5}, {"comm": "cat", "lat": 7}, {"comm": "ls", "lat": 1})
    one.ingest(batch)
    none.ingest(batch)
    assert 'lat_total{comm="cat"} 12.0' in exposition(one.collect)
    assert "all_total 3.0" in exposition(none.collect)


def test_label_values_are_text_for_numbers_and_bools():
    agg = CounterAggregator(bound("n", "counter", ["pid", "ok"]))
    agg.ingest(rows({"pid": 42, "ok": True}))
    assert 'n_total{ok="true",pid="42"} 1.0' in exposition(agg.collect)


def test_series_cap_drops_new_label_sets_and_warns_once(caplog):
    agg = CounterAggregator(bound("capped", "counter", ["pid"]), max_series=2)
    with caplog.at_level(logging.WARNING, logger="igcore.metrics"):
        agg.ingest(rows({"pid": 1}, {"pid": 2}, {"pid": 3}))
        agg.ingest(rows({"pid": 4}, {"pid": 1}))
    text = exposition(agg.collect)
    assert 'capped_total{pid="1"} 2.0' in text and 'capped_total{pid="2"} 1.0' in text
    assert 'pid="3"' not in text and 'pid="4"' not in text
    assert agg.series_dropped == 2
    assert len([r for r in caplog.records if "max-series" in r.getMessage()]) == 1


def test_histogram_buckets_are_upper_inclusive_and_cumulative():
    agg = HistogramAggregator(bound("lat_ns", "histogram", ["comm"], field_column="lat", bounds=(10.0, 20.0, 40.0)))
    agg.ingest(rows(*({"comm": "a", "lat": v} for v in (0, 10, 11, 20, 40, 41, 1000))))
    text = exposition(agg.collect)
    assert 'lat_ns_bucket{comm="a",le="10.0"} 2.0' in text
    assert 'lat_ns_bucket{comm="a",le="20.0"} 4.0' in text
    assert 'lat_ns_bucket{comm="a",le="40.0"} 5.0' in text
    assert 'lat_ns_bucket{comm="a",le="+Inf"} 7.0' in text
    assert 'lat_ns_count{comm="a"} 7.0' in text
    assert 'lat_ns_sum{comm="a"} 1122.0' in text


def test_histogram_small_bounds_keep_their_text():
    agg = HistogramAggregator(bound("h", "histogram", field_column="lat", bounds=(0.0001, 0.0002, 0.0004)))
    agg.ingest(rows({"lat": 0.0003}))
    text = exposition(agg.collect)
    assert 'h_bucket{le="0.0002"} 0.0' in text and 'h_bucket{le="0.0004"} 1.0' in text


def test_gauge_counts_or_sums_rows_of_the_snapshot():
    count = GaugeAggregator(bound("procs", "gauge", ["comm"], predicate=lambda r: r["comm"] != "init"))
    total = GaugeAggregator(bound("threads", "gauge", field_column="pid"))
    snapshot = rows({"comm": "sh", "pid": 3}, {"comm": "sh", "pid": 4}, {"comm": "init", "pid": 1})
    text = exposition(lambda: count.collect_from(snapshot) + total.collect_from(snapshot))
    assert 'procs{comm="sh"} 2.0' in text and 'comm="init"' not in text
    assert "threads 8.0" in text
    assert 'comm="sh"' not in exposition(lambda: count.collect_from(rows({"comm": "ls"})))


def test_ingest_while_collecting_loses_nothing():
    agg = CounterAggregator(bound("c", "counter", ["pid"]))
    batch = rows(*({"pid": i % 10} for i in range(1000)))
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            agg.collect()

    t = threading.Thread(target=scrape)
    t.start()
    for _ in range(200):
        agg.ingest(batch)
    stop.set()
    t.join()
    text = exposition(agg.collect)
    assert all(f'c_total{{pid="{i}"}} 20000.0' in text for i in range(10))


def test_snapshot_cache_single_flight_for_ten_concurrent_callers():
    calls = []

    def take():
        calls.append(1)
        time.sleep(0.3)
        return [{"n": len(calls)}]

    cache = SnapshotCache(take, min_interval=0)
    barrier = threading.Barrier(10)
    results = []

    def scrape():
        barrier.wait()
        results.append(cache.rows())

    threads = [threading.Thread(target=scrape) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and cache.snapshots_taken == 1
    assert all(r == [{"n": 1}] for r in results)


def test_snapshot_cache_reuses_within_min_interval_and_retries_after_errors():
    now = [100.0]
    outcomes = [[{"a": 1}], RuntimeError("gone"), [{"a": 2}]]

    def take():
        out = outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out

    cache = SnapshotCache(take, min_interval=1.0, clock=lambda: now[0])
    assert cache.rows() == [{"a": 1}]
    now[0] += 0.5
    assert cache.rows() == [{"a": 1}]      # reused
    now[0] += 1.0
    try:
        cache.rows()
        raise AssertionError("expected the error")
    except RuntimeError:
        pass
    assert cache.errors == 1
    assert cache.rows() == [{"a": 2}]      # retried
    assert cache.snapshots_taken == 2
