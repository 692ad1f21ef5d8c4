"""snapshot socket: every TCP and UDP socket (IPv4 and IPv6) of every network namespace in use.

Each namespace is read once, through one of its processes (/proc/<pid>/net/{tcp,tcp6,udp,udp6}; no
eBPF needed); sockets are attributed to the container that owns the namespace (container_key netns).
"""

from __future__ import annotations

import os

from igcore import hookimpl
from igcore.columns import Column, Kind, Schema
from igcore.gadgets import SnapshotGadget

from .procnet import TABLES, Addresses, parse_table

VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)

SCHEMA = Schema.with_container_columns([
    Column("protocol", Kind.STR, "TCP or UDP"),
    Column("status", Kind.STR, "TCP state (LISTEN, ESTABLISHED, CLOSE_WAIT, ...); UDP: ACTIVE (connected) or INACTIVE"),
    Column("src.addr", Kind.STR, "local address (IPv6 in compressed form; IPv4-mapped IPv6 shown as IPv4)"),
    Column("src.port", Kind.INT, "local port"),
    Column("dst.addr", Kind.STR, "remote address (as src.addr)"),
    Column("dst.port", Kind.INT, "remote port"),
    Column("inode", Kind.UINT, "socket inode"),
    Column("netns", Kind.UINT, "network namespace inode"),
])


def namespaces() -> dict[int, int]:
    """netns inode -> one pid living in it."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            netns = os.stat(f"/proc/{entry.name}/ns/net").st_ino
        except VANISHED:
            continue
        found.setdefault(netns, int(entry.name))
    return found


def read_namespace(netns: int, pid: int, addresses: Addresses) -> list[dict] | None:
    rows = []
    for table, protocol in TABLES:
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                text = f.read()
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                return None          # the process left: try another of the namespace
            continue                 # e.g. no IPv6 in this kernel
        except VANISHED:
            return None
        rows.extend(parse_table(text, protocol, netns, addresses))
    return rows


class SocketSnapshot(SnapshotGadget):
    def snapshot(self) -> list[dict]:
        rows, addresses = [], Addresses()
        for netns, pid in namespaces().items():
            found = read_namespace(netns, pid, addresses)
            if found is None:
                continue  # the namespace's process exited between listing and reading
            rows.extend(found)
        self.stats.events_received += len(rows)
        return rows


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="socket",
             description="TCP and UDP sockets of every network namespace, read from /proc at scrape time (no eBPF)",
             columns=SCHEMA, factory=SocketSnapshot, container_key="netns")
