"""Reading /proc quickly and without tripping over processes that exit while we read.

A snapshot needs no eBPF: /proc already is the kernel's view of every process, and reading it at
scrape time costs a few system calls per process.
"""

from __future__ import annotations

import os

from igcore.containers.cgroups import cgroup2_mount, id_of, pid_cgroup_path

VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)


def pids() -> list[int]:
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def read_stat(pid: int) -> tuple[str, int, int] | None:
    """(comm, ppid, threads) from /proc/<pid>/stat; comm may hold spaces and parentheses."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except VANISHED:
        return None
    close = data.rfind(b")")
    comm = data[data.find(b"(") + 1:close].decode(errors="replace")
    fields = data[close + 2:].split()
    # fields[0] is state; ppid is field 4 of the file, num_threads field 20
    return comm, int(fields[1]), int(fields[17])


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
