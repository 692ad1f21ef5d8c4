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
    Column("cgroup_id", Kind.UINT, "cgroup v2 id (inode of the process's cgroup directory)", hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode", hidden=True),
])


class ProcessSnapshot(SnapshotGadget):
    """Reads with the task iterator, or /proc where it cannot load (docs/config.md, What snapshot
    process reads). The iterator loads when the gadget starts, so its compilation takes turns with
    the other gadgets' and the core gives back the compiler's memory after all of them."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()   # a snapshot and close() never overlap: close ends the iterator
        self._iterator: TaskIterator | None = None
        try:
            self._iterator = TaskIterator(ctx)
        except IteratorUnavailable as exc:
            log.warning("snapshot process reads /proc, which takes about 25 us per process, because the BPF task "
                        "iterator is unavailable: %s", exc,
                        extra={"gadget": "snapshot process", "reason": "no_task_iterator"})

    @property
    def reader(self) -> str:
        """What a snapshot reads: "task iterator", or "/proc" where it cannot load."""
        return "task iterator" if self._iterator is not None else "/proc"

    def snapshot(self) -> list[dict]:
        listed = pids()
        with self._lock:
            rows = self._iterator.rows_of(listed) if self._iterator is not None else None
        if rows is None:
            rows = list(read_rows(listed))
        self.stats.events_received += len(rows)
        return rows

    def close(self) -> None:
        with self._lock:
            if self._iterator is not None:
                self._iterator.close()
                self._iterator = None


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="process", description="every process, read at scrape time by a BPF task "
             "iterator (from /proc where it cannot load)", columns=SCHEMA, factory=ProcessSnapshot,
             container_key="cgroup_id")
