"""snapshot socket: every TCP and UDP socket (IPv4 and IPv6) of every network namespace in use.

Each namespace is read once, through one of its processes (/proc/<pid>/net/{tcp,tcp6,udp,udp6}; no
eBPF needed); sockets are attributed to the container that owns the namespace (container_key netns).
"""

from __future__ import annotations

import os

from igcore.api import Column, Kind, Schema, SnapshotGadget, hookimpl

from .procnet import TABLES, Addresses, parse_table

VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)

SCHEMA = Schema.with_container_columns([
    Column("protocol", Kind.STR, "TCP or UDP"),
    Column("status", Kind.STR, "TCP state (LISTEN, ESTABLISHED, CLOSE_WAIT, ...); UDP: ACTIVE (connected) or INACTIVE"),
    Column("src.addr", Kind.STR, "local address (IPv6 in compressed form; IPv4-mapped IPv6 shown as IPv4)", width=24),
    Column("src.port", Kind.INT, "local port"),
    Column("dst.addr", Kind.STR, "remote address (as src.addr)", width=24),
    Column("dst.port", Kind.INT, "remote port"),
    Column("inode", Kind.UINT, "socket inode"),
    Column("netns", Kind.UINT, "network namespace inode", hidden=True),
])


def namespaces() -> dict[int, list[int]]:
    """netns inode -> the pids living in it (one is read; the others are there in case it exits)."""
    found: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            netns = os.stat(f"/proc/{entry.name}/ns/net").st_ino
        except VANISHED:
            continue  # gone, or a zombie (it has no namespaces any more)
        found.setdefault(netns, []).append(int(entry.name))
    return found


def read_namespace(netns: int, pid: int, addresses: Addresses) -> list[dict] | None:
    """The sockets of netns, read through pid; None if pid exited (or became a zombie) meanwhile."""
    rows = []
    for table, protocol in TABLES:
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                text = f.read()
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/net/tcp"):
                return None          # the process left: its net directory went with it
            continue                 # this table is missing: IPv6 disabled
        except VANISHED:
            return None
        rows.extend(parse_table(text, protocol, netns, addresses))
    return rows


class SocketSnapshot(SnapshotGadget):
    def snapshot(self) -> list[dict]:
        rows, addresses = [], Addresses()
        for netns, pids in namespaces().items():
            for pid in pids:
                found = read_namespace(netns, pid, addresses)
                if found is not None:
                    rows.extend(found)
                    break
            # a namespace whose processes all exited meanwhile has no sockets to show
        self.stats.events_received += len(rows)
        return rows


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="socket",
             description="TCP and UDP sockets of every network namespace, read from /proc at scrape time (no eBPF)",
             columns=SCHEMA, factory=SocketSnapshot, container_key="netns")
