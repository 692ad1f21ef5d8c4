"""trace exec: one row per execve/execveat, successful or failed.

The BPF program (exec.bpf.c) emits one record when the syscall returns; this module decodes it with
one `struct.unpack_from` and fills what BPF cannot know without reading kernel structs: `mntns`
(from /proc/<pid>/ns/mnt while the process lives) and `ppid` of processes older than the gadget
(from /proc/<pid>/status).
"""

from __future__ import annotations

import ctypes
import struct

from igcore.api import Column, GadgetContext, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl, ns_inode

MAXARGS = 20
ARGSIZE = 128  # per argument, including its NUL: an argument keeps at most 127 bytes
# 4 MiB: a burst of 20,000 execs while the reader is stalled needs ~2.2 MB
# (records are 64 bytes + arguments, plus 8 bytes of ring-buffer header: 112 bytes for the bench).
# See bench/exec_storm (it stalls the reader for a whole burst to check this size).
RINGBUF_PAGES = 1024

# Columns with a KernelField are known where exec.bpf.c emits (`ev`, its struct exec_event): metrics
# that read only those are counted in the kernel (docs/config.md, "Where a metric is computed").
SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (tgid) that called execve/execveat", kernel=KernelField("ev->pid", "u32")),
    Column("ppid", Kind.INT, "parent process id, from forks seen in the kernel; for a process older than the "
                             "gadget or reparented, from /proc/<pid>/status, 0 if it has already exited"),
    Column("uid", Kind.INT, "real user id after the exec (a setuid program keeps the caller's)",
           kernel=KernelField("ev->uid", "u32")),
    Column("gid", Kind.INT, "real group id after the exec", kernel=KernelField("ev->gid", "u32")),
    Column("comm", Kind.STR, "command: the new program's on success, the caller's on failure",
           kernel=KernelField("ev->comm", "char[16]")),
    Column("args", Kind.STR, f"first {MAXARGS} arguments joined with spaces, each cut at {ARGSIZE - 1} bytes; "
                             "' ...' ends the list when there were more", width=48),
    Column("retval", Kind.INT, "0 on success, else the negative errno (-2: no such file)", aliases=("ret",),
           kernel=KernelField("ev->retval", "s32")),
    Column("timestamp", Kind.INT, "when the exec returned, in ns since the Unix epoch", hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the process", kernel=KernelField("ev->cgroup_id", "u64"),
           hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode, read from /proc/<pid>/ns/mnt when the row is decoded; "
                               "0 if the process has already exited", hidden=True),
])

# struct exec_event in exec.bpf.c, up to its args.
HEADER = struct.Struct("<QQIIIIIiII16s")
FLAG_MORE_ARGS, FLAG_NO_ARGS = 1, 2


def proc_ppid(pid: int) -> int:
    """PPid of a live process from /proc, else 0."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"PPid:"):
                    return int(line[5:])
    except (OSError, ValueError):
        pass
    return 0


class ExecGadget(RingBufferGadget):
    """Options (GadgetContext.options): `ringbuf_pages` (a power of two, default 1024)."""
    program = "exec.bpf.c"
    ringbuf_pages = RINGBUF_PAGES

    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.stats.extra.update(args_missing=0, ppid_from_proc=0)

    def decode(self, data, size: int) -> dict:
        raw = ctypes.string_at(data, size)
        ts, cgroup_id, pid, _tid, ppid, uid, gid, retval, args_size, flags, comm = HEADER.unpack_from(raw)
        argv = raw[HEADER.size:HEADER.size + args_size]
        if argv.endswith(b"\0"):
            argv = argv[:-1]
        args = argv.replace(b"\0", b" ").decode("utf-8", "replace")
        if flags & FLAG_MORE_ARGS:
            args += " ..."
        if flags & FLAG_NO_ARGS:
            self.stats.extra["args_missing"] += 1
        if not ppid:
            ppid = proc_ppid(pid)
            self.stats.extra["ppid_from_proc"] += 1
        return {
            "pid": pid,
            "ppid": ppid,
            "uid": uid,
            "gid": gid,
            "comm": c_string(comm),
            "args": args,
            "retval": retval,
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
            "mntns": ns_inode(pid, "mnt"),
        }

    def cflags(self) -> list[str]:
        return [*super().cflags(), f"-DMAXARGS={MAXARGS}", f"-DARGSIZE={ARGSIZE}"]


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="exec",
        description="every execve/execveat, successful or failed, with arguments and return value",
        columns=SCHEMA,
        factory=ExecGadget,
        container_key="cgroup_id",
    )
