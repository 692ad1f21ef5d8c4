"""trace bind: one row per bind() of an IPv4 or IPv6 socket, successful or failed.

The BPF program (bind.bpf.c) emits one record when the syscall returns, in the context of the
process that called it; this module decodes it with one `struct.unpack_from`.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from igcore.api import Column, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl, ns_inode

RINGBUF_PAGES = 64  # binds are rare next to execs: 256 KiB holds thousands of 96-byte records

# IPPROTO_* numbers a socket() may carry, by the names Inspektor Gadget shows.
PROTOCOLS = {0: "UNKNOWN", 6: "TCP", 17: "UDP", 132: "SCTP", 136: "UDPLITE", 262: "MPTCP"}

# Columns with a KernelField are known where bind.bpf.c emits (`ev`, its struct bind_event): metrics
# that read only those are counted in the kernel (docs/config.md, "Where a metric is computed").
# `addr` is not: the row shows it as text that the kernel's 16 bytes cannot be compared with exactly.
SCHEMA = Schema.with_container_columns([
    Column("pid", Kind.INT, "process id (tgid) that called bind()", kernel=KernelField("ev->pid", "u32")),
    Column("tid", Kind.INT, "thread id that called bind()", kernel=KernelField("ev->tid", "u32")),
    Column("uid", Kind.INT, "real user id of the caller", kernel=KernelField("ev->uid", "u32")),
    Column("gid", Kind.INT, "real group id of the caller", kernel=KernelField("ev->gid", "u32")),
    Column("comm", Kind.STR, "command of the caller", kernel=KernelField("ev->comm", "char[16]")),
    Column("proto", Kind.STR, "TCP, UDP, SCTP, UDPLITE or MPTCP, from the socket() call that made the socket; "
                              "UNKNOWN when that call was not seen (a socket made before the gadget started, "
                              "or passed from another process)",
           kernel=KernelField("ev->protocol", "u16", tuple((text, code) for code, text in PROTOCOLS.items()))),
    Column("addr", Kind.STR, "address as passed to bind(): IPv4 dotted, IPv6 compressed (0.0.0.0 / :: for any)"),
    Column("port", Kind.INT, "port as passed to bind() (0: the kernel picks one)",
           kernel=KernelField("ev->port", "u16")),
    Column("if", Kind.STR, "device the socket is bound to with setsockopt(SO_BINDTODEVICE), as seen by the gadget; "
                           "empty otherwise", kernel=KernelField("ev->ifname", "char[16]")),
    Column("retval", Kind.INT, "0 on success, else the negative errno (-98: address in use, -13: permission denied)",
           aliases=("ret",), kernel=KernelField("ev->retval", "s32")),
    Column("timestamp", Kind.INT, "when bind() returned, in ns since the Unix epoch", hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the caller", kernel=KernelField("ev->cgroup_id", "u64"),
           hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode, read from /proc/<pid>/ns/mnt when the row is decoded; "
                               "0 if the process has already exited", hidden=True),
])

# struct bind_event in bind.bpf.c.
EVENT = struct.Struct("<QQIIIIiIHHHH16s16s16s")


def ip_text(family: int, raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw[:4]) if family == socket.AF_INET else \
        socket.inet_ntop(socket.AF_INET6, raw)


class BindGadget(RingBufferGadget):
    program = "bind.bpf.c"
    ringbuf_pages = RINGBUF_PAGES

    def decode(self, data, size: int) -> dict:
        (ts, cgroup_id, pid, tid, uid, gid, retval, _fd, family, port, proto, _pad, addr, comm,
         ifname) = EVENT.unpack_from(ctypes.string_at(data, size))
        return {
            "pid": pid,
            "tid": tid,
            "uid": uid,
            "gid": gid,
            "comm": c_string(comm),
            "proto": PROTOCOLS.get(proto, str(proto)),
            "addr": ip_text(family, addr),
            "port": port,
            "if": c_string(ifname),
            "retval": retval,
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
            "mntns": ns_inode(pid, "mnt"),
        }


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="bind",
        description="every bind() of an IPv4/IPv6 socket, with protocol, address, port, device and result",
        columns=SCHEMA,
        factory=BindGadget,
        container_key="cgroup_id",
    )
