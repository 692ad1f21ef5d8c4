"""snapshot process: every process (thread group) on the machine, attributed to its container."""

from __future__ import annotations

import os

from igcore import hookimpl
from igcore.columns import Column, Kind, Schema
from igcore.gadgets import SnapshotGadget

from igcore.containers.cgroups import ns_inode

from .procfs import VANISHED, CgroupIds, pids, read_stat

SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (thread group id)"),
    Column("ppid", Kind.INT, "parent process id"),
    Column("uid", Kind.INT, "effective user id (owner of /proc/<pid>)"),
    Column("gid", Kind.INT, "effective group id"),
    Column("comm", Kind.STR, "command name"),
    Column("threads", Kind.INT, "number of threads"),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id (inode of the process's cgroup directory)"),
    Column("mntns", Kind.UINT, "mount namespace inode"),
])


class ProcessSnapshot(SnapshotGadget):
    def snapshot(self) -> list[dict]:
        cgroups = CgroupIds()
        rows = []
        for pid in pids():
            stat = read_stat(pid)
            if stat is None:
                continue  # exited while we listed /proc
            try:
                owner = os.stat(f"/proc/{pid}")
            except VANISHED:
                continue
            comm, ppid, threads = stat
            rows.append({
                "pid": pid, "ppid": ppid, "uid": owner.st_uid, "gid": owner.st_gid, "comm": comm,
                "threads": threads, "cgroup_id": cgroups.of_pid(pid), "mntns": ns_inode(pid, "mnt"),
            })
        self.stats.events_received += len(rows)
        return rows


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="process", description="every process, from /proc at scrape time",
             columns=SCHEMA, factory=ProcessSnapshot, container_key="cgroup_id")
