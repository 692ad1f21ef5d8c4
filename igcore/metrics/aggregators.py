"""Per-metric state: counters and histograms fed by event batches, gauges computed from snapshots.

Each aggregator owns its state and builds prometheus_client metric families in `collect()` at
scrape time, like prometheus_client's ProcessCollector. `ingest` runs in gadget threads and
`collect` in HTTP threads: a lock per aggregator, held briefly, and collect copies the state.

Speed: the per-row work is pushed into C where possible (filter with the compiled predicate,
operator.itemgetter for the label tuple, Counter's C counting), so the Python-level loop runs per
distinct label set of a batch, not per row.

The interface also fits aggregation inside the kernel (counters kept in BPF maps, read at scrape
time as cloudflare's ebpf_exporter does): such an aggregator's `ingest` does nothing and its
`collect` reads the map.
"""

from __future__ import annotations

import bisect
import logging
import threading
from abc import ABC, abstractmethod
from collections import Counter
from operator import itemgetter
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from ..naming import label_value

log = logging.getLogger("igcore.metrics")


def key_function(columns: tuple[str, ...]) -> Callable[[dict], tuple]:
    """Row -> label tuple, in C. itemgetter returns a scalar for one column, so wrap that case."""
    if not columns:
        return lambda row: ()
    if len(columns) == 1:
        get = itemgetter(columns[0])
        return lambda row: (get(row),)
    return itemgetter(*columns)


def _label_values(key: tuple) -> list[str]:
    return [label_value(v) for v in key]


class _Capped:
    """The --max-series cap: label sets beyond it are dropped and counted, with one warning."""

    def __init__(self, name: str, max_series: int) -> None:
        self.name, self.max_series = name, max_series
        self.series_dropped = 0
        self._warned = False

    def admit(self, state: dict, key) -> bool:
        if key in state or len(state) < self.max_series:
            return True
        self.series_dropped += 1
        if not self._warned:
            self._warned = True
            log.warning("metric %s reached --max-series %d: further label sets are dropped (counted in "
                        "ig_series_dropped_total)", self.name, self.max_series)
        return False


class TraceAggregator(ABC):
    """A metric fed by batches of rows from a trace gadget."""

    def __init__(self, bound, max_series: int = 10000) -> None:
        self.bound = bound
        self._match = bound.predicate
        self._key = key_function(tuple(bound.label_columns))
        self._cap = _Capped(bound.config.name, max_series)
        self._lock = threading.Lock()

    @property
    def series_dropped(self) -> int:
        return self._cap.series_dropped

    def _matching(self, rows: list[dict]) -> Iterable[dict]:
        return rows if self._match is None else filter(self._match, rows)

    @abstractmethod
    def ingest(self, rows: list[dict]) -> None: ...

    @abstractmethod
    def collect(self) -> list[Metric]: ...


class CounterAggregator(TraceAggregator):
    """+1 per matching row, or + the row's `field`."""

    def __init__(self, bound, max_series: int = 10000) -> None:
        super().__init__(bound, max_series)
        self._values: dict[tuple, int | float] = {}
        field = bound.field_column
        self._field = None if field is None else itemgetter(field)

    def ingest(self, rows: list[dict]) -> None:
        batch: Counter = Counter()
        matching = self._matching(rows)
        if self._field is None:
            batch.update(map(self._key, matching))  # C-level counting
        else:
            key, field = self._key, self._field
            for row in matching:
                batch[key(row)] += field(row)
        if not batch:
            return
        with self._lock:
            values, admit = self._values, self._cap.admit
            for k, n in batch.items():
                if k in values:
                    values[k] += n
                elif admit(values, k):
                    values[k] = n

    def series_count(self) -> int:
        return len(self._values)

    def collect(self) -> list[Metric]:
        with self._lock:
            items = list(self._values.items())
        family = CounterMetricFamily(self.bound.family_name, self.bound.description, labels=self.bound.label_names)
        for key, value in items:
            family.add_metric(_label_values(key), value)
        return [family]


class HistogramAggregator(TraceAggregator):
    """Observes the row's `field`; buckets are (previous, bound], plus +Inf."""

    def __init__(self, bound, max_series: int = 10000) -> None:
        super().__init__(bound, max_series)
        self._bounds = list(bound.bounds)
        self._field = itemgetter(bound.field_column)
        # label tuple -> [bucket counts (len(bounds)+1, non-cumulative), sum]
        self._series: dict[tuple, list] = {}

    def ingest(self, rows: list[dict]) -> None:
        key, field, bounds = self._key, self._field, self._bounds
        place = bisect.bisect_left
        pairs: Counter = Counter()
        sums: dict[tuple, int | float] = {}
        for row in self._matching(rows):
            k, v = key(row), field(row)
            pairs[(k, place(bounds, v))] += 1
            sums[k] = sums.get(k, 0) + v
        if not sums:
            return
        width = len(bounds) + 1
        with self._lock:
            series, admit = self._series, self._cap.admit
            admitted = {}
            for k, total in sums.items():
                state = series.get(k)
                if state is None and admit(series, k):
                    state = series[k] = [[0] * width, 0]
                if state is not None:
                    state[1] += total
                    admitted[k] = state[0]
            for (k, i), n in pairs.items():
                counts = admitted.get(k)
                if counts is not None:
                    counts[i] += n

    def series_count(self) -> int:
        return len(self._series)

    def collect(self) -> list[Metric]:
        with self._lock:
            items = [(k, list(counts), total) for k, (counts, total) in self._series.items()]
        family = HistogramMetricFamily(self.bound.family_name, self.bound.description, labels=self.bound.label_names)
        les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]
        for key, counts, total in items:
            cumulative, running = [], 0
            for le, n in zip(les, counts):
                running += n
                cumulative.append((le, running))
            family.add_metric(_label_values(key), cumulative, total)
        return [family]


class GaugeAggregator:
    """Per label set, the number of matching snapshot rows, or the sum of `field`."""

    def __init__(self, bound, max_series: int = 10000) -> None:
        self.bound = bound
        self._match = bound.predicate
        self._key = key_function(tuple(bound.label_columns))
        self._field = None if bound.field_column is None else itemgetter(bound.field_column)
        self._cap = _Capped(bound.config.name, max_series)

    @property
    def series_dropped(self) -> int:
        return self._cap.series_dropped

    def collect_from(self, rows: list[dict]) -> list[Metric]:
        matching = rows if self._match is None else filter(self._match, rows)
        values: Counter = Counter()
        if self._field is None:
            values.update(map(self._key, matching))
        else:
            key, field = self._key, self._field
            for row in matching:
                values[key(row)] += field(row)
        family = GaugeMetricFamily(self.bound.family_name, self.bound.description, labels=self.bound.label_names)
        kept: dict = {}
        for key, value in values.items():
            if self._cap.admit(kept, key):
                kept[key] = value
                family.add_metric(_label_values(key), value)
        return [family]
