"""Per-metric state: counters and histograms fed by event batches, gauges computed from snapshots.

Each aggregator owns its state and builds prometheus_client metric families in `collect()` at
scrape time, like prometheus_client's ProcessCollector. `ingest` runs in gadget threads and
`collect` in HTTP scrape threads: one lock per aggregator, held only to merge a batch or to copy
the state; label values are formatted after the lock is released.

Speed is the point (>= 1M events/s on one core). The per-row work is done by C code only: `filter`
with the compiled selector (the one Python call per row), `operator.itemgetter` for the series key,
`collections.Counter` to count keys, `map(list.append, map(groups.__getitem__, ...))` on a
defaultdict to group a field's values per series, `bisect` through `functools.partial` to place
them in buckets (a native histogram's too: `metrics.native`). Python-level loops run per distinct
series of a batch (a handful), never per row.

Series keys are what `itemgetter(*label_columns)` returns: a tuple for two or more labels, the bare
value for one, and `()` for none. They become label text (`naming.label_value`) per series at
collect time, not per event.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections import Counter, OrderedDict, defaultdict, deque
from functools import partial
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Callable, Hashable, Iterable, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from ..naming import label_value
from ..nativehist import NativeBucketing, NativeCounts
from .exact import exact_value, split_sum
from .exemplars import Example, ExemplarColumns
from .lifecycle import EVICTED
from .native import NativeHistogramFamily, NativePlacer
from .protocols import MetricBinding
from .series import Move, SeriesState

if TYPE_CHECKING:
    from ..kernel.plan import Placement

__all__ = ["TraceAggregator", "CounterAggregator", "HistogramAggregator", "GaugeAggregator", "DEFAULT_MAX_SERIES"]

log = logging.getLogger("igcore.metrics")

DEFAULT_MAX_SERIES = 10000

Key = Hashable
LastRows = dict[Key, dict[int, dict]]   # series key -> bucket index -> the batch's latest row there

_exhaust: Callable[[Iterable], deque] = partial(deque, maxlen=0)  # runs an iterator to its end in C, keeping nothing


# --- per-batch helpers (all per-row work in C) -------------------------------------------------


def _series_key(columns: tuple[str, ...]) -> Callable[[dict], Key] | None:
    """Row -> series key, in C. None when there are no labels (one series, key `()`).

    With one column itemgetter returns the bare value rather than a 1-tuple: that is kept as the
    key (a lambda wrapping it would be a Python call per row) and handled by `_label_texts`.
    """
    return itemgetter(*columns) if columns else None


def _label_texts(count: int) -> Callable[[Key], list[str]]:
    """Series key -> label values, matching the key shapes of `_series_key`."""
    if count == 0:
        return lambda key: []
    if count == 1:
        return lambda key: [label_value(key)]
    return lambda key: list(map(label_value, cast(tuple, key)))


def _count_keys(rows: list[dict], keys: Iterable[Key] | None) -> dict[Key, int]:
    if keys is None:
        return {(): len(rows)}
    return Counter(keys)  # Counter counts an iterable in C (_count_elements)


def _group(keys: Iterable[Key] | None, items: Iterable) -> dict[Key, list]:
    """Series key -> the items (a field's values, or the rows) of that series, in their order."""
    if keys is None:
        return {(): list(items)}
    groups: defaultdict = defaultdict(list)
    # groups[key].append(item) for every pair, without a Python-level loop.
    _exhaust(map(list.append, map(groups.__getitem__, keys), items))
    return groups


def _tally(rows: list[dict], keys: Iterable[Key] | None, field: Callable | None) -> dict[Key, Move]:
    """Per series of a batch (`keys`: one per row, None for one series): the row count, or the
    field's sum."""
    if field is None:
        return {k: Move(n, n) for k, n in _count_keys(rows, keys).items()}
    return {k: Move(len(vs), *split_sum(vs)) for k, vs in _group(keys, map(field, rows)).items()}


# --- the series cap ----------------------------------------------------------------------------


class _SeriesCap:
    """At most `max_series` label sets per metric (--max-series). A counter or histogram makes room
    for a new label set by evicting the series updated least recently (`TraceAggregator._apply`),
    so no workload keeps the others out for good; a gauge, which keeps nothing between snapshots,
    drops the rows of a snapshot's further label sets, counted in `dropped`. One warning per
    metric, the first time.

    Counting rows rather than label sets keeps the figure independent of how rows were batched,
    and needs no memory of the refused label sets (which would defeat the cap).
    """

    def __init__(self, name: str, max_series: int) -> None:
        self.name, self.max_series = name, max_series
        self.dropped = 0
        self._warned = False

    def drop(self, rows: int) -> bool:
        """Count dropped rows; the caller holds its lock. True the first time: call `warn()` once
        the lock is released."""
        self.dropped += rows
        return self.reached()

    def reached(self) -> bool:
        """True the first time the cap is reached (the caller holds its lock)."""
        first, self._warned = not self._warned, True
        return first

    def warn(self, evicts: bool) -> None:
        if evicts:
            log.warning("metric %s reached --max-series %d label sets: each new label set evicts the series "
                        "updated least recently (counted in ig_series_expired_total{reason=\"evicted\"})",
                        self.name, self.max_series, extra={"metric": self.name, "reason": "max_series"})
        else:
            log.warning("metric %s reached --max-series %d label sets: rows of further label sets of a "
                        "snapshot are dropped (counted in ig_series_dropped_total)", self.name, self.max_series,
                        extra={"metric": self.name, "reason": "max_series"})


# --- trace aggregators -------------------------------------------------------------------------


class _Aggregator:
    """What every aggregator shares: the bound metric, its compiled per-row tools, the cap, a lock."""

    placement: Placement   # where the engine placed the metric (kernel.plan)

    def __init__(self, bound: MetricBinding, max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.bound = bound
        self._predicate = bound.predicate
        self._key = _series_key(tuple(bound.label_columns))
        self._labels = _label_texts(len(bound.label_columns))
        self._field = None if bound.field_column is None else itemgetter(bound.field_column)
        self._cap = _SeriesCap(bound.config.name, max_series)
        self._lock = threading.Lock()

    @property
    def series_dropped(self) -> int:
        """Snapshot rows not counted because their label set was beyond the cap (gauges; counters
        and histograms evict instead, and count only what a kernel map had no room for)."""
        return self._cap.dropped

    def _matching(self, rows: list[dict]) -> list[dict]:
        return rows if self._predicate is None else list(filter(self._predicate, rows))

    def _keys(self, rows: list[dict]) -> Iterable[Key] | None:
        """Each row's series key, in C; None when there are no labels (one series, key `()`)."""
        return None if self._key is None else map(self._key, rows)


class TraceAggregator(_Aggregator, ABC):
    """A metric of a trace gadget: fed by batches of rows, read at scrape time.

    `ingest(rows)` gets every batch of the gadget (rows keyed by canonical column names, each row
    carrying every column of the gadget's schema plus the container columns); `collect()` builds
    the metric families from state the aggregator owns. Both may run at once in different threads.

    Series have a lifecycle: each remembers when it last moved (one clock read per batch, stored
    per series of the batch, never per row); the sweep (`metrics.lifecycle`) reads `last_moved()`
    and removes what it decides has left with `expire()`, which makes room under the cap again. At
    the cap, a new label set evicts the series updated least recently: `_recency` holds the keys in
    that order (a move to its end per series of a batch), so the eviction is a pop from its front;
    `_series` keeps the order of first appearance, which the exposition follows.

    The interface also fits aggregation inside the kernel (counters and histograms kept in BPF maps,
    read at scrape time, as cloudflare's ebpf_exporter does): such a subclass does nothing in
    `ingest` (the kernel already counted) and reads the map in `collect`, reporting `series_count`
    and `series_dropped` from what the map holds, and overrides `last_moved`/`expire` to read and
    delete map entries.

    A subclass turns a batch into a `Move` per series and says how a new series starts
    (`_new_state(now)`); `_apply` adds the moves under the lock. With --exemplars, the same pass
    also hands back the latest row per (series, bucket index), so a row's series key (and bucket)
    is computed once for both; `ExemplarColumns.examples` makes them Examples outside the lock.
    """

    _series: dict[Key, SeriesState]

    def __init__(self, bound: MetricBinding, max_series: int = DEFAULT_MAX_SERIES,
                 clock: Callable[[], float] = time.monotonic, exemplars: ExemplarColumns | None = None) -> None:
        super().__init__(bound, max_series)
        self._clock = clock  # when series last moved; the sweep (metrics.lifecycle) reads the same clock
        self.exemplars = exemplars   # None: no exemplars (the default; --exemplars, docs/config.md)
        self._series = {}
        self._recency: OrderedDict[Key, None] = OrderedDict()   # the same keys, least recently updated first
        self.series_expired: Counter[str] = Counter()  # reason -> label sets removed (the sweep, evictions)

    @property
    def series_count(self) -> int:
        """Label sets currently kept."""
        return len(self._series)

    def last_moved(self) -> list[tuple[Key, float]]:
        """(series key, clock when it last moved) of every series kept."""
        with self._lock:
            items = list(self._series.items())  # in C: the lock is held for a copy only
        return [(key, state.moved) for key, state in items]

    def expire(self, stale: Iterable[tuple[Key, float]], reason: str) -> int:
        """Remove each series of `stale` (key, last moved) that has not moved since; count it
        under `reason`. A series that moved after the sweep looked stays."""
        removed = 0
        with self._lock:
            series = self._series
            for key, moved in stale:
                state = series.get(key)
                if state is not None and state.moved == moved:
                    del series[key], self._recency[key]
                    self._removed(key)
                    removed += 1
            self.series_expired[reason] += removed
        return removed

    def _apply(self, batch: Iterable[tuple[Key, Move]], now: float) -> bool:
        """Account a batch's (series key, move) pairs; the caller holds the lock. True when the cap
        was reached for the first time: call `self._cap.warn(True)` once the lock is released.

        The series of one batch count as updated together: the kept ones are updated first, then
        each new one gets its place (at the cap, by evicting the series updated least recently),
        so a new label set never evicts a series that moved in the same batch while older ones stay.
        """
        series, recency, fresh = self._series, self._recency, []
        to_end = recency.move_to_end
        for key, move in batch:
            state = series.get(key)
            if state is None:
                fresh.append((key, move))
            else:
                state.add(move, now)
                to_end(key)
        if not fresh:
            return False
        room, evicted = self._cap.max_series - len(series), 0
        new_state, removed = self._new_state, self._removed
        for key, move in fresh:
            if room > 0:
                room -= 1
            else:
                old, _ = recency.popitem(last=False)
                del series[old]
                removed(old)
                evicted += 1
            state = series[key] = new_state(now)
            recency[key] = None
            state.add(move, now)
        if not evicted:
            return False
        self.series_expired[EVICTED] += evicted
        return self._cap.reached()

    def _removed(self, key: Key) -> None:
        """A series left (the caller holds the lock). The kernel path deletes its map entries."""

    def ingest(self, rows: list[dict]) -> None:
        """Account a batch of rows from the gadget."""
        matching = self._matching(rows)
        if not matching:
            return
        exemplars = self.exemplars
        batch, last = self._per_series(matching, exemplars is not None)
        examples = None if exemplars is None or not last else exemplars.examples(last, self._field)
        now = self._clock()
        with self._lock:
            warn = self._apply(batch, now)
            if examples:
                self._keep(examples)
        if warn:
            self._cap.warn(True)

    def collect(self) -> list[Metric]:
        """The metric families, built now from a copy of the state."""
        return self._families()

    def _keep(self, examples: dict[Key, dict[int, Example]]) -> None:
        """Each series' latest examples replace its earlier ones (the caller holds the lock)."""
        series = self._series
        for key, latest in examples.items():
            state = series.get(key)
            if state is None:   # evicted at the cap by a later series of the same batch
                continue
            if state.examples is None:
                state.examples = latest   # made for this batch: not shared
            else:
                state.examples.update(latest)

    def _exemplar(self, example: Example | None):
        """prometheus_client's Exemplar of an example, or None."""
        return None if example is None or self.exemplars is None else self.exemplars.exemplar(example)

    @abstractmethod
    def _per_series(self, matching: list[dict], with_rows: bool) -> tuple[Iterable[tuple[Key, Move]], LastRows | None]:
        """What a batch's matching rows add, per series; and when `with_rows`, the latest row per
        (series key, bucket index) for the exemplars (a counter's index is 0), or None."""

    @abstractmethod
    def _new_state(self, now: float) -> SeriesState:
        """The state of a series with nothing counted yet."""

    @abstractmethod
    def _families(self) -> list[Metric]:
        """The families of `collect`."""


class CounterAggregator(TraceAggregator):
    """+1 per matching row, or + the row's `field` (ints stay ints; floats summed exactly)."""

    def _per_series(self, matching: list[dict], with_rows: bool) -> tuple[Iterable[tuple[Key, Move]], LastRows | None]:
        if not with_rows:
            return _tally(matching, self._keys(matching), self._field).items(), None
        if self._key is None:
            return _tally(matching, None, self._field).items(), {(): {0: matching[-1]}}
        keys = list(map(self._key, matching))   # once, for the counts and the exemplars
        last = dict(zip(keys, matching))   # in C: the last row per key
        return _tally(matching, keys, self._field).items(), {key: {0: row} for key, row in last.items()}

    def _new_state(self, now: float) -> SeriesState:
        return SeriesState(now)

    def _families(self) -> list[Metric]:
        with self._lock:
            items = [(key, state.integer, state.parts, state.examples.get(0) if state.examples else None)
                     for key, state in self._series.items()]
        bound, exemplar = self.bound, self._exemplar
        family = CounterMetricFamily(bound.family_name, bound.description, labels=bound.label_names)
        for key, integer, parts, example in items:
            family.add_metric(self._labels(key), exact_value(integer, parts), exemplar=exemplar(example))
        return [family]


class HistogramAggregator(TraceAggregator):
    """Observes the row's `field`. Buckets are (previous, bound], plus +Inf; `_sum` is exact. A
    native histogram (`bound.native`) keeps each series' NativeCounts instead, and its `_sum` is the
    exact sum of the field times the multiplier, rounded once."""

    def __init__(self, bound: MetricBinding, max_series: int = DEFAULT_MAX_SERIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(bound, max_series, clock)
        self._native = bound.native
        self._placer = None if self._native is None else NativePlacer(self._native)
        bounds = tuple(bound.bounds or ())
        self._les = [floatToGoString(b) for b in bounds] + ["+Inf"]
        self._width = len(bounds) + 1
        # bisect_left: a value equal to a bound belongs to that bound's bucket ("le"). Integral
        # bounds are also kept as ints, for int values: Python compares int with float exactly, so
        # the placement is the same, and int-int comparisons are ~25% faster.
        as_ints = tuple(int(b) if math.isfinite(b) and float(b).is_integer() else b for b in bounds)
        self._place_float = partial(bisect_left, bounds)
        self._place_int = partial(bisect_left, as_ints)

    def _per_series(self, matching: list[dict], with_rows: bool) -> tuple[Iterable[tuple[Key, Move]], LastRows | None]:
        field = self._field
        assert field is not None, "a histogram observes a field (config.checks)"
        batch = []
        if self._placer is not None:
            # No exemplars: a native histogram's classic rows are made at scrape time, and
            # Prometheus 2.42 reads no native exemplars.
            native = self._placer.counts
            groups = _group(self._keys(matching), map(field, matching)).items()
            return [(key, Move(len(values), *split_sum(values), native=native(values))) for key, values in groups], None
        if not with_rows:
            for key, values in _group(self._keys(matching), map(field, matching)).items():
                place = self._place_int if type(values[0]) is int else self._place_float
                batch.append((key, Move(len(values), *split_sum(values), Counter(map(place, values)))))
            return batch, None
        # Group the rows rather than the values: each row's bucket, placed once, is both counted
        # and the key of the series' latest row per bucket.
        last: LastRows = {}
        for key, rows in _group(self._keys(matching), matching).items():
            values = list(map(field, rows))
            buckets = list(map(self._place_int if type(values[0]) is int else self._place_float, values))
            hits = Counter(buckets)
            batch.append((key, Move(len(values), *split_sum(values), hits)))
            # The last row per bucket: a search from the end (in C) per bucket hit, which finds
            # it sooner than a dict(zip(buckets, rows)) of every row would.
            backwards, end = buckets[::-1], len(rows) - 1
            last[key] = {index: rows[end - backwards.index(index)] for index in hits}
        return batch, last

    def _new_state(self, now: float) -> SeriesState:
        if self._native is not None:
            return SeriesState(now, native=NativeCounts())
        return SeriesState(now, buckets=[0] * self._width)

    def _families(self) -> list[Metric]:
        if self._native is not None:
            return self._native_families(self._native)
        with self._lock:
            items = [(key, list(state.buckets or ()), state.integer, state.parts,
                      state.examples and dict(state.examples)) for key, state in self._series.items()]
        bound, les = self.bound, self._les
        family = HistogramMetricFamily(bound.family_name, bound.description, labels=bound.label_names)
        for key, counts, integer, parts, examples in items:
            # `_count` is the +Inf bucket: prometheus_client takes it from there.
            buckets = list(zip(les, accumulate(counts)))
            if examples:
                buckets = self._with_exemplars(buckets, examples)
            family.add_metric(self._labels(key), buckets, exact_value(integer, parts))
        return [family]

    def _with_exemplars(self, buckets: list, examples: dict[int, Example]) -> list:
        """(le, count) pairs, with the exemplar of each bucket that has one as a third item."""
        exemplar = self._exemplar
        return [(le, count, exemplar(examples[i])) if i in examples else (le, count)
                for i, (le, count) in enumerate(buckets)]

    def _native_families(self, bucketing: NativeBucketing) -> list[Metric]:
        with self._lock:
            items = [(key, cast(NativeCounts, state.native).copy(), state.integer, state.parts)
                     for key, state in self._series.items()]
        bound = self.bound
        family = NativeHistogramFamily(bound.family_name, bound.description, bound.label_names)
        for key, counts, integer, parts in items:
            counts.sum = bucketing.total(exact_value(integer, parts))
            family.add_series(self._labels(key), counts, bucketing)
        return [family]


# --- gauges ------------------------------------------------------------------------------------


class GaugeAggregator(_Aggregator):
    """A metric of a snapshot gadget: per label set, the number of matching rows of the snapshot,
    or the sum of `field`. Nothing is kept between scrapes: a series exists only while the latest
    snapshot has rows for it. No `ingest`: the engine feeds rows to `TraceAggregator`s only."""

    def __init__(self, bound: MetricBinding, max_series: int = DEFAULT_MAX_SERIES) -> None:
        super().__init__(bound, max_series)  # the lock: concurrent scrapes update the counters
        self._series_count = 0

    @property
    def series_count(self) -> int:
        """Label sets in the latest `collect_from`."""
        return self._series_count

    def collect_from(self, rows: list[dict]) -> list[Metric]:
        bound = self.bound
        family = GaugeMetricFamily(bound.family_name, bound.description, labels=bound.label_names)
        matching = self._matching(rows)
        tally = _tally(matching, self._keys(matching), self._field) if matching else {}
        kept = list(tally.items())[: self._cap.max_series]
        dropped = sum(move.rows for move in list(tally.values())[len(kept):])
        for key, move in kept:
            family.add_metric(self._labels(key), exact_value(move.integer, move.parts))
        warn = False
        with self._lock:
            self._series_count = len(kept)
            if dropped:
                warn = self._cap.drop(dropped)
        if warn:
            self._cap.warn(False)
        return [family]
