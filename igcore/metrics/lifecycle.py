"""Series leave: the sweep that removes label sets of containers that are gone, and idle ones.

A counter or histogram series is kept from its first event on. Without a way out, a node agent
that runs for weeks while pods come and go fills each metric's `--max-series` with label sets of
containers long gone and then drops the events of every new one. The sweep runs every
`sweep_period` seconds, off the hot path (ingest only stores the clock per series of a batch):

- container gone: a series that has not moved for `grace` seconds and whose container labels
  match no live container. "Match" projects each live container's columns onto the metric's
  container label columns, so a metric labelled by `k8s.namespace` alone keeps a namespace while
  any container of it runs, and a series of a restarted container (same name, new id) stays when
  its labels do not carry the id. The pod's owner and labels are container labels too: a metric
  labelled by `k8s.owner.name` keeps an owner while any container of it runs, across a rollout
  that replaces every pod. Series whose container labels are all empty are host (or
  unattributed) series: never gone. `k8s.node` names the node, which outlives its containers: it
  is not a container label here.
- idle (off unless `idle_timeout` > 0): any series that has not moved for `idle_timeout` seconds,
  whatever its labels; for labels such as `pid` whose values come and go inside or outside
  containers.

Removed series are counted per metric and reason (`ig_series_expired_total{metric,reason}`) and
make room under the cap at once. The aggregators count a third reason themselves: at the cap, a new
label set evicts the series updated least recently (`EVICTED`). A removed label set that comes back
starts again from 0.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable, Hashable, Iterable

from ..columns import CONTAINER_COLUMN_NAMES, pod_label_key
from ..health import loop_errors

if TYPE_CHECKING:
    from .aggregators import TraceAggregator

__all__ = ["SeriesPolicy", "SeriesSweeper", "CONTAINER_GONE", "IDLE", "EVICTED", "REASONS", "container_views"]

log = logging.getLogger("igcore.metrics")

CONTAINER_GONE = "container_gone"
IDLE = "idle"
EVICTED = "evicted"   # at --max-series, to make room for a new label set (metrics.aggregators)
SWEPT = (CONTAINER_GONE, IDLE)   # the reasons of the sweep
REASONS = (*SWEPT, EVICTED)

# The container columns that tell which container (or pod, image, ...) a series belongs to.
IDENTITY_COLUMNS = frozenset(CONTAINER_COLUMN_NAMES) - {"k8s.node"}

Key = Hashable


@dataclass(frozen=True)
class SeriesPolicy:
    """When series leave (seconds, by the monotonic clock)."""

    grace: float = 300.0          # a series of a gone container stays this long after it last moved
    idle_timeout: float = 0.0     # any series that has not moved this long leaves; 0: never
    sweep_period: float = 10.0  # how often the sweep runs: a series leaves up to this much late


def container_views(containers: Iterable, columns_of: Callable = lambda c: c.columns()) -> list[dict[str, str]]:
    """The container columns rows of live containers can carry: each container's own, and for a
    pod's container the pod-only view (rows of a namespace shared by the pod carry no container).
    `columns_of`: a container's columns (the collection's adds its pod's owner and labels)."""
    views = []
    for container in containers:
        views.append(columns_of(container))
        if container.k8s_pod:
            views.append(columns_of(container.pod_only()))
    return views


def _is_identity(column: str) -> bool:
    return column in IDENTITY_COLUMNS or pod_label_key(column) is not None


def _identity(label_columns: tuple[str, ...]) -> tuple[tuple[str, ...], Callable[[Any], tuple]] | None:
    """(identity column names, series key -> their values) for a metric; None when its labels carry
    no container column. Keys are shaped as aggregators make them: a bare value for one label."""
    positions = [i for i, column in enumerate(label_columns) if _is_identity(column)]
    if not positions:
        return None
    names = tuple(label_columns[i] for i in positions)
    if len(label_columns) == 1:
        return names, lambda key: (key,)
    get = itemgetter(*positions)
    if len(positions) == 1:
        return names, lambda key: (get(key),)
    return names, get


class SeriesSweeper:
    """Removes the series that left from the aggregators, every `policy.sweep_period` seconds.

    `aggregators()` gives the trace aggregators of the running config (read anew at each sweep, so
    a reload is followed); `containers()` the live containers (objects with `columns()`,
    `k8s_pod` and `pod_only()`, as the container collection gives), `columns_of` their columns as
    rows carry them. `clock` must be the aggregators'.
    """

    def __init__(self, aggregators: Callable[[], Iterable[TraceAggregator]], containers: Callable[[], Iterable],
                 policy: SeriesPolicy = SeriesPolicy(), clock: Callable[[], float] = time.monotonic,
                 columns_of: Callable = lambda c: c.columns()) -> None:
        self.policy = policy
        self._columns_of = columns_of
        self._aggregators, self._containers, self._clock = aggregators, containers, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> dict[str, int]:
        """One pass over every aggregator; the series removed, by reason."""
        now = self._clock()
        views: list[dict[str, str]] | None = None   # read once per sweep, and only if needed
        live: dict[tuple[str, ...], set[tuple]] = {}  # identity columns -> live projections
        removed = dict.fromkeys(SWEPT, 0)
        for aggregator in list(self._aggregators()):
            identity = _identity(tuple(aggregator.bound.label_columns))
            projections = None
            if identity is not None:
                names = identity[0]
                if names not in live:
                    if views is None:
                        views = container_views(self._containers(), self._columns_of)
                    live[names] = {tuple(view.get(n, "") for n in names) for view in views}
                projections = live[names]
            gone, idle = self._stale(aggregator.last_moved(), now, identity, projections)
            if gone:
                removed[CONTAINER_GONE] += aggregator.expire(gone, CONTAINER_GONE)
            if idle:
                removed[IDLE] += aggregator.expire(idle, IDLE)
        if any(removed.values()):
            log.debug("series sweep removed %s", removed)
        return removed

    def _stale(self, moved: list[tuple[Key, float]], now: float, identity, live: set[tuple] | None):
        """(series of a gone container, idle series) among `moved`, each as (key, last moved)."""
        grace, idle_timeout = self.policy.grace, self.policy.idle_timeout
        gone, idle = [], []
        values_of = identity[1] if identity is not None else None
        for key, when in moved:
            quiet = now - when
            if values_of is not None and live is not None and quiet >= grace:
                values = values_of(key)
                if any(values) and values not in live:
                    gone.append((key, when))
                    continue
            if idle_timeout > 0 and quiet >= idle_timeout:
                idle.append((key, when))
        return gone, idle

    # -- the thread ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="ig-series-sweep", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.policy.sweep_period):
            try:
                self.sweep()
            except Exception as exc:  # a failed pass must not end the lifecycle: the next one retries
                loop_errors.record("series-sweep", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
