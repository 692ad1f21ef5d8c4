"""The scrape-time Collector: every metric of the running config, plus ig's own metrics.

ig's own metrics are declared once, in SELF_METRICS: the families are made from it, every label
value known in advance is exported from 0 (so `rate()` and alerts see 0 before the first event,
not nothing), and docs/config.md's table of them is generated from it (tools/docs-tables.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from .containers.sources.pod_watch import RESTART_REASONS
from .health import GADGET_COMPONENTS, PROCESS_COMPONENTS, loop_errors
from .metrics.aggregators import TraceAggregator
from .metrics.lifecycle import REASONS
from .rowcheck import REASONS as ROW_PROBLEMS

# Label values taken from the config when ig starts (or reloads), rather than fixed in the code.
OF_CONFIG = {"category": "its category", "gadget": "each gadget of the config", "metric": "each metric of the config",
             "column": "each column of the gadget", "node": "this node", "version": "ig's version",
             "sha256": "the config file's"}


@dataclass(frozen=True)
class SelfMetric:
    """One of ig's own families. `known`: label -> the values exported from 0 (see docs/config.md,
    ig's own metrics); labels not in it take their values from the config (OF_CONFIG) or the event."""

    name: str                     # as in the text format, less a counter's `_total`
    type: str                     # "counter" or "gauge"
    help: str
    labels: tuple[str, ...] = ()
    known: dict[str, tuple[str, ...]] = field(default_factory=dict)
    note: str = ""                # added to `help` in the docs' table

    @property
    def exposed(self) -> str:
        return f"{self.name}_total" if self.type == "counter" else self.name

    def family(self, name: str | None = None, help: str | None = None):
        kind = CounterMetricFamily if self.type == "counter" else GaugeMetricFamily
        return kind(name or self.name, help or self.help, labels=list(self.labels))


def _metrics(*metrics: SelfMetric) -> dict[str, SelfMetric]:
    return {m.name: m for m in metrics}


GADGET = ("category", "gadget")
SNAPSHOT_ERRORS = ("exception", "timeout")
FAILURES = ("start_failed", "thread_died")
RELOAD_RESULTS = ("success", "failure")
DROP_REASONS = ("decode_error", "host", "bad_row")
# The endpoint's (igcore.http): why it closed a connection early, the codes it answers with.
CLOSE_REASONS = ("bad_request", "client_san", "evicted", "idle_timeout", "over_limit", "pipelined",
                 "plain_http_on_tls", "read_timeout", "tls_handshake", "web_config", "write_timeout")
STATUS_CODES = ("200", "400", "401", "404", "405", "429", "431", "500", "503", "505")
WEB_RELOAD_RESULTS = ("success", "failure", "error", "timeout")

