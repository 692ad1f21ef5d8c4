"""The scrape-time Collector: every metric of the running config, plus ig's own metrics."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from .health import loop_errors
from .metrics.aggregators import TraceAggregator
from .metrics.lifecycle import REASONS


def self_metric_families(engine, bindings=None) -> list:
    """ig's own metrics; `bindings` is the engine's as the scrape saw it (default: the current one)."""
    bindings = engine.bindings if bindings is None else bindings
    info = GaugeMetricFamily("ig_info", "ig's version", labels=["version"])
    info.add_metric([__version__], 1)
    running = GaugeMetricFamily(
        "ig_gadget_running", "1 for each gadget instance running, 0 for one that failed", labels=["category", "gadget"])
    failed = GaugeMetricFamily("ig_gadget_failed", "1 for a gadget of the config that is not running, with why",
                               labels=["category", "gadget", "reason"])
    bad_rows = CounterMetricFamily("ig_bad_rows", "rows a gadget handed over that do not fit its schema, dropped",
                                   labels=["category", "gadget", "column", "reason"])
    received = CounterMetricFamily("ig_events_received", "events read from the kernel", labels=["category", "gadget"])
    lost = CounterMetricFamily(
        "ig_events_lost", "events the kernel could not hand over (ring buffer full)", labels=["category", "gadget"])
    dropped = CounterMetricFamily(
        "ig_events_dropped", "events read but not counted", labels=["category", "gadget", "reason"])
    held = CounterMetricFamily(
        "ig_events_held", "events held until their container's metadata arrived", labels=["category", "gadget"])
    series_dropped = CounterMetricFamily("ig_series_dropped", "snapshot rows beyond --max-series, and kernel-path "
                                                              "events whose map was full", labels=["metric"])
    series = GaugeMetricFamily("ig_series", "label sets kept now (at most --max-series)", labels=["metric"])
    series_expired = CounterMetricFamily("ig_series_expired", "label sets removed: their container is gone, idle, or "
                                                              "evicted at --max-series", labels=["metric", "reason"])
    snapshots = CounterMetricFamily("ig_snapshots", "snapshots taken", labels=["category", "gadget"])
    snapshot_seconds = GaugeMetricFamily(
        "ig_snapshot_duration_seconds", "duration of the latest snapshot", labels=["category", "gadget"])
    snapshot_errors = CounterMetricFamily("ig_snapshot_errors", "snapshots that failed (raised, or passed "
                                          "--snapshot-timeout)", labels=["category", "gadget", "reason"])
    reloads = CounterMetricFamily("ig_config_reloads", "config reloads (SIGHUP)", labels=["result"])
    paths = GaugeMetricFamily("ig_metric_aggregation", "1 for where each metric is computed: kernel (a BPF map), user "
                                                       "(rows in user space) or snapshot", labels=["metric", "path"])
    map_entries = GaugeMetricFamily("ig_kernel_map_entries", "entries in the BPF maps of a gadget's metrics computed "
                                    "in the kernel, at the latest read", labels=["category", "gadget"])
    loop_failures = CounterMetricFamily(
        "ig_loop_errors", "errors caught in long-lived loops, which kept running", labels=["component", "gadget"])
    extras: dict[str, CounterMetricFamily] = {}

    for (component, gadget), n in sorted(loop_errors.counts().items()):
        loop_failures.add_metric([component, gadget], n)
    for result, n in engine.reloads.items():
        reloads.add_metric([result], n)
    for (category, name), (run, aggregators) in bindings.items():
        try:  # a gadget's odd stats must not fail the scrape
            stats, enricher = run.stats, run.enricher
            running.add_metric([category, name], 1 if run.running else 0)
            if run.failure is not None:
                failed.add_metric([category, name, run.failure], 1)
            for (column, reason), n in sorted(run.bad_rows.counts().items()):
                bad_rows.add_metric([category, name, column, reason], n)
            received.add_metric([category, name], stats.events_received)
            lost.add_metric([category, name], stats.events_lost)
            dropped.add_metric([category, name, "decode_error"], stats.decode_errors)
            dropped.add_metric([category, name, "host"], enricher.dropped_host)
            if run.snapshots is None:  # a trace gadget's bad rows are events read and not counted
                dropped.add_metric([category, name, "bad_row"], run.bad_rows.total)
            held.add_metric([category, name], enricher.held)
            if run.kernel is not None:
                map_entries.add_metric([category, name], run.kernel.entries)
            for key, value in sorted(stats.extra.items()):
                family = extras.get(key)
                if family is None:
                    family = extras[key] = CounterMetricFamily(
                        f"ig_gadget_{key}", f"gadget counter {key}", labels=["category", "gadget"])
                family.add_metric([category, name], value)
            for bound, aggregator in aggregators.items():
                paths.add_metric([bound.config.name, aggregator.placement.where], 1)
                series_dropped.add_metric([bound.config.name], aggregator.series_dropped)
                series.add_metric([bound.config.name], aggregator.series_count)
                if isinstance(aggregator, TraceAggregator):  # gauges keep no series between scrapes
                    for reason in REASONS:
                        series_expired.add_metric([bound.config.name, reason], aggregator.series_expired[reason])
            if run.snapshots is not None:
                snapshots.add_metric([category, name], run.snapshots.snapshots_taken)
                snapshot_seconds.add_metric([category, name], run.snapshots.last_duration_seconds)
                for reason in ("exception", "timeout"):
                    snapshot_errors.add_metric([category, name, reason], run.snapshots.errors_by_reason[reason])
        except Exception as exc:
            loop_errors.record("collect", exc, gadget=run.label)
    return [info, running, failed, bad_rows, received, lost, dropped, held, series_dropped, series, series_expired,
            snapshots, snapshot_seconds, snapshot_errors, reloads, paths, map_entries, loop_failures, *extras.values(),
            *pod_watch_families(getattr(engine, "pod_watch", None)),
            *bpf_program_families(getattr(engine, "compiler", None))]


def bpf_program_families(compiler) -> list:
    """What each BPF program ig loaded cost the kernel so far (igcore.bpf.stats; docs/config.md, What ig costs)."""
    labels = ["category", "gadget", "program"]
    runs = CounterMetricFamily("ig_bpf_program_runs", "times the kernel ran a BPF program of ig", labels=labels)
    seconds = CounterMetricFamily("ig_bpf_program_run_seconds", "time the kernel spent running a BPF program of ig",
                                  labels=labels)
    try:   # a failing read must not fail the scrape
        costs = compiler.programs.read() if compiler is not None else []
    except Exception as exc:
        loop_errors.record("collect", exc, gadget="bpf statistics")
        costs = []
    for cost in costs:
        runs.add_metric([cost.category, cost.gadget, cost.program], cost.runs)
        seconds.add_metric([cost.category, cost.gadget, cost.program], cost.run_seconds)
    return [runs, seconds]


def pod_watch_families(watch) -> list:
    """The pod watch's own metrics, when ig watches its node's pods (containers/sources/pod_watch.py)."""
    if watch is None:
        return []
    pods = GaugeMetricFamily("ig_k8s_pods", "pods of this node the watch knows", labels=["node"])
    pods.add_metric([watch.node], watch.pods.count())
    restarts = CounterMetricFamily("ig_k8s_watch_restarts", "times the pod watch started again, by why",
                                   labels=["reason"])
    for reason, n in watch.restarts.items():
        restarts.add_metric([reason], n)
    age = GaugeMetricFamily("ig_k8s_watch_seconds_since_last_event",
                            "seconds since the pod watch's last list or event (bookmarks too)")
    age.add_metric([], watch.seconds_since_last_event())
    return [pods, restarts, age]


class EngineCollector:
    """A prometheus_client Collector: builds every family at scrape time from the engine's state."""

    def __init__(self, engine) -> None:
        self.engine = engine

    def collect(self):
        bindings = self.engine.bindings  # one view of the config for the whole scrape
        for run, aggregators in bindings.values():
            run.prefetch(aggregators)  # every snapshot begins now: their time limits overlap
        for run, aggregators in bindings.values():
            try:
                families = run.collect(aggregators)
            except Exception as exc:  # nothing a gadget raises reaches the HTTP layer
                loop_errors.record("collect", exc, gadget=run.label)
                continue
            yield from families
        yield from self_metric_families(self.engine, bindings)
