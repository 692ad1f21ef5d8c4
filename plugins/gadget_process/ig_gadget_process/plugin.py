"""snapshot process: every process (thread group) on the machine, attributed to its container."""

from __future__ import annotations

import logging
import threading

from igcore.api import Column, Kind, Schema, SnapshotGadget, hookimpl

from .procfs import pids, read_rows
from .task_iter import IteratorUnavailable, TaskIterator

log = logging.getLogger("ig_gadget_process")

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (thread group id)"),
    Column("ppid", Kind.INT, "parent process id"),
    Column("uid", Kind.INT, "real user id (as trace exec reports it)"),
    Column("gid", Kind.INT, "real group id"),
    Column("comm", Kind.STR, "command name"),
    Column("threads", Kind.INT, "number of threads"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id (inode of the process's cgroup directory)"),
    Column("mntns", Kind.UINT, "mount namespace inode"),
])


class ProcessSnapshot(SnapshotGadget):
    """Reads /proc until the task iterator is loaded, then the iterator (docs/config.md, snapshot
    process). The iterator compiles in a thread of its own, so ig's start does not wait for it."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()   # guards _iterator and _closed against close() during the build
        self._iterator: TaskIterator | None = None
        self._closed = False
        self.settled = threading.Event()   # set once the iterator is loaded or known unavailable
        threading.Thread(target=self._build_iterator, name="ig-process-iterator", daemon=True).start()

    def _build_iterator(self) -> None:
        try:
            iterator = TaskIterator()
        except IteratorUnavailable as exc:
            log.warning("snapshot process reads /proc, which takes about 25 us per process, because the BPF task "
                        "iterator is unavailable: %s", exc, extra={"gadget": "snapshot process", "reason": "no_task_iterator"})
            iterator = None
        except Exception as exc:   # a thread of the gadget's own: nothing may escape it unreported
            log.error("snapshot process reads /proc: loading the BPF task iterator failed: %s: %s",
                      type(exc).__name__, exc, extra={"gadget": "snapshot process", "reason": "no_task_iterator"})
            iterator = None
        with self._lock:
            if self._closed and iterator is not None:
                iterator.close()
            elif not self._closed:
                self._iterator = iterator
        self.settled.set()

    @property
    def reader(self) -> str:
        """What the next snapshot reads: "task iterator", or "/proc" (while it loads, or where it cannot)."""
        return "task iterator" if self._iterator is not None else "/proc"

    def snapshot(self) -> list[dict]:
        listed = pids()
        with self._lock:
            iterator = self._iterator
            rows = iterator.rows_of(listed) if iterator is not None else None
        if rows is None:
            rows = list(read_rows(listed))
        self.stats.events_received += len(rows)
        return rows

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._iterator is not None:
                self._iterator.close()
                self._iterator = None


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="process", description="every process, read at scrape time by a BPF task "
             "iterator (from /proc where it cannot load)", columns=SCHEMA, factory=ProcessSnapshot,
             container_key="cgroup_id")
