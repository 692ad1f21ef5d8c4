"""trace signal: one row per signal generated, plus one per kill-family syscall that failed.

The BPF program (signal.bpf.c) emits from the signal:signal_generate tracepoint, in the context of
the task that generated the signal (the sender), and from the exits of kill, tkill, tgkill,
rt_sigqueueinfo and rt_tgsigqueueinfo when they failed without generating a signal. This module
decodes a record with one `struct.unpack_from` and names the signal and the kernel's result.
"""

from __future__ import annotations

import ctypes
import signal
import struct

from igcore.api import Column, GadgetContext, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl, ns_inode

# signal_generate's `result` (include/trace/events/signal.h, enum trace_signal_deliver); -1: a failed call.
RESULTS = {0: "delivered", 1: "ignored", 2: "already_pending", 3: "overflow_fail", 4: "lose_info", -1: ""}
KIND_FAILED_CALL = 1


def signal_name(number: int) -> str:
    """SIGKILL, SIGRTMIN+3, ... (this machine's numbering, which is the kernel's)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        pass
    if signal.SIGRTMIN < number < signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return str(number)


NAMES = {n: signal_name(n) for n in range(0, 65)}

# Columns with a KernelField are known at both of signal.bpf.c's emits (`ev`, its struct
# signal_event): metrics that read only those are counted in the kernel (docs/config.md, "Where a
# metric is computed"). Names the table leaves out read as their decimal text, as in the row.
SIGNAL_NAMES = tuple((name, number) for number, name in NAMES.items() if name != str(number))
SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (tgid) of the sender: the task that generated the signal",
           kernel=KernelField("ev.pid", "u32")),
    Column("tid", Kind.INT, "thread id of the sender", kernel=KernelField("ev.tid", "u32")),
    Column("uid", Kind.INT, "real user id of the sender", kernel=KernelField("ev.uid", "u32")),
    Column("gid", Kind.INT, "real group id of the sender", kernel=KernelField("ev.gid", "u32")),
    Column("comm", Kind.STR, "command of the sender", kernel=KernelField("ev.comm", "char[16]")),
    Column("tpid", Kind.INT, "target: the id of the thread the signal was generated for (for kill(2), the process "
                             "id); for a failed call, the pid argument as passed",
           kernel=KernelField("ev.tpid", "s32")),
    Column("tcomm", Kind.STR, "command of the target (empty for a failed call)",
           kernel=KernelField("ev.tcomm", "char[16]")),
    Column("signal", Kind.STR, "signal name: SIGKILL, SIGUSR1, SIGRTMIN+3, ...",
           kernel=KernelField("ev.sig", "s32", SIGNAL_NAMES)),
    Column("signalRaw", Kind.INT, "signal number (9 for SIGKILL)", kernel=KernelField("ev.sig", "s32")),
    Column("result", Kind.STR, "what the kernel did with a generated signal: delivered, ignored, already_pending, "
                               "overflow_fail, lose_info; empty for a failed call",
           kernel=KernelField("ev.result", "s32", tuple((name, number) for number, name in RESULTS.items()))),
    Column("retval", Kind.INT, "0 for a generated signal; for a kill-family syscall that failed without generating "
                               "one, the negative errno (-3: no such process, -1: not permitted)", aliases=("ret",),
           kernel=KernelField("ev.retval", "s32")),
    Column("timestamp", Kind.INT, "when the signal was generated (or the call failed), in ns since the Unix epoch",
           hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the sender", kernel=KernelField("ev.cgroup_id", "u64"),
           hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode of the sender, read from /proc/<pid>/ns/mnt when the row is "
                               "decoded; 0 if it has already exited", hidden=True),
])

# struct signal_event in signal.bpf.c.
HEADER = struct.Struct("<QQIIIIiiiiI16s16s")


class SignalGadget(RingBufferGadget):
    program = "signal.bpf.c"

    def __init__(self, ctx: GadgetContext) -> None:
        super().__init__(ctx)
        self.stats.extra.update(failed_calls=0)

    def decode(self, data, size: int) -> dict:
        (ts, cgroup_id, pid, tid, uid, gid, tpid, sig, retval, result, kind, comm,
         tcomm) = HEADER.unpack_from(ctypes.string_at(data, size))
        if kind == KIND_FAILED_CALL:
            self.stats.extra["failed_calls"] += 1
        return {
            "pid": pid,
            "tid": tid,
            "uid": uid,
            "gid": gid,
            "comm": c_string(comm),
            "tpid": tpid,
            "tcomm": c_string(tcomm),
            "signal": NAMES.get(sig) or signal_name(sig),
            "signalRaw": sig,
            "result": RESULTS.get(result, str(result)),
            "retval": retval,
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
            "mntns": ns_inode(pid, "mnt"),
        }


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="signal",
        description="every signal generated (by kill or by the kernel) and every failed kill-family call, "
                    "with sender, target, signal and result",
        columns=SCHEMA,
        factory=SignalGadget,
        container_key="cgroup_id",
    )
