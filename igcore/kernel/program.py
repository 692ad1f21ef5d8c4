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

from .codegen import Generated, Layout, generate
from .plan import Placement

# Entries a metric's map holds at least (and at most twice --max-series): label sets beyond the
# cap are dropped when read, but each container of a label set needs its own entry.
MIN_ENTRIES = 1024


class MapReadError(OSError):
    pass


class KernelProgram:
    def __init__(self, spec, metrics: list[tuple[object, Placement]], ring_needed: bool, max_series: int,
                 start_counting: bool = True) -> None:
        self.spec = spec
        self.metrics = [bound for bound, _ in metrics]
        self.ring_needed = ring_needed
        self.max_entries = max(MIN_ENTRIES, 2 * max_series)
        # A program compiled during a reload starts idle: the gate's initial 0 means "count" only
        # for a program that starts counting.
        self._count_when = 0 if start_counting else 1
        self.generated: Generated = generate(spec, metrics, self._count_when, self.max_entries)
        self._bpf = None
        self._fds: list[int] = []
        self._lock = threading.Lock()   # reads of one map at a time: they share its buffers
        self._buffers: dict[int, tuple] = {}

    @property
    def layouts(self) -> tuple[Layout, ...]:
        return self.generated.layouts

    def layout_of(self, bound) -> Layout:
        return self.generated.layouts[self.metrics.index(bound)]

    def c_code(self) -> str:
        return self.generated.code

    def loaded(self, bpf) -> None:
        self._bpf = bpf
        self._fds = [bpf.get_table(layout.map_name).get_fd() for layout in self.layouts]

    @property
    def is_loaded(self) -> bool:
        return self._bpf is not None

    def set_counting(self, on: bool) -> None:
        """Switch every metric of the program on or off (an array write: takes effect at once)."""
        gate = self._bpf.get_table("ig_gate")
        gate[ctypes.c_int(0)] = ctypes.c_uint32(self._count_when if on else 1 - self._count_when)

    def drops(self, index: int) -> int:
        """Events of metric `index` not counted because its map was full."""
        if self._bpf is None:
            return 0
        return int(sum(self._bpf.get_table("ig_kdrop")[ctypes.c_int(index)]))

    def read(self, index: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of metric `index`'s map, as raw bytes."""
        layout = self.layouts[index]
        from bcc import libbcc

        with self._lock:
            keys, values, out_batch, count = self._buffers_of(index, layout)
            total, first = 0, True
            ksize, vsize = layout.key.size, layout.value.size
            while total < self.max_entries:
                count.value = self.max_entries - total
                result = libbcc.lib.bpf_lookup_batch(
                    self._fds[index], None if first else ctypes.byref(out_batch), ctypes.byref(out_batch),
                    ctypes.byref(keys, ksize * total), ctypes.byref(values, vsize * total), ctypes.byref(count))
                err = ctypes.get_errno()
                total += count.value
                first = False
                if result != 0:
                    if err == errno.ENOENT:
                        break   # the end of the map
                    raise MapReadError(err, f"reading the map of {self.metrics[index].name}: {os.strerror(err)}")
                if count.value == 0:
                    break
            raw_keys = ctypes.string_at(keys, ksize * total)
            raw_values = ctypes.string_at(values, vsize * total)
        return [(raw_keys[i * ksize:(i + 1) * ksize], raw_values[i * vsize:(i + 1) * vsize]) for i in range(total)]

    def _buffers_of(self, index: int, layout: Layout):
        buffers = self._buffers.get(index)
        if buffers is None:
            buffers = self._buffers[index] = (
                ctypes.create_string_buffer(layout.key.size * self.max_entries),
                ctypes.create_string_buffer(layout.value.size * self.max_entries),
                ctypes.c_uint32(0), ctypes.c_uint32(0))
        return buffers

    def delete(self, index: int, key: bytes) -> None:
        from bcc import libbcc

        buffer = ctypes.create_string_buffer(key, len(key))
        libbcc.lib.bpf_delete_elem(self._fds[index], buffer)
