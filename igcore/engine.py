"""The engine: runs the gadgets a config needs, binds its metrics, and swaps configs in place.

The CLI wraps it; a node agent can run the same object with configs pushed to it. A reload keeps
the aggregators (and so the counts) of every metric whose definition did not change, starts the
gadgets newly needed and stops those no longer used; a gadget whose program is compiled again
hands over to the new one at one instant (igcore.handover), so kept metrics count each event
once. One running instance per gadget, shared by every metric bound to it.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from .bpf.compiler import Compiler
from .bpf.stats import RunTimeStats
from .config import BoundMetric, Config
from .containers import ContainerCollection, Enricher, RuntimeOptions
from .containers.pod_source import columns_used, pod_watch_of, use_pod_columns
from .enginestatus import RUNNING, EngineStatus, GadgetState
from .errors import ConfigError, IgError, RuntimeFailure, describe
from .gadgets import Category, GadgetContext, GadgetSpec, GadgetStats, NetnsAware, TraceGadget
from .handover import hand_over
from .health import loop_errors
from .isolation import GadgetSink, GadgetThreads
from .kernel import KernelProgram, place
from .metrics.aggregators import GaugeAggregator, TraceAggregator
from .metrics.exemplars import ExemplarColumns
from .metrics.kernel import KernelAggregator
from .metrics.lifecycle import SeriesPolicy, SeriesSweeper
from .metrics.protocols import Aggregator
from .metrics.snapshots import SnapshotCache, SnapshotTimeout
from .rowcheck import BadRows, RowChecker
from .startup import start_all, stop_all

log = logging.getLogger("igcore.engine")

LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class EngineOptions:
    host: bool = False
    max_series: int = 10000
    snapshot_min_interval: float = 1.0
    series: SeriesPolicy = field(default_factory=SeriesPolicy)
    # Seconds a scrape waits for a snapshot gadget; past it the scrape answers without its gauges.
    snapshot_timeout: float | None = 5.0
    # Refuse a config (at start or reload) in which any gadget fails to start.
    strict: bool = False
    runtimes: RuntimeOptions = field(default_factory=RuntimeOptions)
    # Metrics whose selectors, labels and field the gadget's program can evaluate are counted in
    # BPF maps (igcore.kernel); False keeps every metric in user space (--no-kernel-aggregation).
    kernel_aggregation: bool = True
    # Exemplars on the OpenMetrics scrape (--exemplars): of metrics computed in user space, and of
    # counters in the kernel whose gadget's program runs in the process's context.
    exemplars: bool = False


class GadgetRun:
    """One running gadget, its enrichment, and the metrics fed by it.

    `start()` never raises: a gadget whose factory or `start()` raises is recorded in `failure`
    (and `stop()` still called on it), so the other gadgets keep running.
    """

    def __init__(self, spec: GadgetSpec, containers: ContainerCollection, options: EngineOptions,
                 aggregators: dict[BoundMetric, Aggregator] | None = None, start_counting: bool = True,
                 rows_to: Callable[[list[dict]], None] | None = None, report_deaths: bool = True,
                 *, compiler: Compiler) -> None:
        """`aggregators`: the metrics the run is made for; those in the kernel are compiled into its
        program (a different set needs another run). `start_counting` False: the program counts
        and sends nothing until a reload's hand-over gives it a start (a run that replaces a
        counting one, igcore.handover). `rows_to`: where the checked, enriched rows go instead of
        the metrics (the live view's printer). `report_deaths` False: the caller reports a thread
        of the gadget that died (`running` turns False) in its own words."""
        self.spec = spec
        self.label = f"{spec.category.value} {spec.name}"  # names the gadget in logs
        self.options = options
        self.compiler = compiler   # handed to the gadget in its GadgetContext
        self.gadget: Any = None   # the plugin's gadget, once made
        self.stats = GadgetStats()  # the gadget's own once it exists
        self.active = True
        self.failure: str | None = None  # "start_failed" or "thread_died"
        self.failure_message = ""
        self._start_error: BaseException | None = None
        # Replaced whole on reload, so the ingest thread never sees a half-updated list.
        self.aggregators: dict[BoundMetric, Aggregator] = {}
        self._trace_targets: tuple[TraceAggregator, ...] = ()
        self.bad_rows = BadRows(self.label)
        self._check = RowChecker(spec.columns, self.bad_rows)
        self.enricher = Enricher(containers, spec.container_key, options.host, rows_to or self._dispatch,
                                 gadget=self.label)
        self.sink = GadgetSink(self.label, self._check, self.enricher)
        self._report_deaths = report_deaths
        self.threads = GadgetThreads(self.label, self._report_deaths)
        self.snapshots: SnapshotCache | None = None
        if spec.category is Category.SNAPSHOT:
            self.snapshots = SnapshotCache(self._take_snapshot, options.snapshot_min_interval,
                                           timeout=options.snapshot_timeout, name=self.label)
        self._containers = containers
        self._subscribed = False
        self._snapshot_logged_at: float | None = None
        self._planned = aggregators or {}
        self.signature = kernel_signature(self._planned)
        self._start_counting = start_counting
        kernel = [(b, a.placement) for b, a in self._planned.items() if b in self.signature[0]]
        # Every program gets one: its counting window is what a reload hands over with. `kernel`
        # is the same object when the program also computes metrics.
        self.program = KernelProgram(spec, kernel, self.signature[1], options.max_series, start_counting,
                                     options.exemplars)
        self.kernel: KernelProgram | None = self.program if kernel else None

    # -- data path -------------------------------------------------------------------------
    def _dispatch(self, rows: list[dict]) -> None:
        for aggregator in self._trace_targets:
            try:  # one metric's failure must not keep the batch from the others
                aggregator.ingest(rows)
            except Exception as exc:
                loop_errors.record("aggregate", exc, gadget=self.label)

    def take_snapshot(self) -> list[dict]:
        """The snapshot gadget's rows now, checked and enriched (a scrape takes them through `snapshots`)."""
        return self._take_snapshot()

    def _take_snapshot(self) -> list[dict]:
        return self.enricher.enrich_now(self._check(list(self.gadget.snapshot())))

    def _netns_added(self, container) -> None:
        if self.active and container.netns:
            try:  # the container collection's thread calls this: a gadget's error stays here
                self.gadget.add_netns(container.netns, f"/proc/{container.pid}/ns/net")
            except Exception as exc:
                loop_errors.record("netns", exc, gadget=self.label)

    def _netns_removed(self, container) -> None:
        if self.active and container.netns:
            try:
                self.gadget.remove_netns(container.netns)
            except Exception as exc:
                loop_errors.record("netns", exc, gadget=self.label)

    # -- lifecycle -------------------------------------------------------------------------
    def bind(self, aggregators: dict[BoundMetric, Aggregator]) -> None:
        self.aggregators = aggregators
        self._trace_targets = tuple(a for a in aggregators.values() if isinstance(a, TraceAggregator))

    def start(self) -> None:
        try:
            self._start_gadget()
        except BaseException as exc:  # SystemExit and the like from a plugin are its failure too
            if self.kernel is not None and self._fall_back_to_user_space(exc):
                return
            self.failure = "start_failed"
            self.failure_message = describe(exc)
            self._start_error = exc   # reported by the engine: alone, or in the line that ends ig
            self.stop()  # a gadget may have attached part of itself before it raised

    def report_start_failure(self) -> None:
        """The error line of a gadget that failed to start while others run."""
        exc = self._start_error
        log.error("gadget %s failed to start: %s; it is not running (ig_gadget_running 0), "
                  "the other gadgets keep running", self.label, self.failure_message,
                  exc_info=(type(exc), exc, exc.__traceback__) if exc and log.isEnabledFor(logging.DEBUG) else None,
                  extra={"gadget": self.label, "reason": self.failure})

    def start_error(self) -> IgError:
        """A failed start as one error for a command that ends with it: a config error stays one."""
        kind = ConfigError if isinstance(self._start_error, ConfigError) else RuntimeFailure
        return kind(f"gadget {self.label} failed to start: {self.failure_message}").naming(
            gadget=self.label, reason=self.failure or "")

    def _start_gadget(self) -> None:
        self.threads = GadgetThreads(self.label, self._report_deaths)  # this instance's: a retry starts afresh
        self.gadget = self.spec.factory(GadgetContext(host=self.options.host, kernel=self.program,
                                                      threads=self.threads, compiler=self.compiler))
        self.stats = self.gadget.stats
        if isinstance(self.gadget, TraceGadget):
            self.gadget.start(self.sink)
        if isinstance(self.gadget, NetnsAware):
            # after start: the gadget can only watch a namespace once its program is loaded
            self._subscribed = True
            self._containers.subscribe(self._netns_added, self._netns_removed)

    def _fall_back_to_user_space(self, exc: BaseException) -> bool:
        """The program with the kernel metrics compiled in did not start (say a plugin's KernelField
        the compiler or the verifier refuses): start the gadget again with every metric in user
        space. False when that fails too (then the gadget itself is at fault)."""
        self.threads.stopping = True   # the failed instance's threads end with its stop
        try:
            self._detach_gadget()
        except Exception:
            pass   # what it left is the failed instance's; the new one starts clean
        why = describe(exc)
        reason = f"the gadget's program did not load with it in the kernel ({why[:300]})"
        self.kernel = None
        self.program = KernelProgram(self.spec, [], True, self.options.max_series, self._start_counting)
        for aggregator in self._kernel_aggregators():
            aggregator.fall_back(reason)
        self.signature = ((), True)
        try:
            self._start_gadget()
        except Exception:
            return False
        log.warning("gadget %s: its program did not load with the metrics computed in the kernel (%s); they are "
                    "computed in user space (ig_metric_aggregation)", self.label, why,
                    extra={"gadget": self.label, "reason": "kernel_fallback"})
        return True

    def attach_kernel_metrics(self) -> None:
        """Point the kernel aggregators of this run at its program's maps."""
        if self.kernel is None:
            return
        for aggregator in self._kernel_aggregators():
            aggregator.attach(self.kernel, self.enricher)

    def _kernel_aggregators(self) -> list[KernelAggregator]:
        planned = [self._planned[bound] for bound in self.signature[0]]
        return [a for a in planned if isinstance(a, KernelAggregator)]

    @property
    def running(self) -> bool:
        """False once the gadget failed to start or one of its threads ended."""
        if self.failure is None and self.threads.dead():
            self.failure = "thread_died"
            self.failure_message = self.threads.death or "a thread of the gadget ended"
        return self.failure is None

    def stop(self) -> None:
        """Detach and release, once; safe after a failed start, and never raises."""
        if not self.active:
            return
        self.active = False
        self.threads.stopping = True
        try:
            self._detach_gadget()
        except Exception as exc:
            log.error("gadget %s: stopping it failed: %s: %s", self.label, type(exc).__name__, exc,
                      extra={"gadget": self.label, "reason": "stop_failed"})
        self.enricher.close()

    def _detach_gadget(self) -> None:
        if self._subscribed:
            self._containers.unsubscribe(self._netns_added, self._netns_removed)
            self._subscribed = False
        if isinstance(self.gadget, TraceGadget):
            self.gadget.stop()
        elif self.gadget is not None:
            self.gadget.close()

    def prefetch(self, aggregators: dict[BoundMetric, Aggregator]) -> None:
        """Begin the snapshot this scrape will need, without waiting for it."""
        if self.snapshots is not None and self.gadget is not None and aggregators:
            self.snapshots.prefetch()

    def collect(self, aggregators: dict[BoundMetric, Aggregator]) -> list:
        families = []
        gauges = [a for a in aggregators.values() if isinstance(a, GaugeAggregator)]
        if gauges and self.gadget is not None and self.snapshots is not None:
            try:
                rows = self.snapshots.rows()
            except SnapshotTimeout:  # logged once by the cache; this scrape goes without the gauges
                rows = None
            except Exception as exc:  # one failing snapshot must not fail the whole scrape
                self._log_snapshot_error(exc)
                rows = None
            if rows is not None:
                for aggregator in gauges:
                    families.extend(aggregator.collect_from(rows))
        for traced in aggregators.values():
            if isinstance(traced, TraceAggregator):
                families.extend(traced.collect())
        return families

    def _log_snapshot_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._snapshot_logged_at is None or now - self._snapshot_logged_at >= LOG_EVERY_SECONDS:
            self._snapshot_logged_at = now
            log.error("snapshot of gadget %s failed: %s: %s (counted in ig_snapshot_errors_total; "
                      "logged at most once a minute)", self.label, type(exc).__name__, exc,
                      extra={"gadget": self.label, "reason": "exception"})


def refusal(failed: list[GadgetRun], strict: bool) -> RuntimeFailure:
    """The one error of a config refused because its gadgets failed to start."""
    why = "--strict is set" if strict else "no gadget of the config could start"
    others = [run.label for run in failed[1:]]
    more = f" ({len(others)} more failed: {', '.join(others)})" if others else ""
    first = failed[0]
    return RuntimeFailure(f"gadget {first.label} failed to start: {first.failure_message}; {why}{more}").naming(
        gadget=first.label, reason=first.failure or "")


def make_aggregator(bound: BoundMetric, max_series: int, kernel_aggregation: bool = True,
                    exemplars: bool = False) -> Aggregator:
    """The aggregator the metric's type names (igcore.metrictypes) for where it is placed."""
    kind, placement = bound.metric_type, place(bound, kernel_aggregation)
    if placement.in_kernel:
        assert kind.kernel is not None, "placed in the kernel without a kernel aggregator"   # place() checks
        aggregator: Aggregator = kind.kernel(bound, placement, max_series=max_series)
    else:
        aggregator = kind.user(bound, max_series=max_series)
        aggregator.placement = placement
    # A counter in the kernel reads them from its map where the program carries them; any metric in
    # the kernel keeps them if its program falls back to user space (docs/config.md, Exemplars).
    if exemplars and isinstance(aggregator, TraceAggregator):
        aggregator.exemplars = ExemplarColumns(bound.spec.columns)
    return aggregator


def kernel_signature(aggregators: dict[BoundMetric, Aggregator]) -> tuple[tuple[BoundMetric, ...], bool]:
    """What a gadget's program is compiled for: its metrics in the kernel (in order), and whether
    anything needs the ring buffer (a metric in user space)."""
    kernel = tuple(b for b, a in aggregators.items() if a.placement.in_kernel)
    ring = any(not a.placement.in_kernel for a in aggregators.values())
    return kernel, ring or not kernel


class Engine:
    """Runs the gadgets of a config. `bindings` maps each gadget key to (its run, the metrics it
    feeds) and is replaced whole by a reload, so a scrape sees the old set or the new one, never a
    metric under two gadgets at once."""

    def __init__(self, options: EngineOptions = EngineOptions(), compiler: Compiler | None = None) -> None:
        """`compiler`: the one the `ig` executable built (igcore.main); None, a compiler of its own."""
        self.options = options
        self.compiler = compiler if compiler is not None else Compiler()
        self.containers = ContainerCollection.for_host(options.runtimes, compiler=self.compiler)
        self.bindings: dict[tuple[str, str], tuple[GadgetRun, dict[BoundMetric, Aggregator]]] = {}
        self.config: Config | None = None
        self.reloads = {"success": 0, "failure": 0}
        self.bpf_stats = RunTimeStats()   # on while the engine runs: what its programs cost (collector)
        self._lock = threading.Lock()  # one start/reload/stop at a time
        self._holder: tuple[str, float] | None = None  # (operation, since): what holds the lock
        self._started = False
        self._containers_started = False
        self.started_at = time.time()
        self.pod_watch = pod_watch_of(self.containers)   # None without an API server (its metrics: collector)
        self.sweeper = SeriesSweeper(self._trace_aggregators, self.containers.containers, options.series,
                                     columns_of=self.containers.columns_of)

    def _trace_aggregators(self) -> list[TraceAggregator]:
        return [a for run in list(self.runs.values()) for a in run.aggregators.values()
                if isinstance(a, TraceAggregator)]

    @property
    def runs(self) -> dict[tuple[str, str], GadgetRun]:
        return {key: run for key, (run, _) in self.bindings.items()}

    def failures(self) -> list[GadgetRun]:
        """The runs of the current config whose gadget is not running."""
        return [run for run, _ in self.bindings.values() if not run.running]

    def status(self) -> EngineStatus:
        """A snapshot of the engine for the health probes; never waits for the engine's lock."""
        holder = self._holder
        gadgets = tuple(GadgetState(run.label, RUNNING) if run.running else
                        GadgetState(run.label, run.failure or "failed", run.failure_message)
                        for run, _ in list(self.bindings.values()))
        return EngineStatus(started=self._started, busy=holder[0] if holder else None,
                            busy_seconds=time.monotonic() - holder[1] if holder else 0.0, gadgets=gadgets)

    @contextmanager
    def _holding(self, operation: str):
        """The engine's lock, noting who holds it since when (status() reports a hold that lasts)."""
        with self._lock:
            self._holder = (operation, time.monotonic())
            try:
                yield
            finally:
                self._holder = None

    def start(self, config: Config) -> None:
        with self._holding("start"):
            self.bpf_stats.enable()
            if not self._containers_started:
                use_pod_columns(self.containers, columns_used(config), self.options.runtimes.runtimes)
                self.containers.start()
                self._containers_started = True
            self._apply(config)
            self.sweeper.start()
            self._started = True

    def reload(self, config: Config) -> None:
        """Swap to `config`, keeping the counts of unchanged metrics."""
        with self._holding("reload"):
            self._apply(config)

    def _apply(self, config: Config) -> None:
        if self.containers.pods.want(columns_used(config)) and self.pod_watch is not None:
            self.pod_watch.relist()   # learn the label keys the new config uses
        old = {b: a for _, aggregators in self.bindings.values() for b, a in aggregators.items()}
        wanted: dict[tuple[str, str], dict[BoundMetric, Aggregator]] = {}
        for bound in config.metrics:
            aggregator = old.get(bound) or make_aggregator(bound, self.options.max_series,
                                                           self.options.kernel_aggregation, self.options.exemplars)
            wanted.setdefault(bound.spec.key, {})[bound] = aggregator

        # Start the gadgets newly needed (and retry those that failed, and recompile those whose
        # metrics in the kernel changed) before anything is published.
        started: dict[tuple[str, str], GadgetRun] = {}
        replacing: dict[tuple[str, str], GadgetRun] = {}   # key -> the running run a new one replaces
        for key, aggregators in wanted.items():
            current = self.bindings.get(key)
            alive = current is not None and current[0].running
            if current is None or not alive or current[0].signature != kernel_signature(aggregators):
                if alive and current is not None:
                    replacing[key] = current[0]
                run = started[key] = GadgetRun(next(iter(aggregators)).spec, self.containers, self.options,
                                               aggregators, start_counting=not alive, compiler=self.compiler)
                # A replacement gets its metrics at the hand-over below: until then the old run counts.
                run.bind({} if alive else aggregators)
        start_all(list(started.values()), self.compiler)  # side by side; returns once every one is attached or failed
        for key, run in started.items():
            if key not in replacing:
                run.attach_kernel_metrics()
        failed = [run for run in started.values() if not run.running]
        if failed and (self.options.strict or len(failed) == len(wanted)):
            # one line for the whole refusal: the caller reports it (ig exits, or the reload fails)
            for run in started.values():
                run.stop()
            raise refusal(failed, self.options.strict)
        for run in failed:
            run.report_start_failure()

        new: dict[tuple[str, str], tuple[GadgetRun, dict[BoundMetric, Aggregator]]] = {}
        for key, aggregators in wanted.items():
            new[key] = (started.get(key) or self.bindings[key][0], aggregators)
        hand_over([(replacing[key], new[key][0], new[key][1]) for key in replacing])
        for run, aggregators in new.values():
            run.bind(aggregators)  # ingest goes to the new set now; exposition follows the swap below
        removed = [run for key, (run, _) in self.bindings.items() if new.get(key, (None,))[0] is not run]
        self.bindings = new  # one assignment: every scrape sees the old set or the new one
        self.config = config
        # After the swap: a slow stop() delays nothing a scrape sees. A run handed over from is
        # still bound: its stop drains what its program sent before the hand-over into the metrics.
        for run in removed:
            run.stop()

    def stop(self) -> None:
        with self._holding("stop"):
            self.sweeper.stop()
            runs, self.bindings = self.runs, {}
            stop_all(list(runs.values()))
            if self._containers_started:
                self.containers.stop()
                self._containers_started = False
            self.bpf_stats.release()
