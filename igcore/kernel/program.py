"""KernelProgram: the in-kernel metrics of one gadget instance, and the window in which its program
counts, handed to the gadget as `GadgetContext.kernel`. `Compiler.compile` takes its C (`c_code`)
and tells it the loaded program (`loaded`); from then on the core reads and trims the maps here,
and a reload hands over from one program to the next with `count_until` and `count_from`.

The window (`ig_window` of ig_emit.h) holds the event as a whole, kernel metrics and ring buffer
alike: a program that replaces another starts idle, and both are given the same instant ahead of
time, the old one to stop at and the new one to start at. Each event is then counted by one of
them whatever user space does meanwhile; only an event whose two programs run on either side of
that very instant (they run one after the other, microseconds apart) is seen by both or neither.

The program's metrics share its maps (igcore.kernel.codegen). They are read with
BPF_MAP_LOOKUP_BATCH, CHUNK entries per system call, and only when a metric updated them since the
last read; the entries are sliced and grouped per metric by C loops.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections import defaultdict, deque
from functools import partial
from typing import Any, Callable, Iterable

from .codegen import NATIVE_TABLE, Generated, Layout, generate, map_sizes
from .native import U64_MAX
from .plan import Placement

# Entries a metric may take in its map: twice --max-series (the entries of a series evicted at the
# cap are deleted at the pull that evicts it, but each container of a label set needs its own
# entry, and new label sets take entries between two pulls), and at least this many.
MIN_ENTRIES = 1024
# A window's start that opens it for good from when it is set, read without a clock (IG_FROM_NOW
# of ig_emit.h): CLOCK_MONOTONIC is past 1 ns, so it means the same as the time it stands for.
FROM_NOW = 1
# Entries read per system call: the buffers stay small whatever the maps' bounds.
CHUNK = 4096

_exhaust: Callable[[Iterable], object] = partial(deque, maxlen=0)   # runs an iterator to its end in C, keeping nothing
_NOTHING: list = []


class MapReadError(OSError):
    pass


class KernelProgram:
    def __init__(self, spec, metrics: list[tuple[Any, Placement]], ring_needed: bool, max_series: int,
                 start_counting: bool = True, exemplars: bool = False) -> None:
        """`metrics` may be empty: the program then has only its window. `start_counting` False:
        nothing is counted or sent before `count_from` (a program that replaces a counting one).
        `exemplars`: counters keep their last event's process and time (codegen)."""
        self.spec = spec
        self.metrics = [bound for bound, _ in metrics]
        self.ring_needed = ring_needed or not metrics
        self.per_metric = max(MIN_ENTRIES, 2 * max_series)
        self.start_idle = not start_counting
        self.generated: Generated | None = generate(spec, metrics, self.per_metric, exemplars) if metrics else None
        # A native histogram's program counts nothing until its thresholds are written (`loaded`):
        # every metric of it starts at the same event, as if it had attached a moment later.
        self._idle_until_written = start_counting and self.generated is not None and bool(self.generated.native_rows)
        self._bpf = None
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()   # one read at a time: reads share the buffers and the snapshot
        self._buffers: dict[tuple[str, str], ctypes.Array[ctypes.c_char]] = {}
        self._snapshot: dict | None = None
        self._snapshot_updates = -1
        self.entries = 0   # entries the maps held at the latest read (ig_kernel_map_entries)

    @property
    def layouts(self) -> tuple[Layout, ...]:
        return self.generated.layouts if self.generated is not None else ()

    @property
    def _generated(self) -> Generated:
        """What only a program with metrics has (its maps are read, its layouts looked up)."""
        assert self.generated is not None
        return self.generated

    def layout_of(self, bound) -> Layout:
        return self._generated.layouts[self.metrics.index(bound)]

    def c_code(self) -> str:
        return self.generated.code if self.generated is not None else ""

    def cflags(self) -> list[str]:
        idle = self.start_idle or self._idle_until_written
        return [f"-DIG_RING={1 if self.ring_needed else 0}", f"-DIG_START_IDLE={1 if idle else 0}"]

    def loaded(self, bpf) -> None:
        # bcc builds a table's types each time it is asked for one: once here, not per scrape
        self._window = bpf.get_table(b"ig_window")
        if self.generated is not None:
            self._fds = {name: bpf.get_table(name.encode()).get_fd() for name in map_sizes(self.generated)}
            self._drops, self._updates = bpf.get_table(b"ig_kdrop"), bpf.get_table(b"ig_updates")
            self._write_native_thresholds(bpf)
            if self._idle_until_written:
                self.count_from(FROM_NOW)
        self._bpf = bpf

    def _write_native_thresholds(self, bpf) -> None:
        """The rows native histograms search (igcore.kernel.native): each marked ready as it is
        written, so an event never reads half a row."""
        generated = self._generated
        if not generated.native_rows:
            return
        table = bpf.get_table(NATIVE_TABLE.encode())
        for row, thresholds in generated.native_rows:
            leaf = table.Leaf()
            leaf.base = thresholds.base
            padded = thresholds.thresholds + (U64_MAX,) * (generated.native_width - len(thresholds.thresholds))
            for i, value in enumerate(padded):
                leaf.t[i] = value
            leaf.ready = 1
            table[ctypes.c_int(row)] = leaf

    @property
    def is_loaded(self) -> bool:
        return self._bpf is not None

    def count_from(self, when_ns: int) -> None:
        """Count (and send) the events from `when_ns` on, CLOCK_MONOTONIC as bpf_ktime_get_ns."""
        self._window[ctypes.c_int(0)] = ctypes.c_uint64(when_ns)

    def count_until(self, when_ns: int) -> None:
        """Count (and send) no event from `when_ns` on."""
        self._window[ctypes.c_int(1)] = ctypes.c_uint64(when_ns)

    def drops(self, index: int) -> int:
        """Events of metric `index` not counted because its map was full."""
        if self._bpf is None:
            return 0
        return int(sum(self._drops[ctypes.c_int(index)]))

    def read(self, index: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of metric `index`, as raw bytes. The maps are read again only when an
        event updated them since the last read (`ig_updates`, summed over the CPUs, is read first:
        a read is at least as new as the count it is kept with), so the metrics of one scrape share
        one read and a scrape of series at rest costs one lookup; while nothing moved, the same list
        is returned (the caller may skip it)."""
        with self._lock:
            updates = int(sum(self._updates[ctypes.c_int(0)]))
            if self._snapshot is None or updates != self._snapshot_updates:
                self._snapshot = self._read_all()   # if it raises, the next read tries again
                self._snapshot_updates = updates
            return self._snapshot.get(index, _NOTHING)

    def _read_all(self) -> dict[int, list[tuple[bytes, bytes]]]:
        # Per entry, only slicing and grouping done by C loops: a scrape reads every entry.
        by_metric: dict[int, list] = defaultdict(list)
        generated = self._generated
        for name, (ksize, vsize) in map_sizes(generated).items():
            indexes = [layout.index for layout in self.layouts if layout.map_name == name]
            if not indexes:
                continue
            keys, values = self._lookup_batch(name, ksize, vsize)
            pairs = list(zip([keys[i:i + ksize] for i in range(0, len(keys), ksize)],
                             [values[i:i + vsize] for i in range(0, len(values), vsize)]))
            if len(indexes) == 1:
                by_metric[indexes[0]] = pairs
                continue
            # the metric's index is the key's first little-endian u64: below 256, its first byte
            ids = keys[::ksize] if len(self.layouts) <= 256 else [int.from_bytes(k[:8], "little") for k, _ in pairs]
            _exhaust(map(list.append, map(by_metric.__getitem__, ids), pairs))
        self.entries = sum(map(len, by_metric.values()))
        return dict(by_metric)

    def _lookup_batch(self, name: str, ksize: int, vsize: int) -> tuple[bytes, bytes]:
        from bcc import libbcc

        keys = self._buffers.get((name, "k")) or self._buffers.setdefault(
            (name, "k"), ctypes.create_string_buffer(ksize * CHUNK))
        values = self._buffers.get((name, "v")) or self._buffers.setdefault(
            (name, "v"), ctypes.create_string_buffer(vsize * CHUNK))
        batch, count = ctypes.c_uint32(0), ctypes.c_uint32(0)   # a hash map's batch token is a u32
        key_parts, value_parts, first = [], [], True
        while True:
            count.value = CHUNK
            result = libbcc.lib.bpf_lookup_batch(self._fds[name], None if first else ctypes.byref(batch),
                                                 ctypes.byref(batch), keys, values, ctypes.byref(count))
            err = ctypes.get_errno()
            first = False
            key_parts.append(ctypes.string_at(keys, ksize * count.value))
            value_parts.append(ctypes.string_at(values, vsize * count.value))
            if result != 0:
                if err == errno.ENOENT:
                    break   # the end of the map
                raise MapReadError(err, f"reading the BPF map {name} of {self.spec.name}: {os.strerror(err)}")
            if count.value == 0:
                break
        return b"".join(key_parts), b"".join(value_parts)

    def take(self, index: int, key: bytes) -> bytes | None:
        """Delete the entry `key` of metric `index` and return its last value, in one system call (an
        event cannot fall between the read and the delete); None if there was no such entry. A
        kernel without lookup-and-delete for hash maps (before 5.14) gets a plain delete, and None:
        the events the entry counted since it was last read are lost there."""
        from bcc import libbcc

        name = self.layouts[index].map_name
        size = map_sizes(self._generated)[name][1]
        buffer, value = ctypes.create_string_buffer(key, len(key)), ctypes.create_string_buffer(size)
        with self._lock:
            taken = libbcc.lib.bpf_lookup_and_delete(self._fds[name], buffer, value) == 0
            if not taken and ctypes.get_errno() != errno.ENOENT:
                libbcc.lib.bpf_delete_elem(self._fds[name], buffer)
            self._snapshot = None   # the next read must not see the entry again
        return value.raw if taken else None

    def forget(self, index: int, key: bytes) -> None:
        """Delete the entry `key` of metric `index` (read for the last time by its aggregator)."""
        from bcc import libbcc

        name = self.layouts[index].map_name
        buffer = ctypes.create_string_buffer(key, len(key))
        with self._lock:
            libbcc.lib.bpf_delete_elem(self._fds[name], buffer)
            self._snapshot = None   # the next read must not see the entry again
