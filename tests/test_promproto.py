"""The protobuf exposition (igcore.promproto; docs/config.md, "Native histograms"): what it encodes,
parsed back with the protobuf library, equals the families; content negotiation picks it as a
Prometheus with native histograms asks; gzip and `name[]` work for it through a real `ig prometheus`."""

from __future__ import annotations

import gzip
import signal
import urllib.request
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.samples import Exemplar

from igcore.exposition import scrape_key
from igcore.metrics.aggregators import HistogramAggregator
from igcore.nativehist import NativeBucketing
from igcore.promproto import CONTENT_TYPE, METRIC_TYPES, generate_protobuf
from tests.fixtures.aggregation import Wrap, bound
from tests.fixtures.protobuf_scrape import PROMETHEUS_NATIVE_ACCEPT, decoded, parse
from tests.fixtures.waiting import wait_until

def labels_of(metric) -> dict[str, str]:
    return {pair.name: pair.value for pair in metric.label}


def registry_of(*families) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Wrap(lambda: list(families)))
    return registry


def test_every_kind_of_family_round_trips():
    native = HistogramAggregator(bound("lat", "histogram", ["comm"], field="lat", family="lat_seconds",
                                       native=NativeBucketing(2, Decimal("0.001"))))
    native.ingest([{"comm": c, "lat": v} for c, v in [("a", 0), ("a", -5), ("a", 3000), ("a", 3100), ("b", 12)]])
    classic = HistogramAggregator(bound("size", "histogram", field="lat", bounds=(1.0, 10.0)))
    classic.ingest([{"lat": v} for v in (1, 5, 50)])
    [classic_family] = classic.collect()
    bucket = classic_family.samples[0]
    classic_family.samples[0] = bucket._replace(exemplar=Exemplar({"pid": "42", "comm": "cat"}, 1.0, 1700000000.25))
    counter = CounterMetricFamily("execs", "execs seen", labels=["comm"])
    counter.add_metric(["cat"], 7)
    counter.samples[0] = counter.samples[0]._replace(exemplar=Exemplar({"pid": "9"}, 1.0))
    gauge = GaugeMetricFamily("open_files", "files open", labels=["comm"])
    gauge.add_metric(["sh"], 3.5)
    info = InfoMetricFamily("ig", "ig's version", value={"version": "1.2"})
    summary = SummaryMetricFamily("took", "time taken", count_value=4, sum_value=2.5)
    [native_family] = native.collect()

    messages = {m.name: m for m in parse(generate_protobuf(registry_of(
        native_family, classic_family, counter, gauge, info, summary)))}

    assert sorted(messages) == ["execs_total", "ig_info", "lat_seconds", "open_files", "size", "took"]
    lat = messages["lat_seconds"]
    assert (lat.type, lat.help) == (METRIC_TYPES["HISTOGRAM"], "help for lat")
    for metric, (labels, expected) in zip(lat.metric, native_family.native):
        h = metric.histogram
        assert labels_of(metric) == labels
        assert (h.sample_count, h.sample_sum, h.schema) == (expected.count_value, expected.sum_value, 2)
        assert (h.zero_threshold, h.zero_count) == (expected.zero_threshold, expected.zero_count)
        assert decoded(h.positive_span, h.positive_delta) == decoded(expected.pos_spans, expected.pos_deltas)
        assert decoded(h.negative_span, h.negative_delta) == decoded(expected.neg_spans, expected.neg_deltas)
        assert not h.bucket
    a = lat.metric[0].histogram
    assert (a.sample_count, a.zero_count, a.sample_sum) == (4, 1, 6.095)
    assert sum(decoded(a.positive_span, a.positive_delta).values()) == 2
    assert decoded(a.negative_span, a.negative_delta) == {-30: 1}   # 0.005 is in (2**-7.75, 2**-7.5]: -30 at schema 2

    [size] = messages["size"].metric
    assert (size.histogram.sample_count, size.histogram.sample_sum) == (3, 56)
    assert [(b.upper_bound, b.cumulative_count) for b in size.histogram.bucket] == [(1.0, 1), (10.0, 2)]
    exemplar = size.histogram.bucket[0].exemplar
    assert {p.name: p.value for p in exemplar.label} == {"pid": "42", "comm": "cat"}
    assert (exemplar.value, exemplar.timestamp.seconds, exemplar.timestamp.nanos) == (1.0, 1700000000, 250000000)

    [execs] = messages["execs_total"].metric
    assert messages["execs_total"].type == METRIC_TYPES["COUNTER"]
    assert (labels_of(execs), execs.counter.value) == ({"comm": "cat"}, 7)
    assert [(p.name, p.value) for p in execs.counter.exemplar.label] == [("pid", "9")]
    assert not execs.counter.exemplar.HasField("timestamp")
    [files] = messages["open_files"].metric
    assert (messages["open_files"].type, labels_of(files), files.gauge.value) == (METRIC_TYPES["GAUGE"], {"comm": "sh"}, 3.5)
    [version] = messages["ig_info"].metric
    assert (labels_of(version), version.gauge.value) == ({"version": "1.2"}, 1)
    [took] = messages["took"].metric
    assert (took.summary.sample_count, took.summary.sample_sum) == (4, 2.5)


