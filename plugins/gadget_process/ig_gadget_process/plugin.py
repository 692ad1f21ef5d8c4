"""snapshot process: every process (thread group) on the machine, attributed to its container."""

from __future__ import annotations

from igcore.api import Column, Kind, Schema, SnapshotGadget, hookimpl, ns_inode

from .procfs import CgroupIds, pids, read_status

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
    def snapshot(self) -> list[dict]:
        cgroups = CgroupIds()
        rows = []
        for pid in pids():
            status = read_status(pid)
            if status is None:
                continue  # exited while we listed /proc
            rows.append({
                "pid": pid, "ppid": status.ppid, "uid": status.uid, "gid": status.gid, "comm": status.comm,
                "threads": status.threads, "cgroup_id": cgroups.of_pid(pid), "mntns": ns_inode(pid, "mnt"),
            })
        self.stats.events_received += len(rows)
        return rows


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="process", description="every process, read from /proc at scrape time (no eBPF)",
             columns=SCHEMA, factory=ProcessSnapshot, container_key="cgroup_id")