SELF_METRICS = _metrics(
    SelfMetric("ig_info", "gauge", "ig's version", ("version",), note="(always 1)"),
    SelfMetric("ig_gadget_running", "gauge", "1 for each gadget instance running, 0 for one that failed", GADGET),
    SelfMetric("ig_gadget_failed", "gauge", "1 for a gadget of the config that is not running, with why",
               (*GADGET, "reason"), {"reason": FAILURES}),
    SelfMetric("ig_bad_rows", "counter", "rows a gadget handed over that do not fit its schema, dropped",
               (*GADGET, "column", "reason"), {"reason": ROW_PROBLEMS},
               note="(see When a gadget misbehaves; `column` is empty for `not_a_dict`; each column from 0 for the "
                    "reasons its kind can have)"),
    SelfMetric("ig_events_received", "counter", "events read from the kernel", GADGET,
               note="(or rows of a snapshot)"),
    SelfMetric("ig_events_lost", "counter", "events the kernel could not hand over (ring buffer full)", GADGET,
               note="(`rate(...) > 0` means counts are low)"),
    SelfMetric("ig_events_dropped", "counter", "events read but not counted", (*GADGET, "reason"),
               {"reason": DROP_REASONS}, note="(`host`: no `--host`; `bad_row`: trace gadgets only)"),
    SelfMetric("ig_events_held", "counter", "events held until their container's metadata arrived", GADGET),
    SelfMetric("ig_series_dropped", "counter", "snapshot rows beyond --max-series, and kernel-path events whose map "
               "was full", ("metric",)),
    SelfMetric("ig_series", "gauge", "label sets kept now (at most --max-series)", ("metric",)),
    SelfMetric("ig_series_expired", "counter", "label sets removed: their container is gone, idle, or evicted at "
               "--max-series", ("metric", "reason"), {"reason": REASONS},
               note="(trace metrics only; see Series lifecycle)"),
    SelfMetric("ig_snapshots", "counter", "snapshots taken", GADGET, note="(snapshot gadgets)"),
    SelfMetric("ig_snapshot_duration_seconds", "gauge", "duration of the latest snapshot", GADGET,
               note="(snapshot gadgets)"),
    SelfMetric("ig_snapshot_errors", "counter", "snapshots that failed (raised, or passed --snapshot-timeout)",
               (*GADGET, "reason"), {"reason": SNAPSHOT_ERRORS}, note="(snapshot gadgets)"),
    SelfMetric("ig_config_reloads", "counter", "config reloads (SIGHUP)", ("result",), {"result": RELOAD_RESULTS},
               note="(or `--watch`)"),
    SelfMetric("ig_metric_aggregation", "gauge", "1 for where each metric is computed: kernel (a BPF map), user "
               "(rows in user space) or snapshot", ("metric", "path"),
               note="(one series per metric, for the path in use: see Where a metric is computed)"),
    SelfMetric("ig_kernel_map_entries", "gauge", "entries in the BPF maps of a gadget's metrics computed in the "
               "kernel, at the latest read", GADGET, note="(gadgets with metrics in the kernel)"),
    SelfMetric("ig_bpf_program_runs", "counter", "times the kernel ran a BPF program of ig",
               ("category", "gadget", "program"),
               note="(`program`: the BPF function's name; `category` core for the cgroup watch; see What ig costs)"),
    SelfMetric("ig_bpf_program_run_seconds", "counter", "time the kernel spent running a BPF program of ig",
               ("category", "gadget", "program"), note="(see What ig costs)"),
    SelfMetric("ig_loop_errors", "counter", "errors caught in long-lived loops, which kept running",
               ("component", "gadget"), {"component": (*GADGET_COMPONENTS, *PROCESS_COMPONENTS)},
               note=f"(`gadget` is empty for {', '.join(f'`{c}`' for c in PROCESS_COMPONENTS)} and "
                    "`containers.<source>`, one for each container source ig runs: `containers.node`, "
                    "`containers.cgroups`, ...; see When a gadget misbehaves)"),
    SelfMetric("ig_gadget_<name>", "counter", "a gadget's own counter", GADGET,
               note="(for trace dns: `dns_queries_expired`, `dns_queries_evicted`, `dns_unmatched_responses`, "
                    "`dns_malformed`, `dns_tcp_continuations`, `dns_tcp_retransmissions`; for every trace gadget "
                    "`reader_cycles`, read cycles of its reader: a flat line is a stalled reader)"),
    SelfMetric("ig_config_last_reload_successful", "gauge", "1 if the last config load or reload succeeded"),
    SelfMetric("ig_config_last_reload_success_timestamp_seconds", "gauge", "time of the last successful config load"),
    SelfMetric("ig_config_info", "gauge", "the config in force, by the sha256 of its file", ("sha256",)),
    SelfMetric("ig_k8s_pods", "gauge", "pods of this node the watch knows", ("node",),
               note="(when ig watches its node's pods: see Pod owners and labels)"),
    SelfMetric("ig_k8s_watch_restarts", "counter", "times the pod watch started again, by why", ("reason",),
               {"reason": RESTART_REASONS}, note="(see Pod owners and labels)"),
    SelfMetric("ig_k8s_watch_seconds_since_last_event", "gauge",
               "seconds since the pod watch's last list or event (bookmarks too)"),
    SelfMetric("ig_http_connections", "gauge", "connections open to the metrics endpoint",
               note="(see security.md, Limits)"),
    SelfMetric("ig_http_connections_limit", "gauge", "connections kept open at most (the one waiting longest on its "
               "client is closed for a new one)"),
    SelfMetric("ig_http_connections_closed", "counter", "connections closed by ig before the client was done, by "
               "reason", ("reason",), {"reason": CLOSE_REASONS}),
    SelfMetric("ig_http_responses", "counter", "HTTP responses sent, by status code", ("code",),
               {"code": STATUS_CODES}),
    SelfMetric("ig_http_response_bytes_in_flight", "gauge", "bytes of large response bodies being written (each "
               "counted once)"),
    SelfMetric("ig_web_config_reloads", "counter", "re-reads of --web-config-file after a change, by result (all but "
               "success make requests fail)", ("result",), {"result": WEB_RELOAD_RESULTS},
               note="(with `--web-config-file`)"),
)
GADGET_COUNTER = SELF_METRICS["ig_gadget_<name>"]