def test_an_empty_family_is_left_out():
    native = HistogramAggregator(bound("lat", "histogram", field="lat", native=NativeBucketing()))
    assert parse(generate_protobuf(registry_of(*native.collect()))) == []


def test_the_protobuf_format_is_chosen_when_the_scraper_prefers_it():
    def content_type(accept):
        return scrape_key("", accept, None)[0].content_type
    assert content_type(PROMETHEUS_NATIVE_ACCEPT) == CONTENT_TYPE
    assert content_type(PROMETHEUS_NATIVE_ACCEPT.replace("delimited,", "delimited;q=0.9,")) == CONTENT_TYPE
    # Lower than another format, refused, another message or encoding, or a bad q: not protobuf.
    assert content_type(PROMETHEUS_NATIVE_ACCEPT.replace("delimited,", "delimited;q=0.7,")).startswith(OPENMETRICS)
    assert content_type(PROMETHEUS_NATIVE_ACCEPT.replace("delimited,", "delimited;q=0,")).startswith(OPENMETRICS)
    for other in ("proto=io.prometheus.client.Metric;encoding=delimited", "proto=io.prometheus.client.MetricFamily;"
                  "encoding=text", "proto=io.prometheus.client.MetricFamily;encoding=delimited;q=abc"):
        assert content_type(f"application/vnd.google.protobuf;{other}") == CONTENT_TYPE_PLAIN_0_0_4
    assert content_type("text/plain;version=0.0.4;q=0.5,*/*;q=0.1") == CONTENT_TYPE_PLAIN_0_0_4
    assert content_type(None) == CONTENT_TYPE_PLAIN_0_0_4


NATIVE_SYNTH = """
metrics_name: nh
metrics:
  - name: events
    type: counter
    category: trace
    gadget: synth
    labels: [comm]
  - name: latency
    type: histogram
    category: trace
    gadget: synth
    field: latency
    labels: [comm]
    bucket: {type: native, schema: 4, multiplier: 0.000000001, unit: s}
"""


def test_a_real_ig_answers_in_protobuf_with_gzip_and_names(run_ig, synth, tmp_path):
    feed, _ = synth
    config = tmp_path / "config.yaml"
    config.write_text(NATIVE_SYNTH)
    ig = run_ig(f"@{config}", "--host")
    latencies = [0, 1_000_000, 1_000_001, 250_000_000, 3_000_000_000]
    feed.send(*({"comm": "cat", "latency": v} for v in latencies))
    wait_until(lambda: ig.value("latency_seconds_count", comm="cat") == len(latencies), "every row counted")

    def scrape(query: str = "") -> tuple[str, bytes]:
        request = urllib.request.Request(f"{ig.url}{query}", headers={"Accept": PROMETHEUS_NATIVE_ACCEPT,
                                                                      "Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            if response.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            return response.headers["Content-Type"], body

    content_type, body = scrape()
    assert content_type == CONTENT_TYPE
    families = {m.name: m for m in parse(body)}
    assert families["events_total"].metric[0].counter.value == len(latencies)
    assert "ig_events_received_total" in families and families["ig_info"].type == METRIC_TYPES["GAUGE"]
    [metric] = families["latency_seconds"].metric
    h = metric.histogram
    assert (labels_of(metric), h.sample_count, h.zero_count, h.schema) == ({"comm": "cat"}, 5, 1, 4)
    assert h.sample_sum == sum(latencies) / 1e9 == ig.value("latency_seconds_sum", comm="cat")
    assert sum(decoded(h.positive_span, h.positive_delta).values()) == 4

    _, only = scrape("?name[]=latency_seconds")
    assert [m.name for m in parse(only)] == ["latency_seconds"]

    # A reload that keeps the metric keeps its series (docs/config.md, "Reloads").
    config.write_text(NATIVE_SYNTH.replace("metrics:\n", "metrics:\n  - {name: more, type: counter, category: trace, "
                                           "gadget: synth}\n", 1))
    ig.proc.send_signal(signal.SIGHUP)
    assert ig.wait_value("ig_config_reloads_total", 1, result="success") == 1
    feed.send({"comm": "cat", "latency": 2_000_000})
    wait_until(lambda: ig.value("latency_seconds_count", comm="cat") == len(latencies) + 1, "counted after the reload")
    [metric] = {m.name: m for m in parse(scrape()[1])}["latency_seconds"].metric
    assert metric.histogram.sample_count == len(latencies) + 1
