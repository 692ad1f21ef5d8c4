"""Exemplars (docs/config.md, Exemplars): what they name, the 128-character limit, hostile text,
buckets, eviction; read back through prometheus_client's OpenMetrics encoder and parser."""

from __future__ import annotations

from ig_gadget_synthetic.plugin import TRACE_SCHEMA
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from igcore.columns import Column, Kind, Schema
from igcore.metrics.aggregators import CounterAggregator, HistogramAggregator
from igcore.metrics.exemplars import LIMIT, ExemplarColumns, fit
from igcore.nativehist import NativeBucketing
from tests.fixtures.aggregation import Wrap, bound

# The synthetic gadget's columns, with an event time as the shipped gadgets have one.
TIMED = Schema((*TRACE_SCHEMA.columns, Column("timestamp", Kind.INT, "ns since the Unix epoch")))
BLANK = {c.name: c.kind.default() for c in TIMED}
T0 = 1_764_000_000_123_456_789


def rows(*items: dict) -> list[dict]:
    return [{**BLANK, **item} for item in items]


def with_exemplars(aggregator, schema: Schema = TIMED):
    aggregator.exemplars = ExemplarColumns(schema)
    return aggregator


def openmetrics(aggregator) -> dict[tuple[str, tuple], object]:
    """(sample name, sorted labels) -> the sample's exemplar, as the OpenMetrics encoder gets them;
    the encoder must write them (prometheus_client's own parser cannot read an escaped quote in an
    exemplar, so the text is checked by a real Prometheus in test_exemplars_prometheus.py)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Wrap(aggregator.collect))
    generate_latest(registry)
    return {(s.name, tuple(sorted(s.labels.items()))): s.exemplar for family in aggregator.collect()
            for s in family.samples}


def encoded(aggregator) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Wrap(aggregator.collect))
    return generate_latest(registry).decode()


def test_a_counter_series_names_its_latest_event_with_the_events_time():
    agg = with_exemplars(CounterAggregator(bound("execs", "counter", ["comm"])))
    agg.ingest(rows({"comm": "cat", "pid": 10, "timestamp": T0, "k8s.namespace": "ns", "k8s.pod": "p",
                     "k8s.container": "c"},
                    {"comm": "cat", "pid": 11, "timestamp": T0 + 1_000_000_000, "k8s.namespace": "ns",
                     "k8s.pod": "p", "k8s.container": "c"},
                    {"comm": "ls", "pid": 12, "timestamp": T0}))
    agg.ingest(rows({"comm": "ls", "pid": 13, "timestamp": T0 + 2_000_000_000}))
    got = openmetrics(agg)
    cat = got[("execs_total", (("comm", "cat"),))]
    assert cat.labels == {"pid": "11", "comm": "cat", "k8s_namespace": "ns", "k8s_pod": "p", "k8s_container": "c"}
    assert cat.value == 1 and abs(float(cat.timestamp) - (T0 / 1e9 + 1)) < 1e-3
    ls = got[("execs_total", (("comm", "ls"),))]
    assert ls.labels == {"pid": "13", "comm": "ls"}   # a host process: no container labels
    assert abs(float(ls.timestamp) - (T0 / 1e9 + 2)) < 1e-3


def test_a_counter_of_a_field_gives_the_fields_value_and_no_labels_is_one_series():
    agg = with_exemplars(CounterAggregator(bound("lat", "counter", field="latency")))
    agg.ingest(rows({"comm": "a", "pid": 1, "latency": 7}, {"comm": "b", "pid": 2, "latency": 40}))
    exemplar = openmetrics(agg)[("lat_total", ())]
    assert exemplar.labels == {"pid": "2", "comm": "b"} and exemplar.value == 40


def test_each_bucket_of_a_histogram_has_its_own_latest_event():
    agg = with_exemplars(HistogramAggregator(bound("lat", "histogram", ["comm"], field="latency",
                                                   bounds=(10.0, 100.0))))
    agg.ingest(rows({"comm": "cat", "pid": 1, "latency": 5}, {"comm": "cat", "pid": 2, "latency": 50},
                    {"comm": "cat", "pid": 3, "latency": 8}))
    agg.ingest(rows({"comm": "cat", "pid": 4, "latency": 500}))
    got = openmetrics(agg)
    bucket = {le: got[("lat_bucket", (("comm", "cat"), ("le", le)))] for le in ("10.0", "100.0", "+Inf")}
    assert [(e.labels["pid"], e.value) for e in bucket.values()] == [("3", 8), ("2", 50), ("4", 500)]
    assert got[("lat_count", (("comm", "cat"),))] is None and got[("lat_sum", (("comm", "cat"),))] is None


def test_a_native_histogram_has_no_exemplars_and_still_counts():
    agg = with_exemplars(HistogramAggregator(bound("lat", "histogram", ["comm"], field="latency",
                                                   native=NativeBucketing(schema=0))))
    agg.ingest(rows({"comm": "cat", "pid": 1, "latency": 5}, {"comm": "cat", "pid": 2, "latency": 50}))
    got = openmetrics(agg)
    assert got and all(exemplar is None for exemplar in got.values())
    assert got.keys() >= {("lat_count", (("comm", "cat"),))}
    assert "lat_count{comm=\"cat\"} 2.0" in encoded(agg)


def test_without_exemplars_nothing_is_kept_or_written():
    agg = CounterAggregator(bound("execs", "counter", ["comm"]))
    agg.ingest(rows({"comm": "cat", "pid": 10}))
    assert openmetrics(agg) == {("execs_total", (("comm", "cat"),)): None}
    assert all(state.examples is None for state in agg._series.values())


def test_hostile_text_is_escaped_and_cut_to_the_limit_deterministically():
    comm = 'a"b\\c\nd' + "é" * 300
    pod = "\\\"\n" * 100
    agg = with_exemplars(CounterAggregator(bound("execs", "counter")))
    hostile = {"pid": 2**31 - 1, "comm": comm, "k8s.namespace": "ns", "k8s.pod": pod, "k8s.container": "x" * 300}
    agg.ingest(rows(hostile))
    first = openmetrics(agg)[("execs_total", ())]
    labels = first.labels
    assert sum(len(k) + len(v) for k, v in labels.items()) <= LIMIT
    assert labels["pid"] == str(2**31 - 1) and labels["k8s_namespace"] == "ns"   # short values stay whole
    assert comm.startswith(labels["comm"]) and pod.startswith(labels["k8s_pod"])
    assert "x" * 300 != labels["k8s_container"] and labels["k8s_container"].strip("x") == ""
    assert len(labels["comm"]) == len(labels["k8s_pod"]) == len(labels["k8s_container"])   # the longest cut alike
    agg.ingest(rows(hostile))
    assert openmetrics(agg)[("execs_total", ())].labels == labels
    line = next(line for line in encoded(agg).splitlines() if line.startswith("execs_total"))
    assert 'comm="a\\"b\\\\c\\nd' in line and "\n" not in line   # escaped: one line


def test_text_that_is_not_utf8_is_replaced_rather_than_failing_the_scrape():
    agg = with_exemplars(CounterAggregator(bound("execs", "counter")))
    agg.ingest(rows({"pid": 3, "comm": "a\ud800b"}))   # a lone surrogate, as a plugin's JSON may hold
    assert openmetrics(agg)[("execs_total", ())].labels == {"pid": "3", "comm": "a?b"}


def test_fit_uses_the_room_the_short_values_leave():
    assert fit(["a", "b"], ["xx", "yy"]) == ["xx", "yy"]
    names = ["n" * 20, "m" * 20]
    cut = fit(names, ["s" * 10, "l" * 500])
    assert cut == ["s" * 10, "l" * (LIMIT - 40 - 10)]
    assert fit(names, ["a" * 100, "b" * 100]) == ["a" * 44, "b" * 44]


def test_values_the_gadget_did_not_know_are_left_out_and_a_monotonic_time_is_made_wall_clock():
    import time

    dns_like = Schema.with_container_columns([
        Column("pid", Kind.INT, "not known: 0"), Column("comm", Kind.STR, "not known: empty"),
        Column("name", Kind.STR, "queried name", exemplar=True), Column("latency", Kind.INT, "ns"),
        Column("timestamp", Kind.UINT, "monotonic ns", monotonic=True)])
    agg = with_exemplars(CounterAggregator(bound("queries", "counter")), dns_like)
    now = time.monotonic_ns()
    agg.ingest([{**{c.name: c.kind.default() for c in dns_like}, "name": "example.com.", "timestamp": now}])
    exemplar = openmetrics(agg)[("queries_total", ())]
    assert exemplar.labels == {"name": "example.com."}
    assert abs(float(exemplar.timestamp) - time.time()) < 60


def test_a_series_evicted_at_the_cap_drops_its_exemplars():
    agg = with_exemplars(HistogramAggregator(bound("lat", "histogram", ["comm"], field="latency",
                                                   bounds=(10.0, 100.0)), max_series=1))
    agg.ingest(rows({"comm": "a", "pid": 1, "latency": 5}, {"comm": "a", "pid": 2, "latency": 50}))
    agg.ingest(rows({"comm": "b", "pid": 3, "latency": 5}))      # evicts a
    agg.ingest(rows({"comm": "a", "pid": 4, "latency": 500}))    # a again, from nothing: evicts b
    got = openmetrics(agg)
    examples = {le: got[("lat_bucket", (("comm", "a"), ("le", le)))] for le in ("10.0", "100.0", "+Inf")}
    assert examples["10.0"] is None and examples["100.0"] is None and examples["+Inf"].labels["pid"] == "4"
    assert not any(name == "lat_bucket" and ("comm", "b") in labels for name, labels in got)


def test_a_series_evicted_by_a_later_series_of_the_same_batch_keeps_nothing():
    agg = with_exemplars(CounterAggregator(bound("execs", "counter", ["comm"]), max_series=1))
    agg.ingest(rows({"comm": "a", "pid": 1}, {"comm": "b", "pid": 2}))
    assert openmetrics(agg) == {("execs_total", (("comm", "b"),)): openmetrics(agg)[("execs_total", (("comm", "b"),))]}
    assert [list(s.examples or ()) for s in agg._series.values()] == [[0]]


def test_the_shipped_gadgets_exemplar_columns():
    from ig_gadget_dns.plugin import SCHEMA as DNS
    from ig_gadget_exec.plugin import SCHEMA as EXEC
    from ig_gadget_oomkill.plugin import SCHEMA as OOMKILL

    assert ExemplarColumns(EXEC).names == ["pid", "comm", "k8s_namespace", "k8s_pod", "k8s_container"]
    assert ExemplarColumns(DNS).names == ["pid", "comm", "name", "k8s_namespace", "k8s_pod", "k8s_container"]
    assert ExemplarColumns(OOMKILL).names == ["kpid", "kcomm", "k8s_namespace", "k8s_pod", "k8s_container"]


def test_label_names_that_cannot_fit_are_left_out():
    many = Schema(tuple(Column(f"c{i:02d}" + "x" * 20, Kind.STR, "", exemplar=True) for i in range(10)))
    columns = ExemplarColumns(many)
    assert len(columns.names) == LIMIT // 25 and sum(len(n) + 1 for n in columns.names) <= LIMIT


def test_fit_always_holds_the_limit_and_cuts_only_the_longest():
    import random

    rnd = random.Random(24)
    for _ in range(2000):
        names = [rnd.choice(["pid", "comm", "name", "k8s_namespace", "k8s_pod", "k8s_container"])
                 for _ in range(rnd.randint(1, 6))]
        values = ["v" * rnd.choice([1, 5, 20, 63, 64, 300]) for _ in names]
        cut = fit(names, values)
        assert sum(map(len, names)) + sum(map(len, cut)) <= LIMIT
        assert all(v.startswith(c) and c for v, c in zip(values, cut))
        shortened = [c for v, c in zip(values, cut) if c != v]
        assert len(set(map(len, shortened))) <= 1                       # cut to one common length
        assert all(len(v) <= len(shortened[0]) for v, c in zip(values, cut) if c == v) if shortened else True
    assert fit(["a"], ["x" * (LIMIT - 1)]) == ["x" * (LIMIT - 1)] and fit(["a"], ["x" * LIMIT]) == ["x" * (LIMIT - 1)]


class CountingRow(dict):
    """A row that counts how often each column is read (itemgetter reads a dict subclass through
    its __getitem__)."""

    reads: dict[str, int] = {}

    def __getitem__(self, name):
        CountingRow.reads[name] = CountingRow.reads.get(name, 0) + 1
        return super().__getitem__(name)


def test_with_exemplars_each_rows_series_key_and_bucket_are_computed_once():
    # docs/config.md, Exemplars: the counts and the exemplars share each row's key and bucket, so
    # a row's label columns are read once and its field once (plus once per exemplar kept).
    agg = with_exemplars(HistogramAggregator(bound("lat", "histogram", ["comm", "k8s.pod"], field="latency",
                                                   bounds=(10.0, 100.0))))
    batch = [CountingRow(row) for row in rows(*({"comm": f"c{i % 3}", "pid": i, "latency": i * 7 % 150}
                                                for i in range(300)))]
    CountingRow.reads = {}
    agg.ingest(batch)
    kept = sum(len(state.examples or ()) for state in agg._series.values())
    assert kept == 9   # 3 series, 3 buckets each
    assert CountingRow.reads["comm"] == CountingRow.reads["k8s.pod"] == 300 + kept   # + the exemplar's own
    assert CountingRow.reads["latency"] == 300 + kept


def test_a_row_without_an_event_time_gets_the_time_its_batch_arrived_beside_rows_that_have_one():
    import time

    agg = with_exemplars(CounterAggregator(bound("execs", "counter", ["comm"])))
    before = time.time()
    agg.ingest(rows({"comm": "cat", "pid": 1, "timestamp": T0}, {"comm": "ls", "pid": 2, "timestamp": 0}))
    got = openmetrics(agg)
    assert abs(float(got[("execs_total", (("comm", "cat"),))].timestamp) - T0 / 1e9) < 1e-3
    assert before - 1 < float(got[("execs_total", (("comm", "ls"),))].timestamp) < time.time() + 1
