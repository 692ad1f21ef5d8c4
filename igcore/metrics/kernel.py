"""Counters and histograms kept in BPF maps by the gadget's program (igcore.kernel), read at scrape.

Each aggregator is the user-space one with `ingest` doing nothing: a pull, at scrape and before the
series sweep looks, reads the maps (in a few system calls, and only if a metric updated them since)
and adds what each entry moved since the last pull to the same series state the user-space path
keeps. So exposition, the series cap, the
sweep and reloads behave the same on both paths.

A map key holds the gadget's container key and the kernel label columns. The pull turns the
container key into container columns as the enricher does rows (a container, the host, or pending
for at most the enricher's hold time), applies the selectors on container columns and the host rule,
and merges keys that give the same labels. An entry whose container has gone is read one last time
and deleted, so the maps hold only what can still move.

A series that leaves (evicted at --max-series to make room for a new label set, or removed by the
sweep) takes its map entries with it: each is deleted with its last value in one system call
(`KernelProgram.take`), and what it counted since the pull that last read it is carried to the
next pull as an update of its label set, which starts a new series then, as a user-space row of that
label set arriving after the eviction would. So a map holds entries of kept series only (the
evicted ones would otherwise fill it and shut new label sets out in the kernel), and no event
is counted twice or lost.

With --exemplars, a counter's or classic histogram's entry ends with its last event's process and
time where the program carries them (igcore.kernel.codegen, `Layout.exemplar`): a series that moved
gets as exemplar the latest of its entries that moved, named by its `pid` (the thread group id, as
the gadgets' `pid` columns) and the container columns of the entry's key, at the event's time; a
counter's is valued at what the series moved by in the pull, a histogram's is the exemplar of its
event's bucket, valued at its field (docs/config.md, Exemplars).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from prometheus_client.metrics_core import Metric

from ..containers.resolver import PENDING
from ..kernel.codegen import EXEMPLAR
from ..kernel.native import POSITIVE, bucket_word, parse_word
from ..kernel.plan import USER, Placement
from ..nativehist import NativeCounts
from ..selectors import compile_selectors
from .aggregators import CounterAggregator, HistogramAggregator, TraceAggregator, _group
from .exemplars import Example, monotonic_to_wall
from .native import NativeHistogramFamily
from .series import Move, SeriesState

if TYPE_CHECKING:
    from ..config import BoundMetric
    from ..containers.enricher import Enricher
    from ..kernel.codegen import Layout
    from ..kernel.program import KernelProgram

_DROP = object()   # the entry's events are not counted (a host row without --host, a selector)


class KernelAggregator(TraceAggregator):
    """What every aggregator over BPF maps shares: attaching to a program, and the pull. A kernel
    aggregator is this class first, then the user-space one it counts like (its `_as_move`)."""

    _program: KernelProgram | None = None
    _layout: Layout          # set by `attach`; read only while `_program` is set
    _enricher: Enricher      # likewise
    _counted_words: int | None = None   # the value's words that count: [:this] (`_delta`)
    _in_user_space = False
    _dropped_before = 0   # events earlier programs of this metric found their map full for

    def __init__(self, bound: BoundMetric, placement: Placement, **kwargs) -> None:
        super().__init__(bound, **kwargs)
        self.placement = placement
        schema = bound.spec.columns
        self._container_test = compile_selectors(placement.container_selectors, schema)
        self._kernel_labels = tuple(c.name for c in placement.key_columns)   # config order
        self._entries: dict[bytes, float] = {}  # raw key -> when a pull first saw it (the pending hold)
        self._last: dict[bytes, bytes] = {}     # raw key -> raw value at the last pull that counted it
        self._tokens: dict[bytes, object] = {}  # raw key -> what `_live()` holds while its container runs
        self._owner: dict[bytes, object] = {}   # raw key -> the series it counted into at the last pull
        self._behind: dict[object, set[bytes]] = {}   # series key -> its raw keys (the reverse of _owner)
        self._leaving: list = []   # series keys removed since the last pull: their entries go
        self._carry: dict[object, list] = {}   # series key -> what its deleted entries counted after their last read
        self._live_before: set = set()
        self._read_before: list[tuple[bytes, bytes]] | None = None   # the entries the last pull read
        self._pending = False   # the last pull left an entry waiting for its container
        self._pull_lock = threading.Lock()
        label_columns = tuple(bound.label_columns)
        self._row_key = itemgetter(*label_columns) if label_columns else (lambda row: ())

    def attach(self, program: KernelProgram, enricher: Enricher) -> None:
        """Read from `program`'s map of this metric from now on (a reload may hand a new program)."""
        with self._pull_lock:
            self._dropped_before += self.kernel_dropped   # the counter goes on across programs
            if self._carry:   # counted by the old program after its last read: the series goes on
                self._merge(self._carry)
            self._program, self._enricher = program, enricher
            self._layout = program.layout_of(self.bound)
            # the last event's process and time, and a histogram's its field
            self._counted_words = -(EXEMPLAR.size // 8 + self._layout.histogram) if self._layout.exemplar else None
            self._entries, self._last, self._tokens, self._owner, self._behind = {}, {}, {}, {}, {}
            self._leaving, self._carry = [], {}
            self._read_before = None

    @property
    def attached(self) -> bool:
        return self._program is not None

    @property
    def kernel_dropped(self) -> int:
        program = self._program
        return program.drops(self._layout.index) if program is not None and program.is_loaded else 0

    @property
    def series_dropped(self) -> int:
        return self._cap.dropped + self._dropped_before + self.kernel_dropped

    def ingest(self, rows: list[dict]) -> None:
        """Nothing: the kernel counted these events already (unless the program fell back)."""
        if self._in_user_space:
            super().ingest(rows)

    def fall_back(self, reason: str) -> None:
        """The gadget's program did not load with this metric in it: count rows in user space."""
        with self._pull_lock:
            self._program = None
            self._in_user_space = True
            self.placement = Placement(USER, reason)

    def collect(self):
        self.pull()
        return super().collect()

    def last_moved(self):
        self.pull()
        return super().last_moved()

    def expire(self, stale, reason: str) -> int:
        removed = super().expire(stale, reason)
        if removed:
            with self._pull_lock:
                self._take_leaving()
        return removed

    def pull(self, final: bool = False) -> None:
        """`final`: the program's last read (a reload hands over to another): a key still waiting
        for its container counts as unclaimed now, as the enricher's held rows do when it closes."""
        with self._pull_lock:
            program = self._program
            if program is None or not program.is_loaded:
                return
            layout = self._layout
            entries = program.read(layout.index)
            moved: dict
            latest: dict = {}
            if entries is self._read_before and not self._pending and not self._carry:   # nothing moved
                moved, gone = {}, self._gone(False)
            else:
                moved, gone = self._moves(entries, final, latest)
                self._read_before = entries
            for raw in gone:   # read above for the last time: make room in the map
                program.forget(layout.index, raw)
                self._drop_entry(raw)
            carried, self._carry = self._carry, {}
            for key, delta in carried.items():   # counted after their entries' last read, then deleted
                total = moved.get(key)
                moved[key] = delta if total is None else self._plus(total, delta)
            if moved:
                self._merge(moved, self._examples_of(latest, moved))
            self._take_leaving()

    def _merge(self, moved: dict, examples: dict[object, dict[int, Example]] | None = None) -> None:
        now, as_move = self._clock(), self._as_move
        with self._lock:
            warn = self._apply([(key, as_move(delta)) for key, delta in moved.items()], now)
            if examples:
                self._keep(examples)
        if warn:
            self._cap.warn(True)

    def _examples_of(self, latest: dict, moved: dict) -> dict[object, dict[int, Example]] | None:
        """Series key -> bucket index -> the Example of its latest event (`latest`: series key ->
        (time, process word, container columns, field) of its entry that moved last): a counter's
        (index 0) valued at what it moved by, a histogram's at the event's field."""
        exemplars = self.exemplars
        if exemplars is None or not latest:
            return None
        to_wall, read_at, histogram = monotonic_to_wall(), time.time_ns(), self._layout.histogram
        examples: dict[object, dict[int, Example]] = {}
        for series, (ns, word, containers, seen) in latest.items():
            when = ns + to_wall if ns else read_at   # 0: read between the add and the stores
            if histogram:   # the bucket is the word's low half (codegen)
                examples[series] = {word & 0xFFFFFFFF: exemplars.of_entry(word >> 32, containers, when, seen)}
            else:
                examples[series] = {0: exemplars.of_entry(word >> 32, containers, when, sum(moved[series]))}
        return examples

    def _removed(self, key) -> None:
        if self._program is not None:   # (not after a fall back to user space: no entries to delete)
            self._leaving.append(key)   # under the aggregator's lock; the entries go under the pull's

    def _take_leaving(self) -> None:
        """Delete the map entries of the series that left; carry what they counted since their last
        read to the next pull (the caller holds the pull lock)."""
        leaving, self._leaving = self._leaving, []
        program = self._program
        if program is None or not program.is_loaded:
            return
        index = self._layout.index
        for key in leaving:
            for raw in self._behind.pop(key, ()):
                final, previous = program.take(index, raw), self._last.get(raw)
                self._drop_entry(raw)
                if final is None or previous is None or final == previous:
                    continue
                delta = self._delta(raw, final, previous)
                total = self._carry.get(key)
                self._carry[key] = delta if total is None else self._plus(total, delta)

    def _drop_entry(self, raw: bytes) -> None:
        """Forget what the pull knows of a map entry that was deleted."""
        self._entries.pop(raw, None)
        self._last.pop(raw, None)
        self._tokens.pop(raw, None)
        self._disown(raw)

    def _disown(self, raw: bytes) -> None:
        owner = self._owner.pop(raw, None)
        raws = self._behind.get(owner)
        if raws is not None:
            raws.discard(raw)
            if not raws:
                del self._behind[owner]

    def _moves(self, entries, final: bool = False, latest: dict | None = None) -> tuple[dict, list]:
        """Per series key, what its entries moved since the last pull; and the keys of gone containers.
        With an exemplar layout, `latest` gets per series key its latest event (`_examples_of`).

        An entry that moved is resolved again (once per container key and pull): a pod's network
        namespace gives the container while it is alone and only the pod once another container
        joins, and what moved since the last pull is counted as a row of now would be."""
        known, last, tokens = self._entries, self._last, self._tokens
        moved: dict = {}
        resolved: dict = {}
        now = time.monotonic()
        # In C: the entries that moved since the last pull (at rest, a scrape stops here)
        changed = [(raw, value) for raw, value in entries if last.get(raw) != value]
        self._pending = False
        exemplar = latest is not None and self._layout.exemplar and self.exemplars is not None
        for raw, value in changed:
            first_seen = known.setdefault(raw, now)
            series, token, containers = self._series_of(raw, now - first_seen, resolved, final)
            if series is None:
                self._pending = True
                continue   # pending: its counts wait in the map
            if token is not None:
                tokens[raw] = token
            if series is not _DROP:
                self._own(raw, series)
                delta = self._delta(raw, value, last.get(raw))
                total = moved.get(series)
                moved[series] = delta if total is None else self._plus(total, delta)
                if exemplar:
                    self._note_latest(cast(dict, latest), series, value, containers)
            last[raw] = value
        return moved, self._gone(bool(changed))

    def _note_latest(self, latest: dict, series, value: bytes, containers) -> None:
        """Keep the entry's last event for `series` if it is the latest seen in this pull."""
        words = self._layout.value.unpack(value)
        word, ns = words[-2:]
        before = latest.get(series)
        if before is None or ns > before[0]:
            latest[series] = (ns, word, containers, words[-3] if self._layout.histogram else None)

    def _own(self, raw: bytes, series) -> None:
        """Note that entry `raw` counts into `series` (a pod's entry may move to another series)."""
        if self._owner.get(raw) == series:
            return
        self._disown(raw)
        self._owner[raw] = series
        self._behind.setdefault(series, set()).add(raw)

    def _gone(self, changed: bool) -> list[bytes]:
        """Entries whose container has gone, looked for when an entry moved or containers changed."""
        live = self._live()
        if not changed and live == self._live_before:
            return []
        self._live_before = live
        return [raw for raw, token in self._tokens.items() if token not in live]

    def _series_of(self, raw: bytes, waited: float, resolved: dict, final: bool = False):
        """(series key, _DROP or None while pending; the token of its container for the gone test;
        the container columns)."""
        layout, enricher = self._layout, self._enricher
        items = layout.key.unpack(raw)
        found = resolved.get(items[1])
        if found is None:
            found = resolved[items[1]] = enricher.labels_for(items[1])
        labels, container = found
        if labels is PENDING:
            if waited < enricher.hold_seconds and not final:
                return None, None, None
            labels = enricher.labels_when_unclaimed()
        if labels is None:
            return _DROP, None, None
        row: dict[str, object] = dict(cast("dict[str, object]", labels))   # the container columns, once resolved
        for column, position, decode in zip(self._kernel_labels, layout.order, layout.decoders):
            row[column] = decode(items[2 + position])
        if self._container_test is not None and not self._container_test(row):
            return _DROP, _token(container, items[1]), labels
        return self._row_key(row), _token(container, items[1]), labels

    def _live(self) -> set:
        live: set[object] = set()
        for container in self._enricher.containers.containers():
            live.add(container.id)
            live.add(("netns", container.netns))
        return live

    def _delta(self, raw: bytes, value: bytes, previous: bytes | None):
        """What entry `raw` moved from `previous` (None: a new entry) to `value`: the value's words."""
        unpack, end = self._layout.value.unpack, self._counted_words
        new = unpack(value)[:end]   # not the last event's process and time (an exemplar layout)
        old = unpack(previous)[:end] if previous is not None else (0,) * len(new)
        return [a - b for a, b in zip(new, old)]

    @staticmethod
    def _plus(total, delta):
        """Two deltas (`_delta`) of one series as one."""
        return [a + b for a, b in zip(total, delta)]

    @staticmethod
    def _as_move(delta) -> Move:
        """What a pull's delta of a series (`_delta`, `_plus`) adds."""
        raise NotImplementedError


def _token(container, key_value: int):
    """What stays in `_live()` while the container runs; None for the host (never gone)."""
    if container is None:
        return None
    return container.id if container.id else ("netns", container.netns or key_value)


class KernelCounterAggregator(KernelAggregator, CounterAggregator):
    @staticmethod
    def _as_move(delta: list[int]) -> Move:
        (amount,) = delta
        return Move(0, amount)


class KernelHistogramAggregator(KernelAggregator, HistogramAggregator):
    def __new__(cls, bound: BoundMetric, *args, **kwargs):
        # the type's one kernel aggregator (metrictypes): a native histogram's maps read otherwise
        if cls is KernelHistogramAggregator and bound.native is not None:
            cls = KernelNativeHistogramAggregator
        return super().__new__(cls)

    @staticmethod
    def _as_move(delta: list[int]) -> Move:
        """The buckets' words, then the sum's."""
        buckets = delta[:-1]
        return Move(sum(buckets), delta[-1], buckets=dict(enumerate(buckets)))


class KernelNativeHistogramAggregator(KernelHistogramAggregator):
    """A native histogram computed in the kernel (docs/config.md, "Native histograms in the kernel"): one map
    entry per series and bucket (`ig_native`, its key ending with the bucket's word,
    igcore.kernel.native.bucket_word), holding the bucket's count and the field's sum. A series'
    state keeps {bucket word: count} and the exact sum of the field; collect turns them into the
    NativeCounts the user path keeps."""

    def __init__(self, bound: BoundMetric, placement: Placement, **kwargs) -> None:
        super().__init__(bound, placement, **kwargs)
        assert bound.native is not None
        self.native = bound.native

    def _delta(self, raw: bytes, value: bytes, previous: bytes | None):
        """{bucket word: [count, sum]} of the entry's bucket."""
        return {self._layout.key.unpack(raw)[-1]: super()._delta(raw, value, previous)}

    @staticmethod
    def _plus(total, delta):
        merged = dict(total)
        for word, moved in delta.items():
            before = merged.get(word)
            merged[word] = moved if before is None else [a + b for a, b in zip(before, moved)]
        return merged

    @staticmethod
    def _as_move(delta) -> Move:
        buckets = Counter({word: count for word, (count, _) in delta.items()})
        return Move(sum(buckets.values()), sum(total for _, total in delta.values()), buckets=buckets)

    def _per_series(self, matching: list[dict], with_rows: bool):
        """The rows of a program that fell back to user space, keyed by bucket as the kernel does; no
        exemplars (a native histogram has none, docs/config.md "Exemplars")."""
        field, native = self._field, self.native
        assert field is not None
        return [(key, Move(len(observed), sum(observed), buckets=Counter(bucket_word(native, v) for v in observed)))
                for key, observed in _group(self._keys(matching), map(field, matching)).items()], None

    def _new_state(self, now: float) -> SeriesState:
        return SeriesState(now, buckets=cast("list[int]", Counter()))   # {bucket word: count}

    def native_counts(self) -> list[tuple[Any, NativeCounts]]:
        """Per series key, its NativeCounts (what the user path keeps per series)."""
        with self._lock:
            items = [(key, dict(cast("Counter[int]", state.buckets)), state.integer)
                     for key, state in self._series.items()]
        return [(key, self._counts(buckets, integer)) for key, buckets, integer in items]

    def _counts(self, buckets: dict[int, int], raw_sum: int) -> NativeCounts:
        counts = NativeCounts(count=sum(buckets.values()), sum=self.native.total(raw_sum))
        for word, hits in buckets.items():
            side, index = parse_word(word)
            if side == 0:
                counts.zero += hits
            elif hits:
                target = counts.positive if side == POSITIVE else counts.negative
                target[index] = target.get(index, 0) + hits
        return counts

    def _families(self) -> list[Metric]:
        # The same family as the user path's: classic rows for the text formats, native for protobuf.
        bound = self.bound
        family = NativeHistogramFamily(bound.family_name, bound.description, bound.label_names)
        for key, counts in self.native_counts():
            family.add_series(self._labels(key), counts, self.native)
        return [family]
