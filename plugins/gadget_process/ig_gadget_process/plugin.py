"""snapshot process: every process (thread group) on the machine, attributed to its container."""

from __future__ import annotations

import logging
import threading

from igcore.api import Column, Kind, Schema, SnapshotGadget, hookimpl

from .procfs import pids, read_rows
from .task_iter import IteratorUnavailable, TaskIterator, layout_flags

log = logging.getLogger("ig_gadget_process")

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (thread group id)"),
    Column("ppid", Kind.INT, "parent process id"),
    Column("uid", Kind.INT, "real user id (as trace exec reports it)"),
    Column("gid", Kind.INT, "real group id"),
    Column("comm", Kind.STR, "command name"),
    Column("threads", Kind.INT, "number of threads"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id (inode of the process's cgroup directory)", hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode", hidden=True),
])


class ProcessSnapshot(SnapshotGadget):
    """Reads with the task iterator, or /proc until it has loaded and where it cannot (docs/config.md,
    What snapshot process reads). The first snapshot reads /proc and begins loading the iterator on
    a thread of its own: ig's start and that snapshot do not wait for its compile (0.3 s), and a
    single snapshot (`ig snapshot process`) is over before the compile would begin."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()   # a snapshot and close() never overlap: close ends the iterator
        self._iterator: TaskIterator | None = None
        self._loader: threading.Thread | None = None
        self._closed = False

    @property
    def reader(self) -> str:
        """What a snapshot reads: "task iterator" once it has loaded, else "/proc"."""
        return "task iterator" if self._iterator is not None else "/proc"

    def load_iterator(self) -> None:
        """Load the task iterator now if no snapshot began to (what a test that wants it does), and
        wait until it is loaded or has failed."""
        with self._lock:
            self._begin_loading()
        if self._loader is not None:
            self._loader.join()

    def snapshot(self) -> list[dict]:
        listed = pids()
        with self._lock:
            rows = self._iterator.rows_of(listed) if self._iterator is not None else None
        if rows is None:
            rows = list(read_rows(listed))
            with self._lock:   # after the reads: the loader's Python work (the BTF) would slow them
                self._begin_loading()
        self.stats.events_received += len(rows)
        return rows

    def _begin_loading(self) -> None:
        """Under the lock: start the loader once."""
        if self._loader is None and not self._closed:
            self._loader = threading.Thread(target=self._load, name="ig-process-iterator", daemon=True)
            self._loader.start()

    def _load(self) -> None:
        try:
            layout_flags()   # the BTF is read first (0.15 s): a gadget closed meanwhile compiles nothing
            iterator = None if self._closed else TaskIterator(self.ctx)
        except IteratorUnavailable as exc:
            log.warning("snapshot process reads /proc, which takes about 25 us per process, because the BPF task "
                        "iterator is unavailable: %s", exc,
                        extra={"gadget": "snapshot process", "reason": "no_task_iterator"})
            return
        if iterator is None:
            return
        with self._lock:
            if self._closed:
                iterator.close()
                return
            self._iterator = iterator
        if self.ctx.compiler is not None:   # what its compile left behind, as after ig's start (igcore.bpf.memory)
            self.ctx.compiler.release_memory()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            loader = self._loader
        if loader is not None and loader is not threading.current_thread():
            loader.join()   # a compile under way ends first; the loader closes what it made
        with self._lock:
            if self._iterator is not None:
                self._iterator.close()
                self._iterator = None


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="process", description="every process, read at scrape time by a BPF task "
             "iterator (from /proc where it cannot load)", columns=SCHEMA, factory=ProcessSnapshot,
             container_key="cgroup_id")
