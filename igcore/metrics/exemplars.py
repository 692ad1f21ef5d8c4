"""Exemplars (`--exemplars`): per series, and per bucket of a histogram, the latest event's process
and container, for the OpenMetrics scrape (docs/config.md, Exemplars).

Which columns an exemplar names comes from the gadget's schema: `pid` and `comm` where the gadget
has them, the columns it flags `exemplar=True` (trace dns's `name`), then the container columns
`k8s.namespace`, `k8s.pod` and `k8s.container`. Its time is the row's `timestamp` (ns since the
Unix epoch, or the kernel's monotonic clock where the column says `monotonic=True`); a gadget
without one (or a row where it is 0, unknown) gets the time its batch arrived.

A counter or histogram computed in the kernel (igcore.metrics.kernel) has no rows: its map entry
carries the last event's pid and time, and `of_entry` makes its Example from them and the container
columns of the entry's key.

The per-row work stays in C: the aggregator keeps the last row of each (series, bucket) of a
batch (`dict(zip(keys, rows))`) while it counts, and `examples` makes their Examples with `map`s;
a series keeps only the values it names (`Example`), and they become label text at scrape time,
fitted to OpenMetrics' limit of 128 characters for the label names and values together.
"""

from __future__ import annotations

import time
from functools import partial
from itertools import chain, repeat
from operator import add, itemgetter
from typing import Callable, Hashable, Iterable, Mapping, NamedTuple, TypeVar, cast

from prometheus_client.samples import Exemplar

from ..columns import Column, Schema
from ..naming import label_value, sanitize_label_name

__all__ = ["ExemplarColumns", "Example", "LIMIT", "fit", "monotonic_to_wall"]

# OpenMetrics: "The combined length of the label names and values of an Exemplar's LabelSet MUST NOT
# exceed 128 UTF-8 character code points."
LIMIT = 128
PROCESS_COLUMNS = ("pid", "comm")
CONTAINER_COLUMNS = ("k8s.namespace", "k8s.pod", "k8s.container")
TIME_COLUMN = "timestamp"

K = TypeVar("K", bound=Hashable)


class Example(NamedTuple):
    """What a series keeps of its latest event: the exemplar columns' values, the event's time
    (ns since the Unix epoch), and the value it added (1 for a count, else the field's value)."""

    values: tuple
    time_ns: int
    value: float


# Example from a (values, time_ns, value) tuple, in C (Example(...) is a Python-level call).
_example = cast(Callable[[tuple], Example], partial(tuple.__new__, Example))


def fit(names: list[str], values: list[str]) -> list[str]:
    """`values`, the longest cut to a common length so that names and values hold LIMIT characters
    at most. The same input always gives the same output; the names must fit (`ExemplarColumns`)."""
    room = LIMIT - sum(map(len, names))
    if sum(map(len, values)) <= room:
        return values
    lengths = sorted(map(len, values))
    left = len(lengths)
    for length in lengths:   # the shortest values stay whole while the rest could have as much each
        if length * left > room:
            break
        room -= length
        left -= 1
    cap = room // left
    return [v[:cap] for v in values]


class ExemplarColumns:
    """A gadget's exemplar columns, and how its rows become exemplars."""

    def __init__(self, schema: Schema) -> None:
        columns = [c for c in schema if c.name in PROCESS_COLUMNS or c.exemplar]
        columns += [c for name in CONTAINER_COLUMNS if (c := schema.get(name)) is not None and c not in columns]
        columns = _names_fitting(columns)
        self.names = [sanitize_label_name(c.name) for c in columns]
        self._columns = [c.name for c in columns]
        self._unknown = [c.kind.default() for c in columns]   # a row's value where the gadget did not know it
        pick = itemgetter(*(c.name for c in columns)) if columns else (lambda row: ())
        self._pick: Callable[[dict], tuple] = pick if len(columns) != 1 else (lambda row: (pick(row),))
        stamp = schema.get(TIME_COLUMN)
        self._time = itemgetter(stamp.name) if stamp is not None and stamp.kind.numeric else None
        self._monotonic = stamp is not None and stamp.monotonic

    def examples(self, last: dict[K, dict[int, dict]], value: Callable[[dict], float] | None
                 ) -> dict[K, dict[int, Example]]:
        """Series key -> bucket index -> the Example of its row (`last`: the rows; `value`: what a
        row adds, None for 1). The Examples of the whole batch are made at once, in C."""
        rows = list(chain.from_iterable(map(dict.values, last.values())))
        values = repeat(1) if value is None else map(value, rows)
        made = map(_example, zip(map(self._pick, rows), self._times(rows), values))
        # zip stops at the end of each series' indices, so each takes its own Examples in turn.
        return {key: dict(zip(indices, made)) for key, indices in last.items()}

    def of_entry(self, pid: int, containers: Mapping[str, object], time_ns: int, value: float) -> Example:
        """The Example of a kernel map entry: the process `pid` (0: unknown) and the container
        columns of its key; the other columns (`comm`) are unknown there."""
        known = {**containers, "pid": pid}
        values = tuple(known.get(name, unknown) for name, unknown in zip(self._columns, self._unknown))
        return Example(values, time_ns, value)

    def _times(self, rows: list[dict]) -> Iterable[int]:
        """Each row's time in ns since the Unix epoch; the time the batch arrived where it has none."""
        arrived = time.time_ns()
        stamp = self._time
        if stamp is None:
            return repeat(arrived)
        stamps = list(map(stamp, rows))
        to_wall = monotonic_to_wall() if self._monotonic else 0
        if 0 in stamps:   # 0: unknown, a Python call per row for the (rare) batch that has one
            return [ns and ns + to_wall or arrived for ns in stamps]
        return map(add, stamps, repeat(to_wall)) if to_wall else stamps

    def exemplar(self, example: Example) -> Exemplar:
        """The exemplar prometheus_client writes: values a gadget did not know are left out."""
        named = [(name, label_value(v)) for name, v, unknown in zip(self.names, example.values, self._unknown)
                 if v != unknown or type(v) is not type(unknown)]
        names = [name for name, _ in named]
        texts = fit(names, [text for _, text in named])
        return Exemplar(dict(zip(names, texts)), example.value, example.time_ns / 1e9)


def monotonic_to_wall() -> int:
    """What turns a time of CLOCK_MONOTONIC (bpf_ktime_get_ns) into ns since the Unix epoch, now."""
    return time.time_ns() - time.monotonic_ns()


def _names_fitting(columns: list[Column]) -> list[Column]:
    """The first columns whose label names leave room for a character of value each."""
    kept: list[Column] = []
    used = 0
    for column in columns:
        used += len(sanitize_label_name(column.name)) + 1
        if used > LIMIT:
            break
        kept.append(column)
    return kept


