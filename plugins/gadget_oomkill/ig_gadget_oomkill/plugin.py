"""trace oomkill: one row per process the OOM killer chose, labelled with the victim's container.

The kernel's oom:mark_victim tracepoint runs in the context of whichever task's allocation started
the OOM killer, which need not be the victim nor in its container. The BPF program (oomkill.bpf.c)
therefore keeps the record until the victim itself exits and takes pid, comm and cgroup id there,
in the victim's own context: the container is the victim's even when the trigger was elsewhere,
and nothing has to read /proc of a process that is being killed.
"""

from __future__ import annotations

import ctypes
import os
import struct

from igcore.api import Column, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl

RINGBUF_PAGES = 16  # OOM kills are rare: 64 KiB holds hundreds of 72-byte records
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# Columns with a KernelField are known where oomkill.bpf.c emits (`ev`, its struct oomkill_event):
# metrics that read only those are counted in the kernel (docs/config.md, "Where a metric is computed").
SCHEMA = Schema.with_container_columns([
    Column("kpid", Kind.INT, "process id (tgid) of the victim", kernel=KernelField("ev->kpid", "u32"),
           exemplar=True),
    Column("kcomm", Kind.STR, "command of the victim", kernel=KernelField("ev->kcomm", "char[16]"), exemplar=True),
    Column("kuid", Kind.INT, "user id of the victim", kernel=KernelField("ev->kuid", "u32")),
    Column("pages", Kind.INT, "the victim's resident memory when it was chosen (anonymous + file + shared), "
                              "in pages; Inspektor Gadget's column counts the pages of the whole OOM domain "
                              "instead, which no stable tracepoint carries",
           kernel=KernelField(f"(ev->rss_kb / {PAGE_KB})", "u64")),
    Column("tpid", Kind.INT, "process id whose allocation triggered the OOM killer (the victim itself, "
                             "another process, in a container or not)", kernel=KernelField("ev->tpid", "u32")),
    Column("tcomm", Kind.STR, "command of that process", kernel=KernelField("ev->tcomm", "char[16]")),
    Column("timestamp", Kind.INT, "when the victim was chosen, in ns since the Unix epoch", hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the victim (the container columns are the victim's)",
           kernel=KernelField("ev->cgroup_id", "u64"), hidden=True),
])

# struct oomkill_event in oomkill.bpf.c.
EVENT = struct.Struct("<QQQIIII16s16s")


class OomKillGadget(RingBufferGadget):
    program = "oomkill.bpf.c"
    ringbuf_pages = RINGBUF_PAGES

    def decode(self, data, size: int) -> dict:
        ts, cgroup_id, rss_kb, kpid, _ktid, kuid, tpid, kcomm, tcomm = EVENT.unpack_from(ctypes.string_at(data, size))
        return {
            "kpid": kpid,
            "kcomm": c_string(kcomm),
            "kuid": kuid,
            "pages": rss_kb // PAGE_KB,
            "tpid": tpid,
            "tcomm": c_string(tcomm),
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
        }


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="oomkill",
        description="the OOM killer's victims, with the victim's container and the process that triggered it",
        columns=SCHEMA,
        factory=OomKillGadget,
        container_key="cgroup_id",
    )
