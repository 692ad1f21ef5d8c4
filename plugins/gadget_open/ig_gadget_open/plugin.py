"""trace open: one row per open/openat/openat2, successful or failed.

The BPF program (open.bpf.c) emits one record when the syscall returns; this module decodes it with
one `struct.unpack_from`. Opens are the busiest syscall on many systems, so the decoder keeps its
per-row work small: flag and mode names are cached by value, and `mntns` (which BPF cannot read
without a kernel struct) is read from /proc/<pid>/ns/mnt once per process, not once per open.
"""

from __future__ import annotations

import ctypes
import os
import struct

from igcore.api import Column, GadgetContext, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl, ns_inode

from .flags import flag_names, mode_text

PATHSIZE = 256  # with its NUL: a path keeps at most 255 bytes, as Inspektor Gadget's (NAME_MAX)
# 16 MiB: bench/open_storm stalls the reader for a whole burst of 100,000 opens (one second at
# 100 k/s); records are 76 bytes + the path + 8 bytes of ring-buffer header, about 120 bytes for the
# bench's paths, so about 139,000 fit.
RINGBUF_PAGES = 4096
SYSCALLS = {0: "open", 1: "openat", 2: "openat2", 0xFF: ""}
FLAG_NO_ENTRY, FLAG_PATH_CUT = 1, 2
MNTNS_CACHE = 4096  # processes (and commands) remembered by the decoder; a cache is cleared when full

# What only the syscall's entry knows (open.bpf.c skips the entry when neither a row nor a metric in
# the kernel reads these: the busiest syscall then costs one tracepoint, not two and a map update).
ENTRY = "IG_OPEN_ENTRY"

# Columns with a KernelField are known where open.bpf.c emits (`ev`, its struct open_event): metrics
# that read only those are counted in the kernel (docs/config.md, "Where a metric is computed"). `flags`
# and `mode` are names of bit sets that no table of integers can list: flagsRaw and modeRaw are exact.
SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (tgid) that opened", kernel=KernelField("ev->pid", "u32")),
    Column("tid", Kind.INT, "thread id that opened", kernel=KernelField("ev->tid", "u32")),
    Column("uid", Kind.INT, "real user id", kernel=KernelField("ev->uid", "u32")),
    Column("gid", Kind.INT, "real group id", kernel=KernelField("ev->gid", "u32")),
    Column("comm", Kind.STR, "command of the process", kernel=KernelField("ev->comm", "char[16]")),
    Column("syscall", Kind.STR, "open, openat or openat2 (empty when the call began before the gadget)",
           kernel=KernelField("ev->syscall", "u8", tuple((name, number) for number, name in SYSCALLS.items()),
                              needs=ENTRY)),
    Column("path", Kind.STR, f"path as the process passed it (relative ones too), read from its memory when the "
                             f"call returns; cut at {PATHSIZE - 1} bytes", width=32,
           kernel=KernelField("ev->path", f"char[{PATHSIZE}]", needs=ENTRY)),
    Column("flags", Kind.STR, "open flags by name, O_WRONLY|O_CREAT|O_TRUNC; unnamed bits end it in hex"),
    Column("flagsRaw", Kind.INT, "open flags as a number", kernel=KernelField("ev->flags", "u64", needs=ENTRY)),
    Column("mode", Kind.STR, "mode as passed, -rw-r--r-- (used by the kernel only with O_CREAT or O_TMPFILE)"),
    Column("modeRaw", Kind.INT, "mode as a number (0o644 is 420)", kernel=KernelField("ev->mode", "u64", needs=ENTRY)),
    Column("fd", Kind.INT, "file descriptor returned, -1 on failure",
           kernel=KernelField("(ev->ret >= 0 ? ev->ret : -1)", "s32")),
    Column("err", Kind.INT, "errno on failure (2: no such file), else 0",
           kernel=KernelField("(ev->ret < 0 ? -ev->ret : 0)", "s32")),
    Column("retval", Kind.INT, "what the syscall returned: the fd, or the negative errno (-2: no such file)",
           aliases=("ret",), kernel=KernelField("ev->ret", "s32")),
    Column("timestamp", Kind.INT, "when the open returned, in ns since the Unix epoch", hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the process", kernel=KernelField("ev->cgroup_id", "u64"),
           hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode, read from /proc/<pid>/ns/mnt when the process is first "
                               "seen; 0 if it has already exited", hidden=True),
])

# struct open_event in open.bpf.c, up to its path.
HEADER = struct.Struct("<QQQQIIIIiiHBB16s")


def sys_open_exists() -> bool:
    """open(2) has tracepoints on architectures that have the syscall (x86_64 yes, arm64 no)."""
    return any(os.path.isdir(f"{root}/events/syscalls/sys_enter_open")
               for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))


class OpenGadget(RingBufferGadget):
    """Options (GadgetContext.options): `ringbuf_pages` (a power of two, default 4096)."""
    program = "open.bpf.c"
    ringbuf_pages = RINGBUF_PAGES

    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.stats.extra.update(path_cut=0, entry_missing=0)
        self._mntns: dict[tuple[int, int], int] = {}
        self._comms: dict[bytes, str] = {}

    def _mount_ns(self, pid: int, cgroup_id: int) -> int:
        if len(self._mntns) >= MNTNS_CACHE:
            self._mntns.clear()
        inode = ns_inode(pid, "mnt")
        if inode:  # 0: the process has exited; its pid may come back as another process
            self._mntns[(pid, cgroup_id)] = inode
        return inode

    def _comm(self, raw: bytes) -> str:
        if len(self._comms) >= MNTNS_CACHE:
            self._comms.clear()
        comm = self._comms[raw] = c_string(raw)
        return comm

    def decode(self, data, size: int) -> dict:
        raw = ctypes.string_at(data, size)
        (ts, cgroup_id, flags, mode, pid, tid, uid, gid, ret, _dfd, path_size, syscall, event_flags,
         comm) = HEADER.unpack_from(raw)
        if event_flags:
            if event_flags & FLAG_PATH_CUT:
                self.stats.extra["path_cut"] += 1
            else:
                self.stats.extra["entry_missing"] += 1
        # path_size counts the NUL (bpf_probe_read_user_str ends a cut path with one too).
        path = raw[HEADER.size:HEADER.size + path_size - 1] if path_size else b""
        # Caches keyed with the cgroup too, so that a reused pid in another container is read again.
        mntns = self._mntns.get((pid, cgroup_id))
        return {
            "pid": pid,
            "tid": tid,
            "uid": uid,
            "gid": gid,
            "comm": self._comms.get(comm) or self._comm(comm),
            "syscall": SYSCALLS.get(syscall, ""),
            "path": path.decode("utf-8", "replace"),
            "flags": flag_names(flags),
            "flagsRaw": flags,
            "mode": mode_text(mode),
            "modeRaw": mode,
            "fd": ret if ret >= 0 else -1,
            "err": -ret if ret < 0 else 0,
            "retval": ret,
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
            "mntns": self._mount_ns(pid, cgroup_id) if mntns is None else mntns,
        }

    def cflags(self) -> list[str]:
        flags = [*super().cflags(), f"-DPATHSIZE={PATHSIZE}"]
        if sys_open_exists():
            flags.append("-DHAVE_SYS_OPEN")
        return flags


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="open",
        description="every open/openat/openat2, successful or failed, with path, flags, mode and fd or errno",
        columns=SCHEMA,
        factory=OpenGadget,
        container_key="cgroup_id",
    )
