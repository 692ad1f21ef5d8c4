"""Every cgroup's id and path, so a row's cgroup id names its container even after the cgroup is gone.

New cgroups are reported by the kernel (tracepoints cgroup:cgroup_mkdir/rmdir) the moment they are
created, so a container's cgroup id is known even if its directory is gone before its rows are
read; when BPF is not available the cgroup tree is rescanned on a miss instead. Removed cgroups are
remembered for `Windows.keep_exited` (late rows), new ones for `Windows.claim` (their runtime may
still speak).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from ..cgroups import cgroup2_mount, container_ids_of_path, scan, watch_program
from ..model import Windows
from .base import SourceSink

if TYPE_CHECKING:
    from ...bpf import RingBufferTransport

log = logging.getLogger("igcore.containers")

# The tracepoint's `root`: cgroup v2's (default) hierarchy is 0; v1 hierarchies count from 1.
CGROUP2_HIERARCHY_ID = 0
RESCAN_MIN_SECONDS = 0.05


class _CgroupEvent(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("root", ctypes.c_int32), ("level", ctypes.c_int32),
                ("removed", ctypes.c_uint32), ("path", ctypes.c_char * 256)]


class CgroupTracker:
    name = "cgroups"

    def __init__(self, mount: str | None = None, *, clock: Callable[[], float] = time.monotonic,
                 windows: Windows = Windows(), use_bpf: bool = True, find_mount: bool = True, compiler=None) -> None:
        """`compiler` compiles the cgroup watch (igcore.bpf.Compiler; None: one of its own)."""
        self.mount = mount if mount is not None or not find_mount else cgroup2_mount()
        self.clock, self.windows, self.use_bpf = clock, windows, use_bpf
        self.compiler = compiler
        self._lock = threading.Lock()
        self._paths: dict[int, str] = {}      # cgroup id -> path below the mount
        self._by_path: dict[str, int] = {}    # and back
        self._born: dict[int, float] = {}     # cgroup id -> when we saw it created
        self._removed: dict[int, float] = {}  # cgroup id -> when it was removed
        self._sink: SourceSink | None = None
        self._watch: tuple[RingBufferTransport, Any] | None = None
        self._miss = False
        self._last_scan = float("-inf")

    # -- source ----------------------------------------------------------------------------
    def start(self, sink: SourceSink) -> None:
        self._sink = sink
        if self.mount is None:
            sink.warn("no cgroup2 hierarchy is mounted: rows cannot be attributed by cgroup id")
            return
        present = scan(self.mount)
        with self._lock:
            self._paths.update(present)
            self._by_path.update({path: cgroup_id for cgroup_id, path in present.items()})
        for cgroup_id, path in present.items():
            sink.report_cgroup(cgroup_id, path, born=False)
        if self.use_bpf:
            self._start_watch()

    def refresh(self) -> None:
        if self._miss:
            self._miss = False
            self._rescan()

    def stop(self) -> None:
        if self._watch is not None:
            transport, bpf = self._watch
            transport.stop()
            bpf.cleanup()
            self._watch = None

    # -- queries (the resolver's, under the collection's lock) ------------------------------
    def path_of(self, cgroup_id: int) -> str | None:
        with self._lock:
            return self._paths.get(cgroup_id)

    def born_at(self, cgroup_id: int, default: float) -> float:
        with self._lock:
            return self._born.get(cgroup_id, default)

    def id_of_path(self, path: str) -> int:
        with self._lock:
            return self._by_path.get(path, 0)

    def note_miss(self) -> None:
        """A row named a cgroup not seen: rescan at the next refresh (or its mkdir event is on its way)."""
        self._miss = True

    # -- what is seen ----------------------------------------------------------------------
    def record(self, cgroup_id: int, path: str, born: bool) -> None:
        with self._lock:
            self._paths[cgroup_id] = path
            self._by_path[path] = cgroup_id
            self._removed.pop(cgroup_id, None)
            if born:
                self._born[cgroup_id] = self.clock()
        if self._sink is not None:
            self._sink.report_cgroup(cgroup_id, path, born)

    def learn(self, cgroup_id: int, path: str) -> None:
        """A cgroup a runtime's state named, whose creation was not seen: remember its path."""
        with self._lock:
            if cgroup_id not in self._paths:
                self._paths[cgroup_id] = path
                self._by_path[path] = cgroup_id

    def removed(self, cgroup_id: int, when: float | None = None) -> None:
        with self._lock:
            self._removed.setdefault(cgroup_id, self.clock() if when is None else when)

    def expire(self, now: float) -> None:
        with self._lock:
            for cgroup_id, when in list(self._born.items()):
                if now - when > self.windows.claim:
                    del self._born[cgroup_id]
            for cgroup_id, when in list(self._removed.items()):
                if now - when > self.windows.keep_exited:
                    del self._removed[cgroup_id]
                    path = self._paths.pop(cgroup_id, None)
                    if path is not None and self._by_path.get(path) == cgroup_id:
                        del self._by_path[path]

    def _rescan(self) -> None:
        now = self.clock()
        if self.mount is None or now - self._last_scan < RESCAN_MIN_SECONDS:
            return
        self._last_scan = now
        with self._lock:
            known_before = set(self._paths)   # a cgroup recorded during the walk is not "removed"
        present = scan(self.mount)
        for cgroup_id, path in present.items():
            if cgroup_id not in known_before and self.path_of(cgroup_id) is None:
                self.record(cgroup_id, path, born=self._watch is None)
        for cgroup_id in known_before - present.keys():
            self.removed(cgroup_id, now)

    def _start_watch(self) -> None:
        try:
            from ...bpf import Compiler, RingBufferTransport
            from ...gadgets import GadgetStats

            compiler = self.compiler if self.compiler is not None else Compiler()
            bpf = compiler.compile(watch_program(), name="cgroup watch")
        except Exception as exc:
            log.info("cgroup creation is not traced (%s); rescanning the cgroup tree on a miss instead", exc)
            return

        def decode(data, size):
            ev = ctypes.cast(data, ctypes.POINTER(_CgroupEvent)).contents
            if ev.root != CGROUP2_HIERARCHY_ID:
                return None
            if ev.removed:
                self.removed(ev.id)
                return None
            path = ev.path.decode(errors="replace")
            self.record(ev.id, path, born=True)
            if container_ids_of_path(path) and self._sink is not None:
                self._sink.kick()
            return None

        transport = RingBufferTransport(bpf, decode, GadgetStats(), poll_ms=20)
        transport.start(lambda rows: None, name="ig-cgroup-watch")
        self._watch = (transport, bpf)
