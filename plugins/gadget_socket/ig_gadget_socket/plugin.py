"""snapshot socket: every TCP and UDP socket (IPv4 and IPv6) of every network namespace in use.

Each namespace is read once, through one of its processes: with the kernel's sock_diag (sockdiag.py),
or from /proc/<pid>/net/{tcp,tcp6,udp,udp6} where that cannot answer (no eBPF needed either way);
sockets are attributed to the container that owns the namespace (container_key netns).
"""

from __future__ import annotations

import logging
import os

from igcore.api import Column, Kind, Schema, SnapshotGadget, hookimpl

from . import sockdiag
from .procnet import TABLES, Addresses, parse_table

log = logging.getLogger("ig_gadget_socket")

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
    """Reads each namespace with sock_diag; a namespace it cannot enter (gone, or ig without the
    privilege) from /proc, and every namespace from /proc once the kernel refused a dump (said once)."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._diag = True
        self._own_netns = os.stat("/proc/self/ns/net").st_ino

    @property
    def reader(self) -> str:
        """What snapshots read: "sock_diag", or "/proc" once the kernel refused a dump."""
        return "sock_diag" if self._diag else "/proc"

    def snapshot(self) -> list[dict]:
        rows, addresses = [], Addresses()
        for netns, pids in namespaces().items():
            for pid in pids:
                found = self._read(netns, pid, addresses)
                if found is not None:
                    rows.extend(found)
                    break
            # a namespace whose processes all exited meanwhile has no sockets to show
        self.stats.events_received += len(rows)
        return rows

    def _read(self, netns: int, pid: int, addresses: Addresses) -> list[dict] | None:
        if self._diag:
            path = None if netns == self._own_netns else f"/proc/{pid}/ns/net"
            try:
                with sockdiag.diag_socket(path, self.ctx.run_in_thread) as sock:
                    return sockdiag.read_namespace(sock, netns, addresses)
            except OSError:
                pass   # not entered (the process left, or no privilege): /proc answers, or says it left
            except sockdiag.DiagUnavailable as exc:
                self._diag = False
                log.warning("snapshot socket reads /proc/<pid>/net, which takes longer, because the kernel's "
                            "sock_diag did not answer: %s", exc,
                            extra={"gadget": "snapshot socket", "reason": "no_sock_diag"})
        return read_namespace(netns, pid, addresses)


@hookimpl
def ig_register_gadgets(register) -> None:
    register(category="snapshot", name="socket",
             description="TCP and UDP sockets of every network namespace, read at scrape time with the kernel's "
             "sock_diag (from /proc where it cannot answer; no eBPF)",
             columns=SCHEMA, factory=SocketSnapshot, container_key="netns")
