"""The engine: runs the gadgets a config needs, binds its metrics, and swaps configs in place.

The CLI wraps it; a node agent can run the same object with configs pushed to it. A reload keeps
the aggregators (and so the counts) of every metric whose definition did not change, starts the
gadgets newly needed and stops those no longer used. One running instance per gadget, shared by
every metric bound to it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from .config import BoundMetric, Config
from .containers import ContainerCollection, Enricher, RuntimeOptions
from .gadgets import GadgetContext, GadgetSpec, NetnsAware, SnapshotGadget, TraceGadget
from .metrics.aggregators import CounterAggregator, GaugeAggregator, HistogramAggregator
from .metrics.snapshots import SnapshotCache

log = logging.getLogger("igcore.engine")


@dataclass(frozen=True)
class EngineOptions:
    host: bool = False
    max_series: int = 10000
    snapshot_min_interval: float = 1.0
    runtimes: RuntimeOptions = field(default_factory=RuntimeOptions)


class GadgetRun:
    """One running gadget, its enrichment, and the metrics fed by it."""

    def __init__(self, spec: GadgetSpec, containers: ContainerCollection, options: EngineOptions) -> None:
        self.spec = spec
        self.gadget = spec.factory(GadgetContext(host=options.host))
        self.active = True
        # Replaced whole on reload, so the ingest thread never sees a half-updated list.
        self.aggregators: dict[BoundMetric, object] = {}
        self._trace_targets: tuple = ()
        self.enricher = Enricher(containers, spec.container_key, options.host, self._dispatch, gadget=spec.name)
        self.snapshots: SnapshotCache | None = None
        if isinstance(self.gadget, SnapshotGadget):
            self.snapshots = SnapshotCache(self._take_snapshot, options.snapshot_min_interval)
        self._containers = containers

    # -- data path -------------------------------------------------------------------------
    def _dispatch(self, rows: list[dict]) -> None:
        for aggregator in self._trace_targets:
            aggregator.ingest(rows)

    def _take_snapshot(self) -> list[dict]:
        return self.enricher.enrich_now(self.gadget.snapshot())

    def _netns_added(self, container) -> None:
        if self.active and container.netns:
            self.gadget.add_netns(container.netns, f"/proc/{container.pid}/ns/net")

    def _netns_removed(self, container) -> None:
        if self.active and container.netns:
            self.gadget.remove_netns(container.netns)

    # -- lifecycle -------------------------------------------------------------------------
    def bind(self, aggregators: dict[BoundMetric, object]) -> None:
        self.aggregators = aggregators
        self._trace_targets = tuple(a for a in aggregators.values() if hasattr(a, "ingest"))

    def start(self) -> None:
        if isinstance(self.gadget, TraceGadget):
            self.gadget.start(self.enricher)
        if isinstance(self.gadget, NetnsAware):
            # after start: the gadget can only watch a namespace once its program is loaded
            self._containers.subscribe(self._netns_added, self._netns_removed)

    def stop(self) -> None:
        self.active = False
        if isinstance(self.gadget, NetnsAware):
            self._containers.unsubscribe(self._netns_added, self._netns_removed)
        if isinstance(self.gadget, TraceGadget):
            self.gadget.stop()
        else:
            self.gadget.close()
        self.enricher.close()

    def collect(self) -> list:
        families = []
        gauges = [(b, a) for b, a in self.aggregators.items() if isinstance(a, GaugeAggregator)]
        if gauges:
            try:
                rows = self.snapshots.rows()
            except Exception as exc:  # one failing snapshot must not fail the whole scrape
                log.error("snapshot %s failed: %s", self.spec.name, exc)
                rows = None
            if rows is not None:
                for _, aggregator in gauges:
                    families.extend(aggregator.collect_from(rows))
        for aggregator in self.aggregators.values():
            if not isinstance(aggregator, GaugeAggregator):
                families.extend(aggregator.collect())
        return families


def make_aggregator(bound: BoundMetric, max_series: int):
    kind = bound.config.type
    if kind == "counter":
        return CounterAggregator(bound, max_series=max_series)
    if kind == "histogram":
        return HistogramAggregator(bound, max_series=max_series)
    return GaugeAggregator(bound, max_series=max_series)


class Engine:
    def __init__(self, options: EngineOptions = EngineOptions()) -> None:
        self.options = options
        self.containers = ContainerCollection.for_host(options.runtimes)
        self.runs: dict[tuple[str, str], GadgetRun] = {}
        self.config: Config | None = None
        self.reloads = {"success": 0, "failure": 0}
        self._lock = threading.Lock()  # one start/reload/stop at a time
        self._containers_started = False
        self.started_at = time.time()

    def start(self, config: Config) -> None:
        with self._lock:
            if not self._containers_started:
                self.containers.start()
                self._containers_started = True
            self._apply(config)

    def reload(self, config: Config) -> None:
        """Swap to `config`, keeping the counts of unchanged metrics."""
        with self._lock:
            self._apply(config)

    def _apply(self, config: Config) -> None:
        old = {b: a for run in self.runs.values() for b, a in run.aggregators.items()}
        wanted: dict[tuple[str, str], dict[BoundMetric, object]] = {}
        for bound in config.metrics:
            aggregator = old.get(bound) or make_aggregator(bound, self.options.max_series)
            wanted.setdefault(bound.spec.key, {})[bound] = aggregator

        # Start the gadgets newly needed first: if one fails, the previous config keeps running.
        started: dict[tuple[str, str], GadgetRun] = {}
        try:
            for key, aggregators in wanted.items():
                if key not in self.runs:
                    run = GadgetRun(next(iter(aggregators)).spec, self.containers, self.options)
                    run.bind(aggregators)
                    started[key] = run
                    run.start()
        except Exception:
            for run in started.values():
                run.stop()
            raise
        for key, aggregators in wanted.items():
            if key in self.runs:
                self.runs[key].bind(aggregators)
        self.runs.update(started)
        for key in [k for k in self.runs if k not in wanted]:
            self.runs.pop(key).stop()
        self.config = config

    def stop(self) -> None:
        with self._lock:
            for run in self.runs.values():
                run.stop()
            self.runs.clear()
            if self._containers_started:
                self.containers.stop()
                self._containers_started = False
