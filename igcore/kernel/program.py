"""KernelProgram: the in-kernel metrics of one gadget instance, handed to the gadget as
`GadgetContext.kernel`. `compile_program` takes its C (`c_code`) and tells it the loaded program
(`loaded`); from then on the core reads and trims the maps here.

Maps are read with BPF_MAP_LOOKUP_BATCH: one system call per metric and scrape, whatever the number
of series, into one buffer that `struct.iter_unpack` splits in C.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
import time

from .codegen import COUNTERS, HISTOGRAMS, Generated, Layout, generate
from .plan import Placement

# Entries a metric may take in its map: twice --max-series (label sets beyond the cap are dropped
# when read, but each container of a label set needs its own entry), and at least this many.
MIN_ENTRIES = 1024
# Entries read per system call: the buffers stay small whatever the maps' bounds.
CHUNK = 4096


# The metrics of one scrape (and the series sweep right after) read the maps once.
REUSE_SECONDS = 0.05


class MapReadError(OSError):
    pass


class KernelProgram:
    def __init__(self, spec, metrics: list[tuple[object, Placement]], ring_needed: bool, max_series: int,
                 start_counting: bool = True) -> None:
        self.spec = spec
        self.metrics = [bound for bound, _ in metrics]
        self.ring_needed = ring_needed
        self.per_metric = max(MIN_ENTRIES, 2 * max_series)
        # A program compiled during a reload starts idle: the gate's initial 0 means "count" only
        # for a program that starts counting.
        self._count_when = 0 if start_counting else 1
        self.generated: Generated = generate(spec, metrics, self._count_when, self.per_metric)
        self._bpf = None
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()   # one read at a time: reads share the buffers and the snapshot
        self._buffers: dict[tuple, object] = {}
        self._snapshot: dict | None = None
        self._snapshot_at = 0.0
        self.entries = 0   # entries the maps held at the latest read (ig_kernel_map_entries)

    @property
    def layouts(self) -> tuple[Layout, ...]:
        return self.generated.layouts

    def layout_of(self, bound) -> Layout:
        return self.generated.layouts[self.metrics.index(bound)]

    def c_code(self) -> str:
        return self.generated.code

    def loaded(self, bpf) -> None:
        self._bpf = bpf
        self._fds = {name: bpf.get_table(name.encode()).get_fd() for name in (COUNTERS, HISTOGRAMS)}

    @property
    def is_loaded(self) -> bool:
        return self._bpf is not None

    def set_counting(self, on: bool) -> None:
        """Switch every metric of the program on or off (an array write: takes effect at once)."""
        gate = self._bpf.get_table(b"ig_gate")
        gate[ctypes.c_int(0)] = ctypes.c_uint32(self._count_when if on else 1 - self._count_when)

    def drops(self, index: int) -> int:
        """Events of metric `index` not counted because its map was full."""
        if self._bpf is None:
            return 0
        return int(sum(self._bpf.get_table(b"ig_kdrop")[ctypes.c_int(index)]))

    def read(self, index: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of metric `index`, as raw bytes, from a read of the maps at most
        REUSE_SECONDS old (the metrics of one scrape share one read; reads only move forward)."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._snapshot_at > REUSE_SECONDS:
                self._snapshot = self._read_all()
                self._snapshot_at = now
            return self._snapshot.get(index, [])

    def _read_all(self) -> dict[int, list[tuple[bytes, bytes]]]:
        by_metric: dict[int, list] = {}
        generated = self.generated
        for name, vsize in ((COUNTERS, generated.counter_value_size), (HISTOGRAMS, generated.histogram_value_size)):
            if not any(layout.map_name == name for layout in self.layouts):
                continue
            keys, values = self._lookup_batch(name, generated.key_size, vsize)
            ksize = generated.key_size
            for i in range(len(keys) // ksize):
                key = keys[i * ksize:(i + 1) * ksize]
                by_metric.setdefault(int.from_bytes(key[:8], "little"), []).append((key, values[i * vsize:(i + 1) * vsize]))
        self.entries = sum(map(len, by_metric.values()))
        return by_metric

    def _lookup_batch(self, name: str, ksize: int, vsize: int) -> tuple[bytes, bytes]:
        from bcc import libbcc

        keys = self._buffers.get((name, "k")) or self._buffers.setdefault((name, "k"), ctypes.create_string_buffer(ksize * CHUNK))
        values = self._buffers.get((name, "v")) or self._buffers.setdefault((name, "v"), ctypes.create_string_buffer(vsize * CHUNK))
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

    def forget(self, index: int, key: bytes) -> None:
        """Delete the entry `key` of metric `index` (read for the last time by its aggregator)."""
        from bcc import libbcc

        name = self.layouts[index].map_name
        buffer = ctypes.create_string_buffer(key, len(key))
        with self._lock:
            libbcc.lib.bpf_delete_elem(self._fds[name], buffer)
            self._snapshot = None   # the next read must not see the entry again