def self_families(*names: str) -> list:
    """Empty families of these SELF_METRICS, to fill."""
    return [SELF_METRICS[name].family() for name in names]


def from_zero(known, counts: dict) -> dict:
    """`counts` with every `known` key in it, at 0 where nothing was counted yet."""
    return {**dict.fromkeys(known, 0), **counts}


def _loop_error_counts(engine, bindings) -> dict[tuple[str, str], int]:
    """(component, gadget) -> errors: every loop ig runs from 0, gadgets' loops per gadget of the config."""
    sources = getattr(getattr(engine, "containers", None), "sources", ())
    known = [(c, "") for c in (*PROCESS_COMPONENTS, *(f"containers.{s.name}" for s in sources))]
    known += [(c, run.label) for run, _ in bindings.values() for c in GADGET_COMPONENTS]
    return from_zero(known, loop_errors.counts())


def self_metric_families(engine, bindings=None) -> list:
    """ig's own metrics; `bindings` is the engine's as the scrape saw it (default: the current one)."""
    bindings = engine.bindings if bindings is None else bindings
    (info, running, failed, bad_rows, received, lost, dropped, held, series_dropped, series, series_expired, snapshots,
     snapshot_seconds, snapshot_errors, reloads, paths, map_entries, loop_failures) = self_families(
        "ig_info", "ig_gadget_running", "ig_gadget_failed", "ig_bad_rows", "ig_events_received", "ig_events_lost",
        "ig_events_dropped", "ig_events_held", "ig_series_dropped", "ig_series", "ig_series_expired", "ig_snapshots",
        "ig_snapshot_duration_seconds", "ig_snapshot_errors", "ig_config_reloads", "ig_metric_aggregation",
        "ig_kernel_map_entries", "ig_loop_errors")
    info.add_metric([__version__], 1)
    extras: dict[str, CounterMetricFamily] = {}

    for (component, gadget), n in sorted(_loop_error_counts(engine, bindings).items()):
        loop_failures.add_metric([component, gadget], n)
    for result, n in from_zero(RELOAD_RESULTS, engine.reloads).items():
        reloads.add_metric([result], n)
    for (category, name), (run, aggregators) in bindings.items():
        try:  # a gadget's odd stats must not fail the scrape
            stats, enricher = run.stats, run.enricher
            running.add_metric([category, name], 1 if run.running else 0)
            for reason in FAILURES:
                failed.add_metric([category, name, reason], 1 if run.failure == reason else 0)
            for (column, reason), n in sorted(run.bad_rows.counts(with_zeros=True).items()):
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
                    family = extras[key] = GADGET_COUNTER.family(f"ig_gadget_{key}", f"gadget counter {key}")
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
                for reason in SNAPSHOT_ERRORS:
                    snapshot_errors.add_metric([category, name, reason], run.snapshots.errors_by_reason[reason])
        except Exception as exc:
            loop_errors.record("collect", exc, gadget=run.label)
    return [info, running, failed, bad_rows, received, lost, dropped, held, series_dropped, series, series_expired,
            snapshots, snapshot_seconds, snapshot_errors, reloads, paths, map_entries, loop_failures, *extras.values(),
            *pod_watch_families(getattr(engine, "pod_watch", None)),
            *bpf_program_families(getattr(engine, "compiler", None))]


def bpf_program_families(compiler) -> list:
    """What each BPF program ig loaded cost the kernel so far (igcore.bpf.stats; docs/config.md, What ig costs)."""
    runs, seconds = self_families("ig_bpf_program_runs", "ig_bpf_program_run_seconds")
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
    pods, restarts, age = self_families("ig_k8s_pods", "ig_k8s_watch_restarts", "ig_k8s_watch_seconds_since_last_event")
    pods.add_metric([watch.node], watch.pods.count())
    for reason, n in from_zero(RESTART_REASONS, watch.restarts).items():
        restarts.add_metric([reason], n)
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
