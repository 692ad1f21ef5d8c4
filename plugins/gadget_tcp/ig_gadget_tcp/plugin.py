"""trace tcp: one row per TCP connect, accept and close, in the context of the process that owns the socket.

The BPF program (tcp.bpf.c) says which kernel event stands for each operation and in which context
it is seen; this module decodes its records with one `struct.unpack_from`.
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct

from igcore.api import Column, KernelField, Kind, RingBufferGadget, Schema, c_string, hookimpl, ns_inode

RINGBUF_PAGES = 256  # 1 MiB: a burst of ~10,000 connections while the reader sleeps

OPERATIONS = {1: "connect", 2: "accept", 3: "close"}
IP_VERSIONS = {2: 4, 10: 6}
# The `ip` column in C, as IP_VERSIONS reads the family.
IP_VERSION_C = "(" + "".join(f"ev->family == {family} ? {version} : " for family, version in IP_VERSIONS.items()) + "0)"

# Columns with a KernelField are known at each IG_EMIT of tcp.bpf.c (`ev`, its struct tcp_event):
# metrics that read only those are counted in the kernel (docs/config.md, "Where a metric is
# computed"). The addresses are not: rows show them as text that 16 bytes cannot be compared with exactly.
SCHEMA = Schema.with_container_columns([
    Column("operation", Kind.STR,
           "connect: at the exit of a connect() that sent a SYN, in the connecting process; "
           "accept: at the exit of an accept()/accept4() that returned a TCP connection and was given a "
           "buffer for the peer's address, in the accepting process; "
           "close: when the owning process closes (close() or shutdown(SHUT_WR), also at its exit) an "
           "established connection, in that process; connections ended by a reset or a timeout are "
           "not rows (the kernel ends them in no process's context)",
           aliases=("t",), kernel=KernelField("ev->op", "u16", tuple((text, op) for op, text in OPERATIONS.items()))),
    Column("pid", Kind.INT, "process id (tgid) that owns the socket", kernel=KernelField("ev->pid", "u32")),
    Column("tid", Kind.INT, "thread id that made the call", kernel=KernelField("ev->tid", "u32")),
    Column("uid", Kind.INT, "real user id of that process", kernel=KernelField("ev->uid", "u32")),
    Column("gid", Kind.INT, "real group id of that process", kernel=KernelField("ev->gid", "u32")),
    Column("comm", Kind.STR, "command of that process", kernel=KernelField("ev->comm", "char[16]")),
    Column("ip", Kind.INT, "4 or 6: the socket's address family (an IPv6 socket talking IPv4 is 6)",
           aliases=("ipversion",), kernel=KernelField(IP_VERSION_C, "u8")),
    Column("saddr", Kind.STR, "this process's address; IPv4-mapped IPv6 addresses shown as IPv4; "
                              "empty for an accept whose handshake the gadget did not see"),
    Column("daddr", Kind.STR, "the other end's address, shown the same way"),
    Column("sport", Kind.INT, "this process's port; 0 where saddr is empty, and for a non-blocking connect whose "
                              "handshake had not ended when connect() returned (a peer that has not answered yet; "
                              "on loopback the handshake ends inside the call and the port is shown)",
           kernel=KernelField("ev->sport", "u16")),
    Column("dport", Kind.INT, "the other end's port", kernel=KernelField("ev->dport", "u16")),
    Column("retval", Kind.INT, "connect: 0, or the negative errno (-115: in progress, for a non-blocking socket; "
                               "-111: refused); accept: the new file descriptor; close: 0",
           aliases=("ret",), kernel=KernelField("ev->retval", "s32")),
    Column("timestamp", Kind.INT, "when the event was seen, in ns since the Unix epoch", hidden=True),
    Column("cgroup_id", Kind.UINT, "cgroup v2 id of the process", kernel=KernelField("ev->cgroup_id", "u64"),
           hidden=True),
    Column("mntns", Kind.UINT, "mount namespace inode, read from /proc/<pid>/ns/mnt when the row is decoded; "
                               "0 if the process has already exited", hidden=True),
])

# struct tcp_event in tcp.bpf.c.
EVENT = struct.Struct("<QQIIIIiHHHH16s16s16s")


def ip_text(raw: bytes) -> str:
    addr = ipaddress.IPv6Address(raw)
    return str(addr.ipv4_mapped or addr)


class TcpGadget(RingBufferGadget):
    program = "tcp.bpf.c"
    ringbuf_pages = RINGBUF_PAGES

    def decode(self, data, size: int) -> dict:
        (ts, cgroup_id, pid, tid, uid, gid, retval, op, family, sport, dport, saddr, daddr,
         comm) = EVENT.unpack_from(ctypes.string_at(data, size))
        return {
            "operation": OPERATIONS.get(op, str(op)),
            "pid": pid,
            "tid": tid,
            "uid": uid,
            "gid": gid,
            "comm": c_string(comm),
            "ip": IP_VERSIONS.get(family, 0),
            "saddr": ip_text(saddr) if any(saddr) else "",
            "daddr": ip_text(daddr),
            "sport": sport,
            "dport": dport,
            "retval": retval,
            "timestamp": ts + self.boot_to_wall,
            "cgroup_id": cgroup_id,
            "mntns": ns_inode(pid, "mnt"),
        }


@hookimpl
def ig_register_gadgets(register) -> None:
    register(
        category="trace",
        name="tcp",
        description="TCP connect, accept and close, in the context of the process that owns the socket",
        columns=SCHEMA,
        factory=TcpGadget,
        container_key="cgroup_id",
    )
