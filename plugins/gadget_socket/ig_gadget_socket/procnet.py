"""Parsing /proc/<pid>/net/{tcp,tcp6,udp,udp6}: the kernel's socket tables of one network namespace."""

from __future__ import annotations

import socket
import struct

TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
    7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING", 12: "NEW_SYN_RECV",
}

TABLES = (("tcp", "TCP"), ("tcp6", "TCP"), ("udp", "UDP"), ("udp6", "UDP"))


_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def address(hexaddr: str) -> str:
    """'0100007F' -> '127.0.0.1': the kernel prints each 32-bit word in its own (little-endian) order.

    IPv6 in RFC 5952 compressed form; an IPv4-mapped address (::ffff:a.b.c.d, a dual-stack socket
    talking IPv4) as plain IPv4, as Inspektor Gadget shows it, so `dst.addr:127.0.0.1` matches whichever
    socket family the program used.
    """
    raw = bytes.fromhex(hexaddr)
    n = len(raw) // 4
    return packed_address(struct.pack(f">{n}I", *struct.unpack(f"<{n}I", raw)))


def packed_address(packed: bytes) -> str:
    """An address in network order (4 or 16 bytes) as address() shows it."""
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if packed.startswith(_V4_MAPPED):
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    return socket.inet_ntop(socket.AF_INET6, packed)


def status_of(protocol: str, state: int) -> str:
    if protocol == "UDP":
        # As Inspektor Gadget shows UDP: connected (state 1) is ACTIVE, anything else INACTIVE.
        return "ACTIVE" if state == 1 else "INACTIVE"
    return TCP_STATES.get(state, str(state))


class Addresses(dict):
    """Hex address (or packed, as sock_diag gives it) -> text, for one snapshot: most sockets share
    a few addresses."""

    def __missing__(self, hexaddr: str) -> str:
        text = self[hexaddr] = address(hexaddr)
        return text

    def of_bytes(self, packed: bytes) -> str:
        text = self.get(packed)   # not self[packed]: __missing__ reads hex
        if text is None:
            text = self[packed] = packed_address(packed)
        return text


def parse_table(text: str, protocol: str, netns: int, addresses: Addresses) -> list[dict]:
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        src, sport = fields[1].split(":")
        dst, dport = fields[2].split(":")
        rows.append({
            "protocol": protocol, "status": status_of(protocol, int(fields[3], 16)),
            "src.addr": addresses[src], "src.port": int(sport, 16),
            "dst.addr": addresses[dst], "dst.port": int(dport, 16),
            "inode": int(fields[9]), "netns": netns,
        })
    return rows
