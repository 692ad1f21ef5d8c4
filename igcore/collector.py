"""The scrape-time Collector: every metric of the running config, plus ig's own metrics."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from .health import loop_errors
from .metrics.aggregators import TraceAggregator
from .metrics.lifecycle import REASONS


def self_metric_families(engine) -> list:
    info = GaugeMetricFamily("ig_info", "ig's version", labels=["version"])
    info.add_metric([__version__], 1)
    running = GaugeMetricFamily("ig_gadget_running", "1 for each gadget instance running", labels=["category", "gadget"])
    received = CounterMetricFamily("ig_events_received", "events read from the kernel", labels=["category", "gadget"])
    lost = CounterMetricFamily("ig_events_lost", "events the kernel could not hand over (ring buffer full)", labels=["category", "gadget"])
    dropped = CounterMetricFamily("ig_events_dropped", "events read but not counted", labels=["category", "gadget", "reason"])
    held = CounterMetricFamily("ig_events_held", "events held until their container's metadata arrived", labels=["category", "gadget"])
    series_dropped = CounterMetricFamily("ig_series_dropped", "events (or snapshot rows) not counted because their label set was beyond --max-series", labels=["metric"])
    series = GaugeMetricFamily("ig_series", "label sets kept now (at most --max-series)", labels=["metric"])
    series_expired = CounterMetricFamily("ig_series_expired", "label sets removed: their container is gone, or idle", labels=["metric", "reason"])
    snapshots = CounterMetricFamily("ig_snapshots", "snapshots taken", labels=["category", "gadget"])
    snapshot_seconds = GaugeMetricFamily("ig_snapshot_duration_seconds", "duration of the latest snapshot", labels=["category", "gadget"])
    snapshot_errors = CounterMetricFamily("ig_snapshot_errors", "snapshots that failed", labels=["category", "gadget"])
    reloads = CounterMetricFamily("ig_config_reloads", "config reloads (SIGHUP)", labels=["result"])
    loop_failures = CounterMetricFamily("ig_loop_errors", "errors caught in long-lived loops, which kept running", labels=["component", "gadget"])
    extras: dict[str, CounterMetricFamily] = {}

    for (component, gadget), n in sorted(loop_errors.counts().items()):
        loop_failures.add_metric([component, gadget], n)
    for result, n in engine.reloads.items():
        reloads.add_metric([result], n)
    for (category, name), run in list(engine.runs.items()):
        stats, enricher = run.gadget.stats, run.enricher
        running.add_metric([category, name], 1)
        received.add_metric([category, name], stats.events_received)
        lost.add_metric([category, name], stats.events_lost)
        dropped.add_metric([category, name, "decode_error"], stats.decode_errors)
        dropped.add_metric([category, name, "host"], enricher.dropped_host)
        held.add_metric([category, name], enricher.held)
        for key, value in sorted(stats.extra.items()):
            family = extras.get(key)
            if family is None:
                family = extras[key] = CounterMetricFamily(f"ig_gadget_{key}", f"gadget counter {key}", labels=["category", "gadget"])
            family.add_metric([category, name], value)
        for bound, aggregator in run.aggregators.items():
            series_dropped.add_metric([bound.config.name], aggregator.series_dropped)
            series.add_metric([bound.config.name], aggregator.series_count)
            if isinstance(aggregator, TraceAggregator):  # gauges keep no series between scrapes
                for reason in REASONS:
                    series_expired.add_metric([bound.config.name, reason], aggregator.series_expired[reason])
        if run.snapshots is not None:
            snapshots.add_metric([category, name], run.snapshots.snapshots_taken)
            snapshot_seconds.add_metric([category, name], run.snapshots.last_duration_seconds)
            snapshot_errors.add_metric([category, name], run.snapshots.errors)
    return [info, running, received, lost, dropped, held, series_dropped, series, series_expired, snapshots,
            snapshot_seconds, snapshot_errors, reloads, loop_failures, *extras.values()]


class EngineCollector:
    """A prometheus_client Collector: builds every family at scrape time from the engine's state."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self):
        for run in list(self.engine.runs.values()):
            yield from run.collect()
        yield from self_metric_families(self.engine)
