"""Reading /proc quickly and without tripping over processes that exit while we read.

A snapshot needs no eBPF: /proc already is the kernel's view of every process, and reading it at
scrape time costs a few system calls per process.
"""

from __future__ import annotations

import os
import re
from typing import Collection, Iterable, NamedTuple

from igcore.api import cgroup2_mount, id_of, ns_inode, pid_cgroup_path

VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)

STATUS_COLUMNS = frozenset({"ppid", "uid", "gid", "comm", "threads"})
ALL_COLUMNS = STATUS_COLUMNS | {"pid", "cgroup_id", "mntns"}

# /proc/<pid>/status escapes two characters of the name: a newline as \n and a backslash as \\.
_ESCAPED = re.compile(rb"\\(.)")


class Status(NamedTuple):
    comm: str
    ppid: int
    uid: int      # real ids, as bpf_get_current_uid_gid() reports them to trace gadgets
    gid: int
    threads: int


def pids() -> list[int]:
    """Thread group ids: /proc lists processes, not their threads."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def _field(data: bytes, key: bytes, end: bytes = b"\n") -> int:
    start = data.index(key) + len(key)
    return int(data[start:data.index(end, start)])


def read_status(pid: int) -> Status | None:
    """One open and one read of /proc/<pid>/status; None if the process is gone.

    status rather than stat because it also holds the real uid and gid (the owner of /proc/<pid> is the
    effective uid): the ids trace exec reports, and Inspektor Gadget's snapshot process (task->cred->uid).
    """
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    except VANISHED:
        return None
    try:
        data = os.read(fd, 16384)
    except VANISHED:     # ESRCH once the process has been reaped
        return None
    finally:
        os.close(fd)
    if not data:
        return None
    name = data[6:data.index(b"\n")]             # "Name:\t..." comes first
    if b"\\" in name:
        name = _ESCAPED.sub(lambda m: b"\n" if m[1] == b"n" else m[1], name)
    return Status(name.decode(errors="replace"), _field(data, b"\nPPid:\t"), _field(data, b"\nUid:\t", b"\t"),
                  _field(data, b"\nGid:\t", b"\t"), _field(data, b"\nThreads:\t"))


class CgroupIds:
    """cgroup v2 path -> id (the directory's inode), cached for one snapshot."""

    def __init__(self) -> None:
        self.mount = cgroup2_mount()
        self.cache: dict[str, int] = {}

    def of_pid(self, pid: int) -> int:
        path = pid_cgroup_path(pid)
        if path is None or self.mount is None:
            return 0
        cached = self.cache.get(path)
        if cached is None:
            cached = self.cache[path] = id_of(self.mount, path)
        return cached


def read_rows(pids: Iterable[int], columns: Collection[str] = ALL_COLUMNS) -> Iterable[dict]:
    """A row per process that is still there (by its status), with every column.

    `columns` reads only the files those columns need (status, cgroup, ns/mnt) and leaves the others
    at their kind's default: bench/snapshot measures what that saves against the task iterator.
    Without status, a process that exits while it is read is not told from one without a cgroup."""
    status_wanted = not STATUS_COLUMNS.isdisjoint(columns)
    cgroups = CgroupIds() if "cgroup_id" in columns else None
    mntns_wanted = "mntns" in columns
    for pid in pids:
        status = read_status(pid) if status_wanted else Status("", 0, 0, 0, 0)
        if status is None:
            continue  # exited while we listed /proc
        yield {"pid": pid, "ppid": status.ppid, "uid": status.uid, "gid": status.gid, "comm": status.comm,
               "threads": status.threads, "cgroup_id": cgroups.of_pid(pid) if cgroups else 0,
               "mntns": ns_inode(pid, "mnt") if mntns_wanted else 0}
