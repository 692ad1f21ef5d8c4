"""Prometheus' protobuf exposition: length-delimited `io.prometheus.client.MetricFamily` messages,
the format a Prometheus started with `--enable-feature=native-histograms` asks for first, and the
only one of Prometheus 2.x that carries native histograms (docs/config.md, "Native histograms").

The message schema is written here, field by field, with the numbers of Prometheus' client_model
`metrics.proto` (the fields Prometheus 2.42 reads; tests/test_native_prometheus.py has a real one
read them); Google's `protobuf` package builds the classes and encodes. Families come from prometheus_client's
collectors: counters, gauges, summaries and classic histograms from their samples, a native
histogram from the NativeHistogram of each series that its family carries in `native`
(metrics.native.NativeHistogramFamily), exemplars from `Sample.exemplar`.
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from prometheus_client.samples import Exemplar, NativeHistogram, Sample, Timestamp

CONTENT_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# message -> (field name, number, type, label, message type or None): client_model's metrics.proto.
SCHEMA: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "LabelPair": [("name", 1, _F.TYPE_STRING, _OPTIONAL, None), ("value", 2, _F.TYPE_STRING, _OPTIONAL, None)],
    "Gauge": [("value", 1, _F.TYPE_DOUBLE, _OPTIONAL, None)],
    "Counter": [("value", 1, _F.TYPE_DOUBLE, _OPTIONAL, None), ("exemplar", 2, _F.TYPE_MESSAGE, _OPTIONAL, "Exemplar")],
    "Quantile": [("quantile", 1, _F.TYPE_DOUBLE, _OPTIONAL, None), ("value", 2, _F.TYPE_DOUBLE, _OPTIONAL, None)],
    "Summary": [("sample_count", 1, _F.TYPE_UINT64, _OPTIONAL, None),
                ("sample_sum", 2, _F.TYPE_DOUBLE, _OPTIONAL, None),
                ("quantile", 3, _F.TYPE_MESSAGE, _REPEATED, "Quantile")],
    "Untyped": [("value", 1, _F.TYPE_DOUBLE, _OPTIONAL, None)],
    "Histogram": [("sample_count", 1, _F.TYPE_UINT64, _OPTIONAL, None),
                  ("sample_sum", 2, _F.TYPE_DOUBLE, _OPTIONAL, None),
                  ("bucket", 3, _F.TYPE_MESSAGE, _REPEATED, "Bucket"),
                  ("schema", 5, _F.TYPE_SINT32, _OPTIONAL, None),
                  ("zero_threshold", 6, _F.TYPE_DOUBLE, _OPTIONAL, None),
                  ("zero_count", 7, _F.TYPE_UINT64, _OPTIONAL, None),
                  ("negative_span", 9, _F.TYPE_MESSAGE, _REPEATED, "BucketSpan"),
                  ("negative_delta", 10, _F.TYPE_SINT64, _REPEATED, None),
                  ("positive_span", 12, _F.TYPE_MESSAGE, _REPEATED, "BucketSpan"),
                  ("positive_delta", 13, _F.TYPE_SINT64, _REPEATED, None)],
    "Bucket": [("cumulative_count", 1, _F.TYPE_UINT64, _OPTIONAL, None),
               ("upper_bound", 2, _F.TYPE_DOUBLE, _OPTIONAL, None),
               ("exemplar", 3, _F.TYPE_MESSAGE, _OPTIONAL, "Exemplar")],
    "BucketSpan": [("offset", 1, _F.TYPE_SINT32, _OPTIONAL, None), ("length", 2, _F.TYPE_UINT32, _OPTIONAL, None)],
    "Exemplar": [("label", 1, _F.TYPE_MESSAGE, _REPEATED, "LabelPair"), ("value", 2, _F.TYPE_DOUBLE, _OPTIONAL, None),
                 ("timestamp", 3, _F.TYPE_MESSAGE, _OPTIONAL, ".google.protobuf.Timestamp")],
    "Metric": [("label", 1, _F.TYPE_MESSAGE, _REPEATED, "LabelPair"),
               ("gauge", 2, _F.TYPE_MESSAGE, _OPTIONAL, "Gauge"),
               ("counter", 3, _F.TYPE_MESSAGE, _OPTIONAL, "Counter"),
               ("summary", 4, _F.TYPE_MESSAGE, _OPTIONAL, "Summary"),
               ("untyped", 5, _F.TYPE_MESSAGE, _OPTIONAL, "Untyped"),
               ("histogram", 7, _F.TYPE_MESSAGE, _OPTIONAL, "Histogram"),
               ("timestamp_ms", 6, _F.TYPE_INT64, _OPTIONAL, None)],
    "MetricFamily": [("name", 1, _F.TYPE_STRING, _OPTIONAL, None), ("help", 2, _F.TYPE_STRING, _OPTIONAL, None),
                     ("type", 3, _F.TYPE_ENUM, _OPTIONAL, "MetricType"),
                     ("metric", 4, _F.TYPE_MESSAGE, _REPEATED, "Metric")],
}
METRIC_TYPES = {"COUNTER": 0, "GAUGE": 1, "SUMMARY": 2, "UNTYPED": 3, "HISTOGRAM": 4, "GAUGE_HISTOGRAM": 5}
PACKAGE = "io.prometheus.client"


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="ig/metrics.proto", package=PACKAGE, syntax="proto2",
                                               dependency=["google/protobuf/timestamp.proto"])
    enum = proto.enum_type.add(name="MetricType")
    for name, number in METRIC_TYPES.items():
        enum.value.add(name=name, number=number)
    for message, fields in SCHEMA.items():
        described = proto.message_type.add(name=message)
        for name, number, type_, label, type_name in fields:
            field = described.field.add(name=name, number=number, type=type_, label=label)
            if type_name is not None:
                field.type_name = type_name if type_name.startswith(".") else f".{PACKAGE}.{type_name}"
    return proto


def _classes() -> dict[str, type]:
    pool = descriptor_pool.DescriptorPool()   # ig's own: nothing else can define io.prometheus.client in it
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.Add(_file())
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in SCHEMA}


MESSAGES = _classes()
MetricFamily = MESSAGES["MetricFamily"]


def generate_protobuf(registry) -> bytes:
    """Every family of `registry`, each as a varint length then the message."""
    out = bytearray()
    for family in registry.collect():
        for message in families(family):
            data = message.SerializeToString()
            out += _varint(len(data))
            out += data
    return bytes(out)


def families(family) -> Iterator:
    """The MetricFamily messages of one prometheus_client family (one, or none when it is empty;
    an info or stateset family is a gauge, and a type this format lacks is untyped)."""
    kind = family.type
    if kind == "counter":
        yield from _family(f"{family.name}_total", family, "COUNTER", _counters(family.samples))
    elif kind == "gauge":
        yield from _family(family.name, family, "GAUGE", _values(family.samples, "gauge"))
    elif kind in ("histogram", "gaugehistogram"):
        native = getattr(family, "native", None)
        metrics = _native_histograms(native) if native is not None else _histograms(family)
        yield from _family(family.name, family, "HISTOGRAM" if kind == "histogram" else "GAUGE_HISTOGRAM", metrics)
    elif kind == "summary":
        yield from _family(family.name, family, "SUMMARY", _summaries(family.samples))
    else:
        by_name: dict[str, list[Sample]] = {}
        for sample in family.samples:
            by_name.setdefault(sample.name, []).append(sample)
        field, type_ = ("gauge", "GAUGE") if kind in ("info", "stateset") else ("untyped", "UNTYPED")
        for name, samples in by_name.items():
            yield from _family(name, family, type_, _values(samples, field))


def _family(name: str, family, type_: str, metrics: Iterable) -> Iterator:
    message = MetricFamily(name=name, help=family.documentation, type=METRIC_TYPES[type_])
    message.metric.extend(metrics)
    if message.metric:
        yield message


def _metric(labels: dict[str, str], **fields):
    metric = MESSAGES["Metric"](**fields)
    metric.label.extend(MESSAGES["LabelPair"](name=k, value=v) for k, v in labels.items())
    return metric


def _counters(samples: list[Sample]) -> Iterator:
    for s in samples:
        if s.name.endswith("_total"):   # not `_created`: Prometheus 2.x has no field for it
            yield _metric(s.labels, counter=MESSAGES["Counter"](value=s.value, exemplar=_exemplar(s.exemplar)))


def _values(samples: list[Sample], field: str) -> Iterator:
    kind = MESSAGES[field.capitalize()]
    for s in samples:
        yield _metric(s.labels, **{field: kind(value=s.value)})


def _grouped(samples: list[Sample], drop: str) -> dict[tuple, tuple[dict[str, str], list[Sample]]]:
    """Samples per series: by labels less `drop` (`le` or `quantile`), in order of appearance."""
    series: dict[tuple, tuple[dict[str, str], list[Sample]]] = {}
    for s in samples:
        labels = {k: v for k, v in s.labels.items() if k != drop}
        series.setdefault(tuple(labels.items()), (labels, []))[1].append(s)
    return series


def _histograms(family) -> Iterator:
    """Classic histograms: each bucket but +Inf (Prometheus takes that one from `sample_count`)."""
    name = family.name
    for labels, samples in _grouped(family.samples, "le").values():
        histogram = MESSAGES["Histogram"]()
        for s in samples:
            if s.name == f"{name}_bucket":
                bound = float(s.labels["le"])
                if math.isinf(bound) and bound > 0:
                    histogram.sample_count = int(s.value)
                else:
                    histogram.bucket.add(cumulative_count=int(s.value), upper_bound=bound,
                                         exemplar=_exemplar(s.exemplar))
            elif s.name == f"{name}_count":
                histogram.sample_count = int(s.value)
            elif s.name == f"{name}_sum":
                histogram.sample_sum = s.value
        yield _metric(labels, histogram=histogram)


def _native_histograms(native: list[tuple[dict[str, str], NativeHistogram]]) -> Iterator:
    for labels, h in native:
        histogram = MESSAGES["Histogram"](
            sample_count=h.count_value, sample_sum=h.sum_value, schema=h.schema, zero_threshold=h.zero_threshold,
            zero_count=h.zero_count, negative_delta=h.neg_deltas or (), positive_delta=h.pos_deltas or ())
        for spans, field in ((h.neg_spans, histogram.negative_span), (h.pos_spans, histogram.positive_span)):
            for span in spans or ():
                field.add(offset=span.offset, length=span.length)
        yield _metric(labels, histogram=histogram)


def _summaries(samples: list[Sample]) -> Iterator:
    for labels, series in _grouped(samples, "quantile").values():
        summary = MESSAGES["Summary"]()
        for s in series:
            if "quantile" in s.labels:
                summary.quantile.add(quantile=float(s.labels["quantile"]), value=s.value)
            elif s.name.endswith("_count"):
                summary.sample_count = int(s.value)
            elif s.name.endswith("_sum"):
                summary.sample_sum = s.value
        yield _metric(labels, summary=summary)


def _exemplar(exemplar: Exemplar | None):
    if exemplar is None:
        return None
    message = MESSAGES["Exemplar"](value=exemplar.value)
    message.label.extend(MESSAGES["LabelPair"](name=k, value=v) for k, v in exemplar.labels.items())
    ts = exemplar.timestamp
    if isinstance(ts, Timestamp):
        message.timestamp.seconds, message.timestamp.nanos = ts.sec, ts.nsec
    elif ts is not None:
        # The fraction apart: seconds * 1e9 as one float would lose the nanoseconds.
        seconds = math.floor(ts)
        message.timestamp.seconds, message.timestamp.nanos = divmod(seconds * 10**9 + round((ts - seconds) * 1e9),
                                                                    10**9)
    return message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
